"""Publishing an issue: assemble the queued links, render once, store the parts and start the
send run. The dispatcher (at a slot) and ``send now`` both call ``publish_next_issue``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.content import assemble_issue, issue_links, issue_view
from newsletter.intake.clicks import tracked_view
from newsletter.models import Issue, RunKind, SendRun
from newsletter.sending.render import render_digest
from newsletter.sending.runs import start_send_run


def issue_run_key(number: int) -> str:
    """The idempotency key of issue ``number``'s send run."""
    return f"issue:{number}"


@dataclass(frozen=True)
class PublishedIssue:
    """An issue just assembled and the send run started for it."""

    issue: Issue
    run: SendRun


def publish_next_issue(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> PublishedIssue:
    """Assemble the next issue from every queued link, render it once, store its html/text and
    start its send run (key ``issue:N``, a snapshot of today's active subscribers).

    All in the caller's transaction, so a failure stores nothing. Raises
    ``InvalidInputError`` when no link is queued."""
    issue = assemble_issue(session, config, now, intro)
    view = issue_view(session, issue, config=config)
    if config.get("tracking", "clicks"):
        # Readers' clicks go through counted, signed redirects (newsletter.intake.clicks).
        ids = [link.id for link in issue_links(session, issue)]
        view = tracked_view(view, ids, config.base_url, config.secret_key)
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
