"""The delivery ledger: one row per (send run, subscriber) and the SQL that claims it and
records what happened (runs themselves are started and moved along in ``newsletter.sending.runs``).

A row goes ``pending`` -> ``sending`` (claimed under a lease) -> ``sent`` | ``retry`` |
``failed`` | ``bounced`` | ``skipped``. Every function here is synchronous and takes a
``Session``; the async sender calls them through a thread (design decision 8). A worker that
dies leaves its rows ``sending`` with a lease that expires, and the next claim takes them again:
nothing is lost, and the only duplicates are messages that got the server's 250 but whose
``sent`` had not been committed (at most one claimed batch per worker).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Row, Table, and_, bindparam, select, update
from sqlalchemy.orm import Session

from newsletter.db import UTCDateTime
from newsletter.models import Delivery, DeliveryStatus, RunStatus, SendRun
from subscribers.models import ConsentKind, Subscriber, SubscriberStatus
from subscribers.store import ConsentContext, record_consent

MAX_BACKOFF = timedelta(hours=1)
NOT_SUBSCRIBED = "no longer subscribed"


@dataclass(frozen=True)
class Claim:
    """A delivery this worker now holds under a lease."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int


def claim_batch(
    session: Session, run_id: int, *, limit: int, now: datetime, lease: timedelta
) -> list[Claim]:
    """Take up to ``limit`` due deliveries of a running run: pending ones, retries whose time
    has come and ``sending`` ones whose lease expired. Recipients who are no longer active
    are marked ``skipped`` instead of returned. On PostgreSQL the rows are locked with
    ``FOR UPDATE SKIP LOCKED`` so concurrent workers take disjoint batches; SQLite serialises
    writers with ``BEGIN IMMEDIATE``."""
    status = session.scalar(select(SendRun.status).where(SendRun.id == run_id))
    if status != RunStatus.RUNNING:
        return []
    rows = _due_rows(session, run_id, limit, now)
    if not rows:
        return []
    people = _active_names(session, [r.subscriber_id for r in rows if r.subscriber_id])
    claims = [
        Claim(r.id, r.subscriber_id, r.email, people[r.subscriber_id], r.attempts)
        for r in rows
        if r.subscriber_id in people
    ]
    skipped = [r.id for r in rows if r.subscriber_id not in people]
    _set_status(session, skipped, DeliveryStatus.SKIPPED, now, last_error=NOT_SUBSCRIBED)
    if claims:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([c.delivery_id for c in claims]))
            .values(status=DeliveryStatus.SENDING, lease_until=now + lease, updated_at=now)
        )
    return claims


