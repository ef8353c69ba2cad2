"""Links and issues: the queue of links for the next issue, the editor's draft, and numbered
issues assembled from the queue.

The next issue is every link queued since the last assembled issue (design: a paused or delayed
week keeps its links for the catch-up issue). Functions take a ``Session`` and never commit:
the caller's ``transaction()`` does, so a rejected input stores nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import inputs
from newsletter.config import Config
from newsletter.errors import (
    ConfigError,
    ConflictError,
    HeaderInjectionError,
    InvalidInputError,
    NotFoundError,
)
from newsletter.i18n import format_date
from newsletter.models import Issue, IssueDraft, IssueStatus, Link
from newsletter.settings import WEEKDAYS
from newsletter.urls import canonical_url

MAX_URL = 2000
MAX_TITLE = 500
MAX_SOURCE = 200
MAX_TAGS = 500
MAX_EXCERPT = 5000
DRAFT_ID = 1


@dataclass(frozen=True)
class LinkView:
    """One link as the templates show it."""

    url: str
    title: str
    source: str
    excerpt: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssueView:
    """Everything a digest template needs: number, subject, intro, local date and links."""

    number: int
    subject: str
    intro: str
    date: date
    links: tuple[LinkView, ...]


# --- validation ------------------------------------------------------------------------------


def check_url(url: str, field: str = "url") -> str:
    """Return ``url`` stripped; raise ``InvalidInputError`` unless it is an absolute http(s) URL."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError("must be an http:// or https:// link, got %(url)r", field, url=url)
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        raise InvalidInputError(
            "must be a single URL without spaces, at most 2000 characters", field
        )
    return inputs.check_text(url, field)


def check_text(value: str, field: str, *, limit: int, required: bool = False) -> str:
    """Return ``value`` stripped; refuse CR/LF, over-long or (when ``required``) empty text."""
    value = value.strip()
    if required and not value:
        raise InvalidInputError("must not be empty", field)
    if "\r" in value or "\n" in value:
        raise HeaderInjectionError("must be a single line", field)
    if len(value) > limit:
        raise InvalidInputError("must be at most %(limit)s characters", field, limit=limit)
    return inputs.check_text(value, field)


def check_tags(tags: Iterable[str]) -> str:
    cleaned = [check_text(tag, "tag", limit=50) for tag in tags]
    if any("," in tag for tag in cleaned):
        raise InvalidInputError("must not contain a comma", "tag")
    joined = ",".join(tag for tag in cleaned if tag)
    if len(joined) > MAX_TAGS:
        raise InvalidInputError(
            "all tags together must be at most %(limit)s characters", "tag", limit=MAX_TAGS
        )
    return joined


def _check_excerpt(excerpt: str) -> str:
    excerpt = excerpt.replace("\r\n", "\n").strip()
    if len(excerpt) > MAX_EXCERPT:
        raise InvalidInputError(
            "must be at most %(limit)s characters", "excerpt", limit=MAX_EXCERPT
        )
    return inputs.check_text(excerpt, "excerpt", multiline=True)


# --- the queue -------------------------------------------------------------------------------


def queue_link(
    session: Session,
    *,
    url: str,
    title: str,
    source: str,
    excerpt: str = "",
    tags: Sequence[str] = (),
    now: datetime,
    canonical: str = "",
) -> Link:
    """Append a link to the next issue's queue. Raises ``InvalidInputError`` for bad input.

    ``canonical`` is the page's canonical URL when link intake found it (after redirects and
    ``rel=canonical``); by default the URL itself without tracking parameters."""
    url = check_url(url)
    link = Link(
        url=url,
        canonical_url=check_url(canonical or canonical_url(url), "canonical"),
        title=check_text(title, "title", limit=MAX_TITLE, required=True),
        source=check_text(source, "source", limit=MAX_SOURCE),
        excerpt=_check_excerpt(excerpt),
        tags=check_tags(tags),
        position=_next_position(session),
        queued_at=now,
        issue_id=None,
    )
    session.add(link)
    session.flush()
    return link


def _next_position(session: Session) -> int:
    highest = session.scalar(select(func.max(Link.position)).where(Link.issue_id.is_(None)))
    return (highest or 0) + 1


