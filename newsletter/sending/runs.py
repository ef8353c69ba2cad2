"""Send runs: starting one with its recipient snapshot, and its lifecycle (pause, resume,
finish) and progress.

A run is created with one ``pending`` delivery per active subscriber; ``newsletter.sending.ledger``
then claims and records those deliveries. Every function here is synchronous and takes a
``Session``, in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.errors import ConflictError, NotFoundError
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    RunStatus,
    SendRun,
)
from newsletter.sending.ledger import Owner, stopped_pids
from subscribers.models import Subscriber, SubscriberStatus

OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRY)


def start_send_run(
    session: Session,
    *,
    key: str,
    kind: str,
    subject: str,
    html: str,
    text: str,
    issue_id: int | None,
    now: datetime,
) -> SendRun:
    """Create the run ``key`` and its recipient snapshot (every active subscriber, one
    ``pending`` delivery each) in one INSERT..SELECT; return the existing run if ``key`` was
    already started, so a job that fires twice sends once."""
    existing = session.scalar(select(SendRun).where(SendRun.key == key))
    if existing is not None:
        return existing
    run = SendRun(
        key=key,
        kind=kind,
        subject=subject,
        html=html,
        text=text,
        issue_id=issue_id,
        status=RunStatus.RUNNING,
        pause_reason="",
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        # Another process started the same key between our SELECT and INSERT (PostgreSQL).
        return session.scalars(select(SendRun).where(SendRun.key == key)).one()
    _snapshot_recipients(session, run.id, now)
    return run


def _snapshot_recipients(session: Session, run_id: int, now: datetime) -> None:
    active = select(
        literal(run_id),
        Subscriber.id,
        Subscriber.email,
        literal(DeliveryStatus.PENDING.value),
        literal(0),
        literal(""),
        literal(now, Delivery.updated_at.type),
    ).where(Subscriber.status == SubscriberStatus.ACTIVE)
    columns = ["run_id", "subscriber_id", "email", "status", "attempts", "last_error"]
    session.execute(insert(Delivery).from_select([*columns, "updated_at"], active))


def running_run_ids(session: Session) -> list[int]:
    """Ids of the runs in status ``running``, oldest first."""
    query = select(SendRun.id).where(SendRun.status == RunStatus.RUNNING).order_by(SendRun.id)
    return list(session.scalars(query))


def get_run(session: Session, run_id: int) -> SendRun:
    """The run ``run_id``; raises ``NotFoundError``."""
    run = session.get(SendRun, run_id)
    if run is None:
        raise NotFoundError("no send run %(run_id)s", run_id=run_id)
    return run


def latest_run(session: Session) -> SendRun:
    """The most recent run; raises ``NotFoundError`` when nothing was ever sent."""
    run = session.scalar(select(SendRun).order_by(SendRun.id.desc()).limit(1))
    if run is None:
        raise NotFoundError("no send has been started yet")
    return run


def _has_open(session: Session, run_id: int) -> bool:
    # Asked after every batch: an indexed LIMIT 1, not a count of every open row.
    query = select(Delivery.id).where(Delivery.run_id == run_id, Delivery.status.in_(OPEN_STATUSES))
    return session.scalar(query.limit(1)) is not None


def next_due_at(
    session: Session, run_id: int, now: datetime, owner: Owner | None = None
) -> datetime | None:
    """When the earliest open delivery of ``run_id`` becomes claimable by ``owner`` (default:
    this process): ``now`` when one is pending or held by a stopped process of its host, else
    the earliest retry time or lease expiry; None when nothing is open."""
    pending = session.scalar(
        select(Delivery.id)
        .where(Delivery.run_id == run_id, Delivery.status == DeliveryStatus.PENDING)
        .limit(1)
    )
    if pending is not None or stopped_pids(session, run_id, owner or Owner.this_process()):
        return now
    retry = session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.run_id == run_id, Delivery.status == DeliveryStatus.RETRY
        )
    )
    lease = session.scalar(
        select(func.min(Delivery.lease_until)).where(
            Delivery.run_id == run_id, Delivery.status == DeliveryStatus.SENDING
        )
    )
    candidates = [t for t in (retry, lease) if t is not None]
    return min(candidates) if candidates else None


def finish_run_if_complete(session: Session, run_id: int, now: datetime) -> bool:
    """Mark the run done (and its issue sent) when no delivery is open; True if it is done."""
    run = get_run(session, run_id)
    if run.status == RunStatus.DONE:
        return True
    if _has_open(session, run_id):
        return False
    run.status = RunStatus.DONE
    run.finished_at = now
    if run.issue_id is not None:
        issue = session.get(Issue, run.issue_id)
        if issue is not None and issue.status != IssueStatus.SENT:
            issue.status = IssueStatus.SENT
            issue.sent_at = now
    return True


def pause_run(session: Session, run_id: int, reason: str, now: datetime) -> SendRun:
    """Stop claiming for ``run_id``; messages in flight finish and are recorded.

    Raises ``NotFoundError`` or ``ConflictError`` when the run is already done."""
    run = get_run(session, run_id)
    if run.status == RunStatus.DONE:
        raise ConflictError("send run %(run_id)s is already finished", run_id=run_id)
    run.status = RunStatus.PAUSED
    run.pause_reason = reason[:500]
    return run


def pause_if_running(session: Session, run_id: int, reason: str) -> bool:
    """Pause ``run_id`` if it is running, atomically (one conditional UPDATE, so of several
    workers tripping at once exactly one pauses it). True if this call paused it."""
    result = session.execute(
        update(SendRun)
        .where(SendRun.id == run_id, SendRun.status == RunStatus.RUNNING)
        .values(status=RunStatus.PAUSED, pause_reason=reason[:500])
    )
    return bool(getattr(result, "rowcount", 0))


def resume_run(session: Session, run_id: int, now: datetime) -> SendRun:
    """Let a paused run be claimed again; retries waiting for their backoff become due now.

    Raises ``NotFoundError`` or ``ConflictError`` when the run is already done."""
    run = get_run(session, run_id)
    if run.status == RunStatus.DONE:
        raise ConflictError("send run %(run_id)s is already finished", run_id=run_id)
    run.status = RunStatus.RUNNING
    run.pause_reason = ""
    session.execute(
        update(Delivery)
        .where(Delivery.run_id == run_id, Delivery.status == DeliveryStatus.RETRY)
        .values(next_attempt_at=now)
    )
    return run
