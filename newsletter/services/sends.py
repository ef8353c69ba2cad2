"""Use cases of sending: publish now, preview, send a test, watch, pause and resume sends, and
each send's delivery report. The CLI, the dashboard and the API call these; each takes the
caller's session (one transaction per command or request) and the time ``now``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.config import Config
from newsletter.csvfile import csv_chunks
from newsletter.errors import ConflictError, NotFoundError
from newsletter.i18n import gettext
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    RunStatus,
    SendRun,
    Slot,
    SlotOutcome,
)
from newsletter.sending import (
    RECIPIENT_EMAIL_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    IssueToRender,
    Recipient,
    RenderedEmail,
    RenderedIssue,
    RunProgress,
    build_message,
    get_run,
    issue_run_key,
    issue_to_render,
    latest_run,
    pause_run,
    publish_next_issue,
    render_digest,
    render_issue,
    resume_run,
    run_progress,
    send_rendered,
)
from subscribers.models import SubscriberStatus
from subscribers.store import count_by_status
from subscribers.tokens import make_unsubscribe_token

RECENT_SENDS = 50
RECENT_START = timedelta(minutes=10)
# Deliveries that may have reached their recipient (a claimed message may be on the wire).
REACHED = (
    DeliveryStatus.SENT.value,
    DeliveryStatus.SENDING.value,
    DeliveryStatus.BOUNCED.value,
    DeliveryStatus.FAILED.value,
)
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


@dataclass(frozen=True)
class SendPreview:
    """What ``publish_now`` would send now: the issue's number, subject and link count, and
    how many people would get it."""

    issue_number: int
    subject: str
    links: int
    recipients: int


def preview_send(session: Session, config: Config, now: datetime) -> SendPreview:
    """What a send started now would be, for a confirmation question."""
    view = content.next_issue_view(session, config, now)
    return SendPreview(view.number, view.subject, len(view.links), active_recipients(session))


def active_recipients(session: Session) -> int:
    """How many subscribers a send started now would go to."""
    return count_by_status(session)[SubscriberStatus.ACTIVE.value]


def publish_now(
    session: Session,
    config: Config,
    now: datetime,
    intro: str | None = None,
    prepared: RenderedIssue | None = None,
) -> StartedSend:
    """Assemble the next issue from every queued link and start its send to every active
    subscriber.

    Checked before anything is assembled, so a refusal keeps the issue number and the links
    queued: ``ConflictError`` when nobody would get it (no active subscriber) or when the
    queue is empty because a send just started (a second submit of the same form; the message
    names that send), ``InvalidInputError`` when no link is queued.

    ``prepared`` (from ``prepare_issue``, made before this transaction) spares rendering
    here: the write transaction stays short."""
    check_can_publish(session, now)
    try:
        published = publish_next_issue(session, config, now, intro, prepared)
    except IntegrityError:
        # Two submits at the same instant on PostgreSQL: the other one numbered the issue.
        raise ConflictError(
            "another send of this issue started at the same moment; see the list of sends"
        ) from None
    return StartedSend(
        issue_number=published.issue.number,
        subject=published.issue.subject,
        run_id=published.run.id,
        run_key=published.run.key,
        recipients=run_progress(session, published.run.id, now).total,
    )


def check_can_publish(session: Session, now: datetime) -> None:
    """Raise ``ConflictError`` when a send started now would go to nobody, or when the queue
    is empty because a send of the next issue just started (see ``publish_now``)."""
    if not content.queued_links(session):
        running = _recent_digest_run(session, now)
        if running is not None:
            raise ConflictError(
                "issue #%(number)s is already being sent (send %(run_id)s, started at "
                "%(started)s UTC): follow it on its progress page",
                number=running[1],
                run_id=running[0].id,
                started=running[0].created_at.strftime("%H:%M:%S"),
            )
        return  # assembling refuses an empty queue with its own message
    if active_recipients(session) == 0:
        raise ConflictError(
            "no active subscriber would receive this issue: nothing was sent, and the issue "
            "and its links stay queued"
        )


def _recent_digest_run(session: Session, now: datetime) -> tuple[SendRun, int] | None:
    """The latest digest run and its issue number when it is still going or started within
    ``RECENT_START``; else ``None``."""
    row = session.execute(
        select(SendRun, Issue.number)
        .join(Issue, Issue.id == SendRun.issue_id)
        .order_by(SendRun.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    run, number = row[0], row[1]
    if run.status == RunStatus.DONE and now - run.created_at > RECENT_START:
        return None
    return run, number


# --- previews and tests ----------------------------------------------------------------------


def render_view(config: Config, view: content.IssueView) -> RenderedEmail:
    """The issue ``view`` rendered once, placeholders still in."""
    return render_digest(config, view)


def render_next_issue(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> RenderedEmail:
    """The next issue as it would be sent now, placeholders still in; ``intro`` previews an
    unsaved intro."""
    return render_digest(config, content.next_issue_view(session, config, now, intro))


def next_issue_view(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> content.IssueView:
    """What the next issue would hold if assembled now, for a preview (a read)."""
    return content.next_issue_view(session, config, now, intro)


def issue_to_publish(
    session: Session, config: Config, now: datetime, intro: str | None = None
) -> IssueToRender:
    """What ``publish_now`` would assemble now (a read), for ``prepare_issue``."""
    return issue_to_render(session, config, now, intro)


def prepare_issue(config: Config, issue: IssueToRender) -> RenderedIssue | None:
    """Render ``issue`` as it would be sent (jinja2 + premailer: most of a second) outside
    any transaction, for ``publish_now``; ``None`` when it has no link (nothing to send).
    Touches no database."""
    return render_issue(config, issue) if issue.view.links else None


# Previews and tests carry a real signed unsubscribe link, for a subscriber id that no row has.
PREVIEW_SUBSCRIBER_ID = 0


def preview_unsubscribe_url(config: Config) -> str:
    """Stands for a subscriber's personal link in previews and tests: signed like the real
    ones, for no subscriber, so it unsubscribes nobody."""
    token = make_unsubscribe_token(config.secret_key, PREVIEW_SUBSCRIBER_ID)
    return f"{config.base_url}/u/{token}"


def fill_preview(text: str, config: Config, email: str) -> str:
    """``text`` (a rendered part) with the personal placeholders filled for a preview."""
    text = text.replace(UNSUBSCRIBE_URL_PLACEHOLDER, preview_unsubscribe_url(config))
    return text.replace(RECIPIENT_EMAIL_PLACEHOLDER, email)


def preview_recipient(config: Config, email: str | None = None) -> Recipient:
    """Who a preview is addressed to: ``email``, or the list's From address."""
    address = email or str(config.get("list", "from_address"))
    return Recipient(email=address, name="", unsubscribe_url=preview_unsubscribe_url(config))


