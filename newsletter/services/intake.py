"""Link intake use cases: a URL becomes a card (title, source, excerpt) and is queued.

The CLI's ``links add URL`` without a title, the dashboard's add form (and its "suggest"
step) and ``POST /api/links`` without a title all call these. The page is fetched *outside*
any transaction (a slow site must not hold the database), then one transaction queues it.

A fetch that fails never loses the editor's link: it is queued with what the editor typed
(the URL standing in for a missing title) and the result says why it could not be filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.db import transaction
from newsletter.errors import FetchError, Gettext
from newsletter.intake.fetcher import FetchPolicy, decode_html, fetch
from newsletter.intake.metadata import extract_meta
from newsletter.models import Issue, Link
from newsletter.urls import canonical_url, readable_domain


@dataclass(frozen=True)
class Card:
    """What a page says about itself, ready to fill the link form."""

    url: str  # canonical: after redirects and rel=canonical, without tracking parameters
    title: str
    source: str
    excerpt: str


@dataclass(frozen=True)
class Duplicate:
    """A link with the same canonical URL, queued (``issue_number`` None) or already sent."""

    link_id: int
    title: str
    issue_number: int | None

    def render(self, gettext: Gettext) -> str:
        if self.issue_number is None:
            return gettext("Already queued for the next issue: %(title)s") % {"title": self.title}
        return gettext("Already in issue #%(number)s: %(title)s") % {
            "number": self.issue_number,
            "title": self.title,
        }


@dataclass(frozen=True)
class Suggestion:
    """The card for a URL, or why there is none, and any earlier link to the same page."""

    typed_url: str
    card: Card
    problem: FetchError | None
    duplicate: Duplicate | None

    @property
    def filled(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class LinkAdded:
    """A queued link and what intake had to say about it."""

    link: Link
    problem: FetchError | None = None
    duplicate: Duplicate | None = None


def fetch_card(url: str, policy: FetchPolicy) -> Card:
    """Fetch ``url`` and read its card. Raises ``FetchError`` (blocked address, timeout, HTTP
    error, not HTML, too many redirects)."""
    page = fetch(url, policy)
    meta = extract_meta(decode_html(page.body, page.charset), page.url)
    final = canonical_url(meta.canonical or page.url)
    return Card(url=final, title=meta.title, source=meta.source, excerpt=meta.excerpt)


def fallback_card(url: str) -> Card:
    """The card when the page cannot be read: the URL stands in for the title."""
    clean = canonical_url(url)
    return Card(url=url, title=url[: content.MAX_TITLE], source=readable_domain(clean), excerpt="")


def find_duplicate(
    session: Session, canonical: str, exclude: int | None = None
) -> Duplicate | None:
    """The most recent link with this canonical URL (queued first, then the latest issue)."""
    query = (
        select(Link, Issue.number)
        .outerjoin(Issue, Link.issue_id == Issue.id)
        .where(Link.canonical_url == canonical)
        .order_by(Link.issue_id.is_not(None), Issue.number.desc(), Link.id.desc())
    )
    if exclude is not None:
        query = query.where(Link.id != exclude)
    row = session.execute(query.limit(1)).first()
    if row is None:
        return None
    link, number = row
    return Duplicate(link_id=link.id, title=link.title, issue_number=number)


def suggest(engine: Engine, policy: FetchPolicy, url: str) -> Suggestion:
    """The card the dashboard shows before saving. Raises ``InvalidInputError`` for a URL
    that is not an http(s) link; a failed fetch is reported in ``problem``, not raised."""
    typed = content.check_url(url)
    try:
        card = fetch_card(typed, policy)
        problem = None
    except FetchError as exc:
        card, problem = fallback_card(typed), exc
    with transaction(engine) as session:
        duplicate = find_duplicate(session, canonical_url(card.url))
    return Suggestion(typed_url=typed, card=card, problem=problem, duplicate=duplicate)


def add_link(
    engine: Engine,
    policy: FetchPolicy,
    *,
    url: str,
    title: str = "",
    source: str = "",
    excerpt: str = "",
    tags: Sequence[str] = (),
    now: datetime,
) -> LinkAdded:
    """Queue ``url``; without a title, the page is fetched and its card fills every field the
    editor left empty (what the editor typed always wins).

    Raises ``InvalidInputError`` for bad input (nothing is stored); a failed fetch still
    queues the link and is reported in ``LinkAdded.problem``.
    """
    typed = content.check_url(url)
    suggestion: Suggestion | None = None
    if not title.strip():
        suggestion = suggest(engine, policy, typed)
    card = suggestion.card if suggestion else Card(url=typed, title="", source="", excerpt="")
    stored_url = card.url if suggestion and suggestion.filled else typed
    with transaction(engine) as session:
        link = content.queue_link(
            session,
            url=stored_url,
            title=title.strip() or card.title,
            source=source.strip() or card.source,
            excerpt=excerpt.strip() or card.excerpt,
            tags=tags,
            now=now,
            canonical=canonical_url(card.url if suggestion and suggestion.filled else typed),
        )
        duplicate = find_duplicate(session, link.canonical_url, exclude=link.id)
        session.expunge(link)
    return LinkAdded(
        link=link, problem=suggestion.problem if suggestion else None, duplicate=duplicate
    )