def queued_links(session: Session) -> list[Link]:
    """The links of the next issue, in order."""
    query = select(Link).where(Link.issue_id.is_(None)).order_by(Link.position, Link.id)
    return list(session.scalars(query))


def _queued_link(session: Session, link_id: int) -> Link:
    link = session.get(Link, link_id)
    if link is None:
        raise NotFoundError("no link with id %(link_id)s", link_id=link_id)
    if link.issue_id is not None:
        raise ConflictError(
            "link %(link_id)s is already part of an issue and cannot change", link_id=link_id
        )
    return link


def update_link(
    session: Session,
    link_id: int,
    *,
    url: str | None = None,
    title: str | None = None,
    source: str | None = None,
    excerpt: str | None = None,
    tags: Sequence[str] | None = None,
) -> Link:
    """Change a queued link's fields (``None`` keeps a field). Raises ``NotFoundError``,
    ``ConflictError`` (already in an issue) or ``InvalidInputError``."""
    link = _queued_link(session, link_id)
    if url is not None:
        link.url = check_url(url)
        link.canonical_url = canonical_url(link.url)
    if title is not None:
        link.title = check_text(title, "title", limit=MAX_TITLE, required=True)
    if source is not None:
        link.source = check_text(source, "source", limit=MAX_SOURCE)
    if excerpt is not None:
        link.excerpt = _check_excerpt(excerpt)
    if tags is not None:
        link.tags = check_tags(tags)
    session.flush()
    return link


def move_link(session: Session, link_id: int, position: int) -> list[Link]:
    """Move a queued link to ``position`` (1 = first; clamped to the queue) and renumber the
    queue 1..n. Returns the queue in its new order."""
    link = _queued_link(session, link_id)
    others = [other for other in queued_links(session) if other.id != link.id]
    index = min(max(position, 1), len(others) + 1) - 1
    others.insert(index, link)
    for number, item in enumerate(others, start=1):
        item.position = number
    session.flush()
    return others


def requeue_links(session: Session, links: Sequence[Link]) -> None:
    """Put ``links`` (taken out of a withdrawn issue) back at the head of the queue, in their
    order, before the links queued since."""
    queued = queued_links(session)
    for link in links:
        link.issue_id = None
    for number, item in enumerate([*links, *queued], start=1):
        item.position = number
    session.flush()


def remove_link(session: Session, link_id: int) -> None:
    """Delete a queued link. Raises ``NotFoundError`` or ``ConflictError``."""
    session.delete(_queued_link(session, link_id))
    session.flush()


# --- the draft (intro and subject of the next issue) -----------------------------------------


def get_draft(session: Session) -> IssueDraft:
    """The next issue's draft; an empty, unsaved one when the editor has not written any."""
    draft = session.get(IssueDraft, DRAFT_ID)
    return draft if draft is not None else IssueDraft(id=DRAFT_ID, intro="", subject="")


def _saved_draft(session: Session, now: datetime) -> IssueDraft:
    draft = session.get(IssueDraft, DRAFT_ID)
    if draft is None:
        draft = IssueDraft(id=DRAFT_ID, intro="", subject="", updated_at=now)
        session.add(draft)
    return draft


def check_intro(text: str) -> str:
    """An intro stripped, with Windows line breaks made plain; raises ``InvalidInputError``
    when it is too long or holds control characters."""
    text = text.replace("\r\n", "\n").strip()
    if len(text) > MAX_EXCERPT:
        raise InvalidInputError("must be at most %(limit)s characters", "intro", limit=MAX_EXCERPT)
    return inputs.check_text(text, "intro", multiline=True)


def clear_draft(session: Session, now: datetime) -> None:
    """Empty the draft (its intro and subject went into an issue)."""
    draft = session.get(IssueDraft, DRAFT_ID)
    if draft is not None:
        draft.intro, draft.subject, draft.updated_at = "", "", now


def set_intro(session: Session, text: str, now: datetime) -> IssueDraft:
    """Set the next issue's intro (plain text; blank lines separate paragraphs)."""
    text = check_intro(text)
    draft = _saved_draft(session, now)
    draft.intro, draft.updated_at = text, now
    session.flush()
    return draft


def set_subject(session: Session, subject: str, now: datetime) -> IssueDraft:
    """Set the next issue's subject; empty restores ``[list] subject_template``."""
    draft = _saved_draft(session, now)
    draft.subject = check_text(subject, "subject", limit=MAX_TITLE)
    draft.updated_at = now
    session.flush()
    return draft