def renew_lease(
    session: Session, delivery_ids: Sequence[int], *, now: datetime, lease: timedelta
) -> None:
    """Extend the lease of deliveries this worker still holds (``sending``)."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.SENDING)
            .values(lease_until=now + lease)
        )


def still_active(session: Session, subscriber_ids: Sequence[int]) -> set[int]:
    """Which of ``subscriber_ids`` are still active (checked again just before sending)."""
    return set(_active_names(session, subscriber_ids))


DueRow = Row[int, int | None, str, int]


def _due_rows(session: Session, run_id: int, limit: int, now: datetime) -> list[DueRow]:
    """Expired leases, then due retries, then pending rows, oldest first within each state:
    one query per state, each an ordered range of ``ix_delivery_run_status`` that stops at
    ``limit``. (One OR across the states made SQLite read and sort every row of the run at
    each claim: quadratic in the number of recipients.)"""
    states = (
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
        and_(Delivery.status == DeliveryStatus.RETRY, Delivery.next_attempt_at <= now),
        Delivery.status == DeliveryStatus.PENDING,
    )
    rows: list[DueRow] = []
    for state in states:
        if len(rows) >= limit:
            break
        rows += session.execute(
            select(Delivery.id, Delivery.subscriber_id, Delivery.email, Delivery.attempts)
            .where(Delivery.run_id == run_id, state)
            .order_by(Delivery.id)
            .limit(limit - len(rows))
            .with_for_update(skip_locked=True, of=Delivery)
        ).all()
    return rows


def _active_names(session: Session, subscriber_ids: Sequence[int]) -> dict[int, str]:
    if not subscriber_ids:
        return {}
    query = select(Subscriber.id, Subscriber.name).where(
        Subscriber.id.in_(subscriber_ids), Subscriber.status == SubscriberStatus.ACTIVE
    )
    return {row.id: row.name for row in session.execute(query)}


def _set_status(
    session: Session, ids: Sequence[int], status: str, now: datetime, last_error: str = ""
) -> None:
    if ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=status, lease_until=None, updated_at=now, last_error=last_error[:500])
        )


class OutcomeKind(StrEnum):
    SENT = "sent"  # the server answered 250
    TEMPORARY = "temporary"  # 4xx, timeout or dropped connection: retry with backoff
    PERMANENT = "permanent"  # 5xx for this recipient: a hard bounce
    RELEASED = "released"  # not attempted (run paused, relay unreachable): back to the queue
    SKIPPED = "skipped"  # the subscriber left between the claim and their turn
    FAILED = "failed"  # no message could be built for this recipient (e.g. a broken address)


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    subscriber_id: int
    kind: OutcomeKind
    error: str = ""
    at: datetime | None = None  # when it happened (sent: the server's 250); default: now


@dataclass(frozen=True)
class RetryPolicy:
    """How temporary failures are retried: ``base * 2**(attempt-1)``, capped at an hour."""

    max_attempts: int = 5
    base_delay: timedelta = timedelta(minutes=1)
    soft_bounce_limit: int = 3
    # Key of the consent log's address hashes; when set, a subscriber marked bounced gets a
    # ``bounced`` consent event.
    secret: str = field(default="", repr=False)

    def delay(self, attempt: int) -> timedelta:
        factor: int = 2 ** max(attempt - 1, 0)
        return min(self.base_delay * factor, MAX_BACKOFF)


def record_outcomes(
    session: Session, outcomes: Iterable[Outcome], *, now: datetime, policy: RetryPolicy
) -> None:
    """Write what happened to claimed deliveries, in the caller's (one) transaction.

    ``sent`` is recorded whatever the row's state, since the message did go out. A temporary
    failure becomes ``retry`` until ``policy.max_attempts`` then ``failed`` (a soft bounce); a
    permanent one becomes ``bounced`` and marks the subscriber bounced."""
    by_kind: dict[OutcomeKind, list[Outcome]] = {kind: [] for kind in OutcomeKind}
    for outcome in outcomes:
        by_kind[outcome.kind].append(outcome)
    _record_sent(session, by_kind[OutcomeKind.SENT], now)
    _record_temporary(session, by_kind[OutcomeKind.TEMPORARY], now, policy)
    _record_bounced(session, by_kind[OutcomeKind.PERMANENT], now, policy)
    _release(session, by_kind[OutcomeKind.RELEASED], now)
    for outcome in by_kind[OutcomeKind.FAILED]:
        _set_status(session, [outcome.delivery_id], DeliveryStatus.FAILED, now, outcome.error)
    skipped = [o.delivery_id for o in by_kind[OutcomeKind.SKIPPED]]
    _set_status(session, skipped, DeliveryStatus.SKIPPED, now, last_error=NOT_SUBSCRIBED)


def _record_sent(session: Session, sent: list[Outcome], now: datetime) -> None:
    if not sent:
        return
    # One statement, executed for every row with its own time of the server's 250.
    table = Delivery.__table__
    assert isinstance(table, Table)
    session.execute(
        update(table)
        .where(table.c.id == bindparam("delivery_id"))
        .values(
            status=DeliveryStatus.SENT,
            sent_at=bindparam("at", type_=UTCDateTime()),
            lease_until=None,
            next_attempt_at=None,
            updated_at=now,
            attempts=table.c.attempts + 1,
            last_error="",
        ),
        [{"delivery_id": o.delivery_id, "at": o.at or now} for o in sent],
    )
    # "Soft bounces in a row": a delivered message resets the count.
    session.execute(
        update(Subscriber)
        .where(Subscriber.id.in_([o.subscriber_id for o in sent]), Subscriber.soft_bounces > 0)
        .values(soft_bounces=0)
    )


def _record_temporary(
    session: Session, failures: list[Outcome], now: datetime, policy: RetryPolicy
) -> None:
    if not failures:
        return
    ids = [o.delivery_id for o in failures]
    attempts = dict(
        session.execute(select(Delivery.id, Delivery.attempts).where(Delivery.id.in_(ids))).all()
    )
    exhausted: list[int] = []
    for outcome in failures:
        attempt = attempts.get(outcome.delivery_id, 0) + 1
        final = attempt >= policy.max_attempts
        if final:
            exhausted.append(outcome.subscriber_id)
        session.execute(
            update(Delivery)
            .where(Delivery.id == outcome.delivery_id, Delivery.status != DeliveryStatus.SENT)
            .values(
                status=DeliveryStatus.FAILED if final else DeliveryStatus.RETRY,
                attempts=attempt,
                lease_until=None,
                next_attempt_at=None if final else now + policy.delay(attempt),
                last_error=outcome.error[:500],
                updated_at=now,
            )
        )
    _count_soft_bounces(session, exhausted, now, policy)


def _count_soft_bounces(
    session: Session, subscriber_ids: list[int], now: datetime, policy: RetryPolicy
) -> None:
    if not subscriber_ids:
        return
    session.execute(
        update(Subscriber)
        .where(Subscriber.id.in_(subscriber_ids))
        .values(soft_bounces=Subscriber.soft_bounces + 1)
    )
    if policy.soft_bounce_limit > 0:
        over = session.scalars(
            select(Subscriber.id).where(
                Subscriber.id.in_(subscriber_ids),
                Subscriber.soft_bounces >= policy.soft_bounce_limit,
            )
        )
        detail = f"{policy.soft_bounce_limit} soft bounces in a row"
        _mark_bounced(session, list(over), now, policy.secret, detail)


def _mark_bounced(
    session: Session, subscriber_ids: list[int], now: datetime, secret: str, detail: str
) -> None:
    """Stop mailing these (still active) subscribers, with a consent-log entry each."""
    if not subscriber_ids:
        return
    people = session.scalars(
        select(Subscriber).where(
            Subscriber.id.in_(subscriber_ids), Subscriber.status == SubscriberStatus.ACTIVE
        )
    )
    for person in people:
        person.status = SubscriberStatus.BOUNCED
        person.bounced_at = now
        if secret:
            context = ConsentContext(source="delivery", detail=detail[:500])
            record_consent(session, secret, person, ConsentKind.BOUNCED, now, context)


def _record_bounced(
    session: Session, bounces: list[Outcome], now: datetime, policy: RetryPolicy
) -> None:
    for outcome in bounces:
        session.execute(
            update(Delivery)
            .where(Delivery.id == outcome.delivery_id, Delivery.status != DeliveryStatus.SENT)
            .values(
                status=DeliveryStatus.BOUNCED,
                attempts=Delivery.attempts + 1,
                lease_until=None,
                next_attempt_at=None,
                last_error=outcome.error[:500],
                updated_at=now,
            )
        )
    for outcome in bounces:
        detail = f"hard bounce: {outcome.error}"
        _mark_bounced(session, [outcome.subscriber_id], now, policy.secret, detail)


def _release(session: Session, released: list[Outcome], now: datetime) -> None:
    # Not attempted: due again at once, without spending an attempt (a relay outage must not
    # use up anybody's attempts while the circuit breaker pauses the run).
    for outcome in released:
        session.execute(
            update(Delivery)
            .where(Delivery.id == outcome.delivery_id, Delivery.status == DeliveryStatus.SENDING)
            .values(
                status=DeliveryStatus.RETRY,
                lease_until=None,
                next_attempt_at=now,
                last_error=outcome.error[:500],
                updated_at=now,
            )
        )