def preview_message(
    config: Config, rendered: RenderedEmail, email: str | None, now: datetime, *, test: bool = False
) -> bytes:
    """The MIME bytes of a preview of ``rendered`` addressed to ``email`` (or the From
    address); ``test`` marks the subject as a test send does."""
    return build_message(config, rendered, preview_recipient(config, email), now, test=test)


async def send_test(config: Config, rendered: RenderedEmail, email: str, now: datetime) -> None:
    """Send ``rendered`` to ``email`` with its subject marked as a preview; nothing is
    recorded. Raises ``DeliveryError`` when the relay refuses it or cannot be reached."""
    await send_rendered(config, rendered, preview_recipient(config, email), now, test=True)


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
    issue_ids = [run.issue_id for run in runs if run.issue_id is not None]
    query = select(Issue.id, Issue.number).where(Issue.id.in_(issue_ids))
    numbers = {row.id: row.number for row in session.execute(query)}
    return [
        SendSummary(run, numbers.get(run.issue_id or -1), run_progress(session, run.id, now))
        for run in runs
    ]


def pause_send(session: Session, run_id: int, reason: str, now: datetime) -> RunProgress:
    """Pause run ``run_id``: no new message starts. Raises ``NotFoundError``/``ConflictError``,
    or ``InvalidInputError`` for a reason with control characters (it is shown in terminals)."""
    reason = content.check_text(reason, "reason", limit=500)
    pause_run(session, run_id, reason, now)
    return run_progress(session, run_id, now)


def resume_send(session: Session, run_id: int, now: datetime) -> RunProgress:
    """Resume run ``run_id`` where it stopped. Raises ``NotFoundError``/``ConflictError``."""
    resume_run(session, run_id, now)
    return run_progress(session, run_id, now)