# --- issues ----------------------------------------------------------------------------------


def last_sent_issue(session: Session) -> Issue | None:
    """The sent issue with the highest number, if any."""
    query = select(Issue).where(Issue.status == IssueStatus.SENT).order_by(Issue.number.desc())
    return session.scalars(query.limit(1)).first()


def next_issue_number(session: Session) -> int:
    """One more than the highest issue number ever assembled (sent or still sending)."""
    return (session.scalar(select(func.max(Issue.number))) or 0) + 1


def issue_subject(config: Config, number: int, day: date) -> str:
    """``[list] subject_template`` with ``{number}`` and ``{date}`` filled in."""
    template = str(config.get("list", "subject_template"))
    language = config.language
    try:
        subject = template.format(number=number, date=format_date(day, language))
    except (KeyError, IndexError, ValueError):
        raise ConfigError(
            "[list] subject_template in %(path)s: only {number} and {date} "
            "may appear in braces, got %(template)r",
            path=str(config.path),
            template=template,
        ) from None
    return check_text(subject, "subject", limit=MAX_TITLE, required=True)


def _link_view(link: Link) -> LinkView:
    tags = tuple(tag for tag in link.tags.split(",") if tag)
    return LinkView(
        url=link.url, title=link.title, source=link.source, excerpt=link.excerpt, tags=tags
    )


def issue_day(config: Config, at: datetime) -> date:
    """The date an issue assembled at ``at`` carries: the local date of its weekly slot (the
    regular slot nearest to ``at``, the earlier on a tie), so the Sunday email is dated Sunday
    even when it goes out on Monday by hand, or is delayed."""
    zone = config.timezone
    weekday = WEEKDAYS.index(str(config.get("schedule", "day")))
    hours, minutes = (int(part) for part in str(config.get("schedule", "time")).split(":"))
    local = at.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    slots = [
        datetime.combine(monday + timedelta(days=weekday + 7 * k), time(hours, minutes), zone)
        for k in (-1, 0, 1)
    ]
    return min(slots, key=lambda slot: (abs(slot - at), slot)).date()


def next_issue_view(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> IssueView:
    """What the next issue would look like if assembled at ``now`` (nothing is stored); dated
    by ``issue_day``."""
    draft = get_draft(session)
    number = next_issue_number(session)
    day = issue_day(config, now)
    return IssueView(
        number=number,
        subject=draft.subject or issue_subject(config, number, day),
        intro=draft.intro if intro is None else intro.strip(),
        date=day,
        links=tuple(_link_view(link) for link in queued_links(session)),
    )


def assemble_issue(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> Issue:
    """Number the next issue and move every queued link into it; the draft is cleared.

    Raises ``InvalidInputError`` when no link is queued (an empty week is skipped, not sent).
    """
    view = next_issue_view(session, config, now, intro)
    links = queued_links(session)
    if not links:
        raise InvalidInputError("no link is queued for the next issue")
    issue = Issue(
        number=view.number,
        subject=view.subject,
        intro=view.intro,
        status=IssueStatus.ASSEMBLED,
        created_at=now,
    )
    session.add(issue)
    session.flush()
    for link in links:
        link.issue_id = issue.id
    draft = session.get(IssueDraft, DRAFT_ID)
    if draft is not None:
        draft.intro, draft.subject, draft.updated_at = "", "", now
    session.flush()
    return issue


def issue_links(session: Session, issue: Issue) -> list[Link]:
    query = select(Link).where(Link.issue_id == issue.id).order_by(Link.position, Link.id)
    return list(session.scalars(query))


def issue_view(
    session: Session,
    issue: Issue,
    timezone: ZoneInfo | None = None,
    *,
    config: Config | None = None,
) -> IssueView:
    """The view of an assembled issue. Its date is ``issue_day`` with ``config``; without, the
    day it was assembled, in ``timezone`` (UTC when not given)."""
    if config is not None:
        day = issue_day(config, issue.created_at)
    else:
        day = issue.created_at.astimezone(timezone or UTC).date()
    return IssueView(
        number=issue.number,
        subject=issue.subject,
        intro=issue.intro,
        date=day,
        links=tuple(_link_view(link) for link in issue_links(session, issue)),
    )
