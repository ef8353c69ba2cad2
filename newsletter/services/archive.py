"""Use cases of the public archive: the issues already sent, as readers see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Issue, IssueStatus, Link


@dataclass(frozen=True)
class ArchivedLink:
    url: str
    title: str
    source: str
    excerpt: str


@dataclass(frozen=True)
class ArchivedIssue:
    number: int
    subject: str
    intro: str
    sent_at: datetime
    links: tuple[ArchivedLink, ...]


def _sent() -> Any:
    return select(Issue).where(Issue.status == IssueStatus.SENT.value, Issue.sent_at.is_not(None))


def _archived(session: Session, issue: Issue) -> ArchivedIssue:
    links = session.scalars(
        select(Link).where(Link.issue_id == issue.id).order_by(Link.position, Link.id)
    ).all()
    assert issue.sent_at is not None
    return ArchivedIssue(
        number=issue.number,
        subject=issue.subject,
        intro=issue.intro,
        sent_at=issue.sent_at,
        links=tuple(ArchivedLink(ln.url, ln.title, ln.source, ln.excerpt) for ln in links),
    )


def sent_issues(session: Session, limit: int | None = None) -> list[ArchivedIssue]:
    """Sent issues, newest first."""
    query = _sent().order_by(Issue.number.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_archived(session, issue) for issue in session.scalars(query)]


def sent_issue(session: Session, number: int) -> ArchivedIssue | None:
    """Sent issue ``number``, or ``None`` when there is none (or it was not sent)."""
    issue = session.scalars(_sent().where(Issue.number == number)).one_or_none()
    return _archived(session, issue) if issue else None
