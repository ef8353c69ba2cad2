"""Delivery, the public surface: start a send, run the sender, pause, resume, watch progress.

The mechanics live in ``runs`` (runs and their lifecycle), ``ledger`` (the SQL of the
delivery ledger) and ``sender`` (the asyncio workers over pooled SMTP connections). Callers
(use cases, the dispatcher, benchmarks) use the names exported by ``newsletter.sending``:

- ``start_send_run(session, *, key, kind, subject, html, text, issue_id, now) -> SendRun``
- ``await run_sender(config, engine, *, now_fn, stop_when_idle, stop, options, ...)``
- ``pause_run`` / ``resume_run`` / ``run_progress(session, run_id, now)``
- ``delivery_service(config, engine)``: the worker loop for ``newsletter serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.models import ClaimRecovery, Delivery, DeliveryStatus, SendRun
from newsletter.sending.builders import MessageFactory, RunMessage, default_message_factory
from newsletter.sending.ledger import Claim, Owner, pid_running
from newsletter.sending.outcomes import DeliveryOutcome, DeliveryOutcomeKind, RetryPolicy
from newsletter.sending.runs import (
    OPEN_STATUSES,
    get_run,
    latest_run,
    pause_run,
    resume_run,
    start_send_run,
)
from newsletter.sending.sender import SenderOptions, SenderStats, run_sender

__all__ = [
    "Claim",
    "DeliveryOutcome",
    "DeliveryOutcomeKind",
    "MessageFactory",
    "RetryPolicy",
    "RunMessage",
    "RunProgress",
    "SenderOptions",
    "SenderStats",
    "StoppedSender",
    "default_message_factory",
    "delivery_service",
    "get_run",
    "latest_run",
    "pause_run",
    "resume_run",
    "run_progress",
    "run_sender",
    "start_send_run",
]

RATE_WINDOW = timedelta(minutes=1)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoppedSender:
    """``count`` messages held by a sender (``pid`` on ``host``) that stopped: its process is
    gone from this host, or its lease ran out. ``taken_back_at`` is when another sender took
    them back; while they are still held, ``due_at`` is when a sender may take them (the end
    of the lease, or at once on the stopped process's own host)."""

    host: str
    pid: int | None
    count: int
    taken_back_at: datetime | None = None
    due_at: datetime | None = None


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands: counts per delivery status, recent rate, ETA and last errors."""

    run_id: int
    key: str
    subject: str
    status: str
    pause_reason: str
    counts: dict[str, int]
    total: int
    rate: float  # messages sent per second over (at most) the last minute
    eta: timedelta | None  # None when nothing is being sent
    last_errors: tuple[tuple[str, str], ...]  # (email, error), most recent first
    # Senders that stopped while holding messages: still held first, then taken back (most
    # recent first).
    stopped_senders: tuple[StoppedSender, ...] = ()

    @property
    def open(self) -> int:
        return sum(self.counts.get(status, 0) for status in OPEN_STATUSES)

    @property
    def finished(self) -> int:
        return self.total - self.open

    def as_json(self) -> dict[str, Any]:
        """The JSON shape of this progress (the dashboard's progress.json and the API's)."""
        counts = self.counts
        return {
            "run_id": self.run_id,
            "key": self.key,
            "subject": self.subject,
            "status": self.status,
            "pause_reason": self.pause_reason,
            "total": self.total,
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0) + counts.get("bounced", 0),
            "skipped": counts.get("skipped", 0),
            "pending": self.open,
            "counts": counts,
            "rate": round(self.rate, 3),
            "eta_seconds": int(self.eta.total_seconds()) if self.eta else None,
            "last_errors": [{"email": e, "error": m} for e, m in self.last_errors],
        }


def run_progress(session: Session, run_id: int, now: datetime) -> RunProgress:
    """The progress of run ``run_id`` at ``now``; raises ``NotFoundError``."""
    run = get_run(session, run_id)
    counts = {
        str(status): int(count)
        for status, count in session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.run_id == run_id)
            .group_by(Delivery.status)
        )
    }
    recent, first = session.execute(
        select(func.count(), func.min(Delivery.sent_at)).where(
            Delivery.run_id == run_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at > now - RATE_WINDOW,
        )
    ).one()
    # Over the last minute, or since the first message of that minute for a younger send.
    span = max((now - first).total_seconds(), 1.0) if first is not None else 1.0
    rate = int(recent or 0) / span
    open_count = sum(counts.get(status, 0) for status in OPEN_STATUSES)
    if open_count == 0:
        # A finished send keeps the rate it ran at: its whole span, not one that grows with now.
        rate = _finished_rate(session, run_id)
    eta = timedelta(seconds=open_count / rate) if rate and open_count else None
    return RunProgress(
        run_id=run.id,
        key=run.key,
        subject=run.subject,
        status=run.status,
        pause_reason=run.pause_reason,
        counts=counts,
        total=sum(counts.values()),
        rate=rate,
        eta=eta,
        last_errors=_last_errors(session, run),
        stopped_senders=(*_still_held(session, run.id, now), *_taken_back(session, run.id)),
    )


def _still_held(session: Session, run_id: int, now: datetime) -> list[StoppedSender]:
    owner = Owner.this_process()
    rows = session.execute(
        select(
            Delivery.claim_host, Delivery.claim_pid, func.count(), func.max(Delivery.lease_until)
        )
        .where(Delivery.run_id == run_id, Delivery.status == DeliveryStatus.SENDING)
        .group_by(Delivery.claim_host, Delivery.claim_pid)
    )
    stopped = []
    for host, pid, count, lease_until in rows:
        gone = host == owner.host and pid is not None and not pid_running(pid)
        if gone or (lease_until is not None and lease_until < now):
            due = now if gone else lease_until
            stopped.append(StoppedSender(host, pid, int(count), due_at=due))
    return stopped


def _taken_back(session: Session, run_id: int, limit: int = 3) -> list[StoppedSender]:
    rows = session.scalars(
        select(ClaimRecovery)
        .where(ClaimRecovery.run_id == run_id)
        .order_by(ClaimRecovery.id.desc())
        .limit(limit)
    )
    return [StoppedSender(r.host, r.pid, r.count, taken_back_at=r.taken_at) for r in rows]


def _finished_rate(session: Session, run_id: int) -> float:
    """Messages per second from the run's first to its last sent message (0 when none)."""
    sent, first, last = session.execute(
        select(func.count(), func.min(Delivery.sent_at), func.max(Delivery.sent_at)).where(
            Delivery.run_id == run_id, Delivery.status == DeliveryStatus.SENT
        )
    ).one()
    if not sent or first is None or last is None:
        return 0.0
    return int(sent) / max((last - first).total_seconds(), 1.0)


def _last_errors(session: Session, run: SendRun, limit: int = 5) -> tuple[tuple[str, str], ...]:
    rows = session.execute(
        select(Delivery.email, Delivery.last_error)
        .where(Delivery.run_id == run.id, Delivery.last_error != "")
        .order_by(Delivery.updated_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    return tuple((row.email, row.last_error) for row in rows)


@contextlib.asynccontextmanager
async def delivery_service(
    config: Config,
    engine: Engine,
    options: SenderOptions | None = None,
    *,
    restart_delay: float = 5.0,
    message_factory: MessageFactory = default_message_factory,
) -> AsyncIterator[asyncio.Task[SenderStats]]:
    """Run a sender in the background of the current loop for as long as the context lasts:
    it picks up every running send run (started by the schedule, the CLI or the web app).
    If the database fails under it, it logs the error and starts again after
    ``restart_delay`` seconds (claims it held expire and are taken again). On exit it stops
    claiming, lets in-flight messages finish and be recorded."""
    stop = asyncio.Event()

    async def serve() -> SenderStats:
        while True:
            try:
                return await run_sender(
                    config,
                    engine,
                    stop_when_idle=False,
                    stop=stop,
                    options=options,
                    message_factory=message_factory,
                )
            except (SQLAlchemyError, OSError):
                logger.exception("the delivery worker failed; restarting in %s s", restart_delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=restart_delay)
                if stop.is_set():
                    return SenderStats()

    task = asyncio.create_task(serve(), name="delivery-service")
    try:
        yield task
    finally:
        stop.set()
        await task
