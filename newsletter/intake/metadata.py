"""A page's card: title, source and a suggested excerpt, read from its HTML.

- title: ``og:title``, ``twitter:title`` or ``<title>``, without the site-name suffix
  ("Le vélo progresse | Le Journal" → "Le vélo progresse");
- source: ``og:site_name``, the JSON-LD ``publisher``, or the domain made readable;
- excerpt: ``og:description`` (or ``twitter:description``, ``description``), else the first
  paragraphs of the main text as trafilatura finds it;
- canonical: ``<link rel="canonical">`` when it is an http(s) URL.

Pure functions of the HTML and its URL: no network, no database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import lxml.html
import trafilatura
from lxml import etree

from newsletter.urls import readable_domain

MAX_TITLE = 500
MAX_SOURCE = 200
EXCERPT_TARGET = 250  # characters of main text to suggest when the page has no description
MAX_EXCERPT = 1200
_SEPARATOR = re.compile(r"\s+[|\-–—·•»:]\s+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class PageMeta:
    """What a page says about itself; empty strings where it says nothing."""

    title: str
    source: str
    excerpt: str
    canonical: str


def extract_meta(html: str, url: str) -> PageMeta:
    """Read the card fields of ``html`` served at ``url`` (relative links resolve against it)."""
    doc = _parse(html)
    if doc is None:
        return PageMeta("", readable_domain(url), "", "")
    metas = _metas(doc)
    site = metas.get("og:site_name", "") or _jsonld_publisher(doc)
    raw_title = metas.get("og:title") or metas.get("twitter:title") or _text(doc.find(".//title"))
    title = clean_title(raw_title, (site, readable_domain(url)))
    excerpt = (
        metas.get("og:description")
        or metas.get("twitter:description")
        or metas.get("description")
        or _main_text_excerpt(html, title)
    )
    return PageMeta(
        title=_shorten(title, MAX_TITLE),
        source=_shorten(_one_line(site) or readable_domain(url), MAX_SOURCE),
        excerpt=_shorten(excerpt.strip(), MAX_EXCERPT),
        canonical=_canonical(doc, url),
    )


def _parse(html: str) -> Any:
    if not html.strip():
        return None
    try:
        return lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return None


def _metas(doc: Any) -> dict[str, str]:
    """``<meta property|name=… content=…>`` by lower-cased key; the first one wins."""
    found: dict[str, str] = {}
    for meta in doc.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").strip().lower()
        content = _one_line(meta.get("content") or "")
        if key and content and key not in found:
            found[key] = content
    return found


def _text(element: Any) -> str:
    return _one_line(element.text_content()) if element is not None else ""


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _normalised(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _names_site(part: str, names: tuple[str, ...]) -> bool:
    key = _normalised(part)
    for name in names:
        other = _normalised(name.rsplit(".", 1)[0] if "." in name else name)
        if key and other and (key in other or other in key):
            return True
    return False


def clean_title(title: str, names: tuple[str, ...]) -> str:
    """``title`` without a leading or trailing segment naming the site (one of ``names``); a
    trailing `` | Something`` shorter than the rest goes too, a pipe being how sites add
    their name."""
    title = _one_line(title)
    parts = _SEPARATOR.split(title)
    if len(parts) < 2:
        return title
    separators = _SEPARATOR.findall(title)
    if _names_site(parts[-1], names):
        return title[: title.rfind(separators[-1])].strip()
    if _names_site(parts[0], names):
        return title[title.find(separators[0]) + len(separators[0]) :].strip()
    if separators[-1].strip() == "|" and len(parts[-1]) < len(title) / 2:
        return title[: title.rfind(separators[-1])].strip()
    return title


def _jsonld_publisher(doc: Any) -> str:
    for script in doc.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text or "", strict=False)
        except ValueError:
            continue
        for node in _walk(data, depth=0):
            name = _publisher_name(node.get("publisher"))
            if name:
                return name
    return ""


def _walk(data: Any, depth: int) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``data`` (``@graph`` and lists included), to a bounded depth."""
    if depth > 6:
        return
    if isinstance(data, dict):
        yield data
        for value in data.values():
            if isinstance(value, dict | list):
                yield from _walk(value, depth + 1)
    elif isinstance(data, list):
        for item in data[:50]:
            yield from _walk(item, depth + 1)


def _publisher_name(publisher: Any) -> str:
    if isinstance(publisher, list) and publisher:
        publisher = publisher[0]
    if isinstance(publisher, dict):
        publisher = publisher.get("name", "")
    return _one_line(publisher) if isinstance(publisher, str) else ""


def _canonical(doc: Any, url: str) -> str:
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        href = (link.get("href") or "").strip()
        if "canonical" in rel and href:
            absolute = urljoin(url, href)
            return absolute if absolute.startswith(("http://", "https://")) else ""
    return ""


def _main_text_excerpt(html: str, title: str) -> str:
    """The first paragraphs of the main text (about ``EXCERPT_TARGET`` characters)."""
    text = trafilatura.extract(html, include_comments=False, include_tables=False) or ""
    chosen: list[str] = []
    size = 0
    for line in text.splitlines():
        line = _one_line(line)
        if len(line) < 40 or line == title:
            continue  # headings, captions, bylines
        chosen.append(line)
        size += len(line)
        if size >= EXCERPT_TARGET:
            break
    return "\n\n".join(chosen)


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "…"
