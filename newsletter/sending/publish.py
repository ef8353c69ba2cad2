"""Publishing an issue: assemble the queued links, render once, store the parts and start the
send run. The dispatcher (at a slot) and ``send now`` both call ``publish_next_issue``.

Rendering (jinja2 + premailer) takes a good part of a second: callers read the issue as it
would be (``issue_to_render``, a read transaction), render it (``render_issue``, no
transaction held) and hand the result to
``publish_next_issue``, whose write transaction then only stores it. If the queue changed in
between, the issue is rendered again inside, so what is stored is always what was assembled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.content import (
    IssueView,
    assemble_issue,
    issue_links,
    issue_view,
    next_issue_view,
    queued_links,
)
from newsletter.intake.clicks import tracked_view
from newsletter.models import Issue, RunKind, SendRun
from newsletter.sending.render import RenderedEmail, render_digest
from newsletter.sending.runs import start_send_run


def issue_run_key(number: int) -> str:
    """The idempotency key of issue ``number``'s send run."""
    return f"issue:{number}"


@dataclass(frozen=True)
class PublishedIssue:
    """An issue just assembled and the send run started for it."""

    issue: Issue
    run: SendRun


@dataclass(frozen=True)
class IssueToRender:
    """The next issue as it would be assembled now, and the ids of its links (in order)."""

    view: IssueView
    link_ids: tuple[int, ...]


@dataclass(frozen=True)
class RenderedIssue:
    """An issue as it would be sent (its view) and its rendering, made beforehand."""

    view: IssueView
    rendered: RenderedEmail


def issue_to_render(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> IssueToRender:
    """What ``publish_next_issue`` would assemble at ``now`` (a read: nothing is stored)."""
    view = next_issue_view(session, config, now, intro)
    return IssueToRender(view, tuple(link.id for link in queued_links(session)))


def render_issue(config: Config, issue: IssueToRender) -> RenderedIssue:
    """Render ``issue`` as it would be sent (no database: call it outside any transaction)."""
    view = _as_sent(config, issue.view, issue.link_ids)
    return RenderedIssue(view, render_digest(config, view))


def _as_sent(config: Config, view: IssueView, link_ids: Sequence[int]) -> IssueView:
    if config.get("tracking", "clicks"):
        # Readers' clicks go through counted, signed redirects (newsletter.intake.clicks).
        return tracked_view(view, link_ids, config.base_url, config.secret_key)
    return view


def publish_next_issue(
    session: Session,
    config: Config,
    now: datetime,
    intro: str | None = None,
    prepared: RenderedIssue | None = None,
) -> PublishedIssue:
    """Assemble the next issue from every queued link, render it once, store its html/text and
    start its send run (key ``issue:N``, a snapshot of today's active subscribers).

    ``prepared`` is used when it is the issue just assembled, else the issue is rendered
    here. All in the caller's transaction, so a failure stores nothing. Raises
    ``InvalidInputError`` when no link is queued."""
    issue = assemble_issue(session, config, now, intro)
    ids = [link.id for link in issue_links(session, issue)]
    view = _as_sent(config, issue_view(session, issue, config=config), ids)
    if prepared is not None and prepared.view == view:
        rendered = prepared.rendered
    else:
        rendered = render_digest(config, view)
    issue.subject, issue.html, issue.text = rendered.subject, rendered.html, rendered.text
    run = start_send_run(
        session,
        key=issue_run_key(issue.number),
        kind=RunKind.DIGEST,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        issue_id=issue.id,
        now=now,
    )
    return PublishedIssue(issue, run)