# --- the way out of a send that cannot prepare its message -----------------------------------


@dataclass(frozen=True)
class CancelledSend:
    """A send cancelled before anyone got it: its issue number is free again and its links
    are back at the head of the queue."""

    issue_number: int | None
    links_requeued: int


def reprepare_send(
    session: Session,
    config: Config,
    run_id: int,
    now: datetime,
    subject: str | None = None,
    intro: str | None = None,
) -> RunProgress:
    """Render run ``run_id``'s issue again (a fixed subject or intro, fixed settings) and
    resume the run. ``subject``/``intro`` replace the issue's; when omitted, the draft's are
    taken if the editor wrote any there, else the issue's own. Only for a paused issue send
    that nobody got yet. Raises ``NotFoundError``, ``ConflictError`` or ``InvalidInputError``
    (a value still not fit for a header, nothing changed)."""
    run, issue = _stuck_issue_run(session, run_id)
    draft = content.get_draft(session)
    chosen_subject = subject if subject is not None else draft.subject or issue.subject
    chosen_intro = intro if intro is not None else draft.intro or issue.intro
    issue.subject = content.check_text(chosen_subject, "subject", limit=content.MAX_TITLE)
    issue.intro = content.check_intro(chosen_intro)
    rendered = render_digest(config, content.issue_view(session, issue, config.timezone))
    issue.html, issue.text = rendered.html, rendered.text
    run.subject, run.html, run.text = rendered.subject, rendered.html, rendered.text
    if (subject is None and draft.subject) or (intro is None and draft.intro):
        content.clear_draft(session, now)
    session.flush()
    resume_run(session, run_id, now)
    return run_progress(session, run_id, now)


def cancel_send(session: Session, config: Config, run_id: int, now: datetime) -> CancelledSend:
    """Cancel issue send ``run_id`` before anyone got it: its recipients get nothing, the
    issue is withdrawn (its number is used again) and its links go back to the head of the
    queue, in their order. The run stays, finished, as the record of what happened (its id
    is never reused, so no sender can mistake a new run for it). Raises ``NotFoundError`` or
    ``ConflictError`` (a notice, a send that is running, or one that somebody already got:
    it can only be resumed)."""
    run, issue = _stuck_issue_run(session, run_id)
    _ = gettext(config.language)
    links = content.issue_links(session, issue)
    content.requeue_links(session, links)
    for slot in session.scalars(select(Slot).where(Slot.issue_id == issue.id)):
        slot.issue_id = None
        slot.outcome = SlotOutcome.SKIPPED.value
        slot.reason = _("send cancelled by an editor")
    session.execute(
        update(Delivery)
        .where(Delivery.run_id == run.id, Delivery.status.not_in(REACHED))
        .values(status=DeliveryStatus.SKIPPED.value, last_error="cancelled")
    )
    number = issue.number
    run.key = f"cancelled:{run.id}:{run.key}"[:100]
    run.issue_id = None
    run.status = RunStatus.DONE
    run.pause_reason = _("cancelled by an editor")
    run.finished_at = now
    session.flush()
    session.delete(issue)
    session.flush()
    return CancelledSend(issue_number=number, links_requeued=len(links))


def can_reprepare(session: Session, run_id: int) -> bool:
    """Whether run ``run_id`` may be prepared again or cancelled (a paused issue send that
    nobody got yet)."""
    try:
        _stuck_issue_run(session, run_id)
    except (ConflictError, NotFoundError):
        return False
    return True


def _stuck_issue_run(session: Session, run_id: int) -> tuple[SendRun, Issue]:
    """Run ``run_id`` and its issue when it is a paused issue send that nobody got yet."""
    run = get_run(session, run_id)
    issue = session.get(Issue, run.issue_id) if run.issue_id is not None else None
    if issue is None:
        raise ConflictError("send %(run_id)s is not the send of an issue", run_id=run_id)
    if run.status != RunStatus.PAUSED:
        raise ConflictError(
            "send %(run_id)s must be paused first (it is %(status)s)",
            run_id=run_id,
            status=run.status,
        )
    reached = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.run_id == run_id, Delivery.status.in_(REACHED))
    )
    if reached:
        raise ConflictError(
            "%(count)s recipients already got send %(run_id)s: it can only be resumed",
            count=reached,
            run_id=run_id,
        )
    return run, issue


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
