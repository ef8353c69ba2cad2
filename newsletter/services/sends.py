"""Use cases of sending: publish now, preview, send a test, watch, pause and resume sends, and
each send's delivery report. The CLI, the dashboard and the API call these; each takes the
caller's session (one transaction per command or request) and the time ``now``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.config import Config
from newsletter.csvfile import csv_chunks
from newsletter.errors import NotFoundError
from newsletter.models import Delivery, Issue, SendRun
from newsletter.sending import (
    RECIPIENT_EMAIL_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    Recipient,
    RenderedEmail,
    RunProgress,
    get_run,
    issue_run_key,
    latest_run,
    pause_run,
    publish_next_issue,
    render_digest,
    resume_run,
    run_progress,
    send_rendered,
)
from subscribers.models import SubscriberStatus
from subscribers.store import count_by_status

RECENT_SENDS = 50
REPORT_COLUMNS = ("email", "status", "attempts", "last_error", "sent_at")


@dataclass(frozen=True)
class StartedSend:
    """The send ``publish_now`` started: its issue and its run."""

    issue_number: int
    subject: str
    run_id: int
    run_key: str
    recipients: int


@dataclass(frozen=True)
class SendSummary:
    """One send in the list of recent sends: its run, its issue's number (``None`` for a
    notice) and its progress."""

    run: SendRun
    issue: int | None
    progress: RunProgress


@dataclass(frozen=True)
class DeliveryRow:
    """One recipient of a send, for the delivery report."""

    email: str
    status: str
    attempts: int
    last_error: str
    sent_at: datetime | None


def active_recipients(session: Session) -> int:
    """How many subscribers a send started now would go to."""
    return count_by_status(session)[SubscriberStatus.ACTIVE.value]


def publish_now(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> StartedSend:
    """Assemble the next issue from every queued link and start its send to every active
    subscriber. Raises ``InvalidInputError`` when no link is queued."""
    published = publish_next_issue(session, config, now, intro)
    return StartedSend(
        issue_number=published.issue.number,
        subject=published.issue.subject,
        run_id=published.run.id,
        run_key=published.run.key,
        recipients=run_progress(session, published.run.id, now).total,
    )


# --- previews and tests ----------------------------------------------------------------------


def render_next_issue(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> RenderedEmail:
    """The next issue as it would be sent now, placeholders still in; ``intro`` previews an
    unsaved intro."""
    return render_digest(config, content.next_issue_view(session, config, now, intro))


def preview_unsubscribe_url(config: Config) -> str:
    """Stands for a subscriber's personal link in previews and tests; it unsubscribes nobody."""
    return f"{config.base_url}/u/preview"


def fill_preview(text: str, config: Config, email: str) -> str:
    """``text`` (a rendered part) with the personal placeholders filled for a preview."""
    text = text.replace(UNSUBSCRIBE_URL_PLACEHOLDER, preview_unsubscribe_url(config))
    return text.replace(RECIPIENT_EMAIL_PLACEHOLDER, email)


async def send_test(config: Config, rendered: RenderedEmail, email: str, now: datetime) -> None:
    """Send ``rendered`` to ``email`` with its subject marked as a preview; nothing is
    recorded. Raises ``DeliveryError`` when the relay refuses it or cannot be reached."""
    recipient = Recipient(email=email, name="", unsubscribe_url=preview_unsubscribe_url(config))
    await send_rendered(config, rendered, recipient, now, test=True)


# --- watching and steering sends -------------------------------------------------------------


def resolve_run_id(session: Session, run_id: int | None) -> int:
    """``run_id`` if it exists, else the latest run's; raises ``NotFoundError``."""
    return get_run(session, run_id).id if run_id is not None else latest_run(session).id


def send_progress(session: Session, run_id: int, now: datetime) -> RunProgress:
    """Where run ``run_id`` stands; raises ``NotFoundError``."""
    return run_progress(session, run_id, now)


def recent_sends(session: Session, now: datetime, limit: int = RECENT_SENDS) -> list[SendSummary]:
    """The latest ``limit`` sends, newest first, with their progress and issue number."""
    runs = session.scalars(select(SendRun).order_by(SendRun.id.desc()).limit(limit)).all()
    numbers = dict(session.execute(select(Issue.id, Issue.number)).tuples().all())
    return [
        SendSummary(run, numbers.get(run.issue_id or -1), run_progress(session, run.id, now))
        for run in runs
    ]


def pause_send(session: Session, run_id: int, reason: str, now: datetime) -> RunProgress:
    """Pause run ``run_id``: no new message starts. Raises ``NotFoundError``/``ConflictError``."""
    pause_run(session, run_id, reason, now)
    return run_progress(session, run_id, now)


def resume_send(session: Session, run_id: int, now: datetime) -> RunProgress:
    """Resume run ``run_id`` where it stopped. Raises ``NotFoundError``/``ConflictError``."""
    resume_run(session, run_id, now)
    return run_progress(session, run_id, now)


# --- the delivery report ---------------------------------------------------------------------


def send_report(session: Session, run_id: int, status: str | None = None) -> list[DeliveryRow]:
    """One row per recipient of run ``run_id`` (only those in ``status`` when given), in
    snapshot order. Raises ``NotFoundError`` when there is no such run."""
    get_run(session, run_id)
    query = select(
        Delivery.email, Delivery.status, Delivery.attempts, Delivery.last_error, Delivery.sent_at
    ).where(Delivery.run_id == run_id)
    if status:
        query = query.where(Delivery.status == status)
    return [DeliveryRow(*row) for row in session.execute(query.order_by(Delivery.id))]


def issue_send_report(
    session: Session, number: int, status: str | None = None
) -> list[DeliveryRow]:
    """The delivery report of issue ``number``; raises ``NotFoundError`` when it was never
    sent."""
    run_id = session.scalar(select(SendRun.id).where(SendRun.key == issue_run_key(number)))
    if run_id is None:
        raise NotFoundError("issue #%(number)s has not been sent", number=number)
    return send_report(session, run_id, status)


def report_csv(rows: list[DeliveryRow]) -> Iterator[str]:
    """A delivery report as formula-safe CSV text, in chunks (for a streaming response)."""
    cells = (
        (row.email, row.status, row.attempts, row.last_error, _iso(row.sent_at)) for row in rows
    )
    return csv_chunks(REPORT_COLUMNS, cells)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
