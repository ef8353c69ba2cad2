"""Click counts as editors see them: each past issue's links ranked by readers' clicks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import NotFoundError
from newsletter.models import Issue, IssueStatus, Link


@dataclass(frozen=True)
class LinkClicks:
    link_id: int
    title: str
    url: str
    clicks: int
    bot_clicks: int


@dataclass(frozen=True)
class IssueClicks:
    number: int
    subject: str
    links: tuple[LinkClicks, ...]  # most clicked first

    @property
    def total(self) -> int:
        return sum(link.clicks for link in self.links)


def issue_clicks(session: Session, number: int) -> IssueClicks:
    """Issue ``number``'s links, most clicked first. Raises ``NotFoundError``."""
    issue = session.scalar(select(Issue).where(Issue.number == number))
    if issue is None:
        raise NotFoundError("no issue #%(number)s", None, number=number)
    return _ranked(session, issue)


def recent_issue_clicks(session: Session, limit: int = 10) -> list[IssueClicks]:
    """The last ``limit`` sent or sending issues, newest first, each with its ranked links."""
    issues = session.scalars(
        select(Issue)
        .where(Issue.status.in_((IssueStatus.SENT, IssueStatus.ASSEMBLED)))
        .order_by(Issue.number.desc())
        .limit(limit)
    )
    return [_ranked(session, issue) for issue in issues]


def _ranked(session: Session, issue: Issue) -> IssueClicks:
    links = session.scalars(
        select(Link)
        .where(Link.issue_id == issue.id)
        .order_by(Link.clicks.desc(), Link.position, Link.id)
    )
    return IssueClicks(
        number=issue.number,
        subject=issue.subject,
        links=tuple(
            LinkClicks(link.id, link.title, link.url, link.clicks, link.bot_clicks)
            for link in links
        ),
    )
