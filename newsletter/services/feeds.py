"""Feeds in: editors register feeds of their bookmarks (Shaarli, Wallabag, Pinboard, a blog's
own feed...) and their new items are queued as links.

A poll fetches with the safe fetcher (conditional GET with the ETag/Last-Modified it kept),
then one transaction records every item it saw and queues the new ones, skipping any whose
canonical URL is already queued or was sent. A feed that fails keeps its last state and its
error is recorded for the dashboard; it never stops the other feeds, nor the Sunday send,
which runs in another job.

The first poll of a feed queues only items from the last ``FIRST_POLL_DAYS`` days, so
registering a blog with years of posts does not flood the queue; older ones are marked seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.db import transaction
from newsletter.errors import ConflictError, FetchError, InvalidInputError, NotFoundError
from newsletter.intake.feeds import FeedEntry, ParsedFeed, parse_feed
from newsletter.intake.fetcher import FetchPolicy, fetch
from newsletter.models import Feed, FeedItem
from newsletter.services.intake import find_duplicate
from newsletter.urls import canonical_url

FIRST_POLL_DAYS = 7


@dataclass(frozen=True)
class PollResult:
    """What one poll of one feed did."""

    feed_id: int
    url: str
    queued: int = 0
    not_modified: bool = False
    error: FetchError | None = None


def feed_error(feed: Feed) -> FetchError | None:
    """The error of the feed's last poll, ready to render in any language."""
    if not feed.error:
        return None
    values = json.loads(feed.error_values or "{}")
    return FetchError(feed.error, None, **values)


def list_feeds(session: Session) -> list[Feed]:
    return list(session.scalars(select(Feed).order_by(Feed.id)))


def add_feed(session: Session, url: str, now: datetime) -> Feed:
    """Register a feed. Raises ``InvalidInputError`` (not an http(s) URL) or
    ``ConflictError`` (already registered)."""
    url = content.check_url(url)
    if session.scalar(select(Feed.id).where(Feed.url == url)) is not None:
        raise ConflictError("this feed is already registered", "url")
    feed = Feed(url=url, title="", created_at=now)
    session.add(feed)
    session.flush()
    return feed


def remove_feed(session: Session, feed_id: int) -> None:
    """Forget a feed and what it saw (its queued links stay). Raises ``NotFoundError``."""
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise NotFoundError("no feed with id %(id)s", None, id=feed_id)
    session.delete(feed)
    session.flush()


def poll_feed(engine: Engine, policy: FetchPolicy, feed_id: int, now: datetime) -> PollResult:
    """Fetch one feed and queue its new items. Fetch and parse errors are recorded on the
    feed and returned, never raised; ``NotFoundError`` for an unknown id."""
    with transaction(engine) as session:
        feed = session.get(Feed, feed_id)
        if feed is None:
            raise NotFoundError("no feed with id %(id)s", None, id=feed_id)
        url, validators = feed.url, _validators(feed)
    try:
        fetched = fetch(url, policy, accept=None, headers=validators)
        parsed = (
            None if fetched.status == 304 else parse_feed(fetched.body, url, fetched.media_type)
        )
    except FetchError as exc:
        with transaction(engine) as session:
            _record_failure(session, feed_id, exc, now)
        return PollResult(feed_id, url, error=exc)
    with transaction(engine) as session:
        queued = _record_success(session, feed_id, parsed, fetched.etag, fetched.last_modified, now)
    return PollResult(feed_id, url, queued=queued, not_modified=parsed is None)


def poll_all_feeds(engine: Engine, policy: FetchPolicy, now: datetime) -> list[PollResult]:
    """Poll every registered feed, one after the other; one failing does not stop the rest."""
    with transaction(engine) as session:
        ids = [feed.id for feed in list_feeds(session)]
    results = []
    for feed_id in ids:
        try:
            results.append(poll_feed(engine, policy, feed_id, now))
        except NotFoundError:
            continue  # removed while we polled the others
    return results


def _validators(feed: Feed) -> dict[str, str]:
    headers = {}
    if feed.etag:
        headers["if-none-match"] = feed.etag
    if feed.last_modified:
        headers["if-modified-since"] = feed.last_modified
    return headers


def _record_failure(session: Session, feed_id: int, exc: FetchError, now: datetime) -> None:
    feed = session.get(Feed, feed_id)
    if feed is not None:
        feed.polled_at = now
        feed.error = exc.key[:500]
        feed.error_values = json.dumps({k: str(v) for k, v in exc.values.items()})


def _record_success(
    session: Session,
    feed_id: int,
    parsed: ParsedFeed | None,
    etag: str,
    last_modified: str,
    now: datetime,
) -> int:
    feed = session.get(Feed, feed_id)
    if feed is None:
        return 0
    first_poll = feed.ok_at is None
    queued = 0 if parsed is None else _take_entries(session, feed, parsed, first_poll, now)
    if parsed is not None and parsed.title:
        feed.title = parsed.title[:500]
    feed.etag = etag[:500] or feed.etag
    feed.last_modified = last_modified[:100] or feed.last_modified
    feed.polled_at = feed.ok_at = now
    feed.error, feed.error_values = "", ""
    feed.queued_total += queued
    return queued


def _take_entries(
    session: Session, feed: Feed, parsed: ParsedFeed, first_poll: bool, now: datetime
) -> int:
    """Mark every entry seen; queue the new ones (oldest first, so the queue reads in order)."""
    seen = set(session.scalars(select(FeedItem.key).where(FeedItem.feed_id == feed.id)))
    cutoff = now - timedelta(days=FIRST_POLL_DAYS)
    queued = 0
    for entry in reversed(parsed.entries):
        key = entry.key[:2000]
        if key in seen:
            continue
        seen.add(key)
        session.add(FeedItem(feed_id=feed.id, key=key, seen_at=now))
        if first_poll and (entry.published is None or entry.published < cutoff):
            continue
        if _queue_entry(session, entry, now):
            queued += 1
    session.flush()
    return queued


def _queue_entry(session: Session, entry: FeedEntry, now: datetime) -> bool:
    canonical = canonical_url(entry.url)
    if find_duplicate(session, canonical) is not None:
        return False
    try:
        content.queue_link(
            session,
            url=entry.url,
            title=entry.title[: content.MAX_TITLE],
            source=entry.source[: content.MAX_SOURCE],
            excerpt=entry.excerpt,
            now=now,
            canonical=canonical,
        )
    except InvalidInputError:
        return False  # an entry we cannot store (e.g. an over-long URL) is skipped, not fatal
    return True
