"""Reading feeds: RSS and Atom through feedparser, JSON Feed (which feedparser 6.0 does not
read) from its JSON. Pure functions of the bytes: no network, no database.

Each entry becomes what a queued link needs: a stable key (its id, else its link), the URL,
a title, a source and a short excerpt in plain text.
"""

from __future__ import annotations

import calendar
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser
import lxml.html
from lxml import etree

from newsletter.errors import FetchError
from newsletter.urls import readable_domain

MAX_ENTRIES = 200
EXCERPT_LIMIT = 600
JSON_FEED_PREFIX = "https://jsonfeed.org/version/"


@dataclass(frozen=True)
class FeedEntry:
    key: str
    url: str
    title: str
    source: str
    excerpt: str
    published: datetime | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    entries: tuple[FeedEntry, ...]  # in the feed's order (usually newest first)


def parse_feed(body: bytes, url: str, media_type: str = "") -> ParsedFeed:
    """The feed in ``body`` (served at ``url``). Raises ``FetchError`` when it is neither a
    readable RSS/Atom feed nor a JSON Feed."""
    stripped = body.lstrip()
    if stripped.startswith(b"{") or "json" in media_type:
        return _parse_json_feed(body)
    parsed = feedparser.parse(body, response_headers={"content-location": url})
    if not parsed.version and not parsed.entries:
        raise FetchError("the address does not serve a readable feed", "url")
    title = _plain(str(parsed.feed.get("title", "")))
    site = str(parsed.feed.get("link", "")) or url
    entries = [_rss_entry(entry, title, site) for entry in parsed.entries[:MAX_ENTRIES]]
    return ParsedFeed(title=title, entries=tuple(e for e in entries if e is not None))


def _rss_entry(entry: Any, feed_title: str, site: str) -> FeedEntry | None:
    link = str(entry.get("link", "")).strip()
    if not link.startswith(("http://", "https://")):
        return None
    source = entry.get("source", {})
    named = _plain(str(source.get("title", ""))) if isinstance(source, dict) else ""
    summary = str(entry.get("summary", ""))
    parsed_time = entry.get("published_parsed") or entry.get("updated_parsed")
    return FeedEntry(
        key=str(entry.get("id") or link),
        url=link,
        title=_plain(str(entry.get("title", ""))) or link,
        source=named or entry_source(link, feed_title, site),
        excerpt=_shorten(_plain(summary)),
        published=(
            datetime.fromtimestamp(calendar.timegm(parsed_time), UTC) if parsed_time else None
        ),
    )


def _parse_json_feed(body: bytes) -> ParsedFeed:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FetchError("the address does not serve a readable feed", "url") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith(JSON_FEED_PREFIX):
        raise FetchError("the address does not serve a readable feed", "url")
    title = _plain(str(data.get("title", "")))
    site = str(data.get("home_page_url", ""))
    items = data.get("items", [])
    entries = []
    for item in items[:MAX_ENTRIES] if isinstance(items, list) else []:
        entry = _json_entry(item, title, site) if isinstance(item, dict) else None
        if entry is not None:
            entries.append(entry)
    return ParsedFeed(title=title, entries=tuple(entries))


def _json_entry(item: dict[str, Any], feed_title: str, site: str) -> FeedEntry | None:
    link = str(item.get("external_url") or item.get("url") or "").strip()
    if not link.startswith(("http://", "https://")):
        return None
    text = item.get("summary") or item.get("content_text") or item.get("content_html") or ""
    return FeedEntry(
        key=str(item.get("id") or link),
        url=link,
        title=_plain(str(item.get("title", ""))) or link,
        source=entry_source(link, feed_title, site),
        excerpt=_shorten(_plain(str(text))),
        published=_iso_time(item.get("date_published") or item.get("date_modified")),
    )


def entry_source(link: str, feed_title: str, site: str) -> str:
    """The publication of an entry: the feed's own name for its own articles, else the
    linked site's domain (a bookmarks feed links to other people's pages)."""
    if feed_title and site and readable_domain(link) == readable_domain(site):
        return feed_title
    return readable_domain(link)


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _plain(html: str) -> str:
    """Text of an HTML fragment on one line (feeds put markup in titles and summaries)."""
    if "<" in html or "&" in html:
        with contextlib.suppress(etree.ParserError, ValueError):
            html = lxml.html.fragment_fromstring(html, create_parent="div").text_content()
    return " ".join(html.split())


def _shorten(text: str) -> str:
    if len(text) <= EXCERPT_LIMIT:
        return text
    return text[: EXCERPT_LIMIT - 1].rsplit(" ", 1)[0].rstrip(" ,;:.") + "…"
