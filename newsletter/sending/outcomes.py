"""The delivery ledger, outcome side: what happened to claimed deliveries (sent after the
server's 250, retry, failed, bounced, released, skipped), written in the caller's transaction.

Every UPDATE here is guarded by the claim token (``delivery.claim_token``) and the ``sending``
state: an owner whose claim was taken back, or whose outcome was already written, changes
nothing, neither on the delivery nor on the subscriber.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from newsletter.db import UTCDateTime
from newsletter.models import Delivery, DeliveryStatus
from newsletter.sending.ledger import NOT_SUBSCRIBED, Claim
from subscribers.models import ConsentKind, Subscriber, SubscriberStatus
from subscribers.store import ConsentContext, record_consent

MAX_BACKOFF = timedelta(hours=1)


class DeliveryOutcomeKind(StrEnum):
    SENT = "sent"  # the server answered 250
    TEMPORARY = "temporary"  # 4xx, timeout or dropped connection: retry with backoff
    PERMANENT = "permanent"  # 5xx for this recipient: a hard bounce
    RELEASED = "released"  # not attempted (run paused, relay unreachable): back to the queue
    SKIPPED = "skipped"  # the subscriber left between the claim and their turn
    FAILED = "failed"  # no message could be built for this recipient (e.g. a broken address)


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one claimed delivery."""

    claim: Claim
    kind: DeliveryOutcomeKind
    error: str = ""
    at: datetime | None = None  # when it happened (sent: the server's 250); default: now

    @property
    def delivery_id(self) -> int:
        return self.claim.delivery_id

    @property
    def subscriber_id(self) -> int:
        return self.claim.subscriber_id


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
    session: Session, outcomes: Iterable[DeliveryOutcome], *, now: datetime, policy: RetryPolicy
) -> None:
    """Write what happened to claimed deliveries, in the caller's (one) transaction, where
    each outcome's claim still holds its row (see the module's docstring).

    A temporary failure becomes ``retry`` until ``policy.max_attempts`` then ``failed`` (a
    soft bounce); a permanent one becomes ``bounced`` and marks the subscriber bounced."""
    by_kind: dict[DeliveryOutcomeKind, list[DeliveryOutcome]] = {
        kind: [] for kind in DeliveryOutcomeKind
    }
    for outcome in outcomes:
        by_kind[outcome.kind].append(outcome)
    _record_sent(session, by_kind[DeliveryOutcomeKind.SENT], now)
    _record_temporary(session, by_kind[DeliveryOutcomeKind.TEMPORARY], now, policy)
    _record_bounced(session, by_kind[DeliveryOutcomeKind.PERMANENT], now, policy)
    _release(session, by_kind[DeliveryOutcomeKind.RELEASED], now)
    for outcome in by_kind[DeliveryOutcomeKind.FAILED]:
        _close(session, outcome, DeliveryStatus.FAILED, now, outcome.error)
    for outcome in by_kind[DeliveryOutcomeKind.SKIPPED]:
        _close(session, outcome, DeliveryStatus.SKIPPED, now, NOT_SUBSCRIBED)


def _held(outcome: DeliveryOutcome) -> ColumnElement[bool]:
    """The row of ``outcome`` while its claim still holds it."""
    return and_(
        Delivery.id == outcome.delivery_id,
        Delivery.claim_token == outcome.claim.token,
        Delivery.status == DeliveryStatus.SENDING,
    )


def _changed(result: object) -> bool:
    return bool(getattr(result, "rowcount", 0))


def _close(
    session: Session, outcome: DeliveryOutcome, status: str, now: datetime, error: str
) -> None:
    session.execute(
        update(Delivery)
        .where(_held(outcome))
        .values(status=status, lease_until=None, updated_at=now, last_error=error[:500])
    )


@dataclass(frozen=True)
class _SentStatements:
    """The group commit's two statements as driver SQL for one dialect, built once: a 250
    is recorded on every message, and SQLAlchemy's ORM bulk UPDATE (building the statement,
    its cache key and each row's parameters) cost more CPU than SQLite's work."""

    mark: str  # the driver's positional parameter marker
    to_db: Callable[[datetime], Any]  # an aware datetime as the column stores it

    @property
    def sent(self) -> str:
        m = self.mark
        return (
            f"UPDATE {Delivery.__tablename__} SET status = {m}, sent_at = {m},"
            f" lease_until = NULL, next_attempt_at = NULL, updated_at = {m},"
            f" attempts = attempts + 1, last_error = ''"
            f" WHERE id = {m} AND claim_token = {m} AND status = {m}"
        )

    def reset_soft_bounces(self, count: int) -> str:
        marks = ", ".join([self.mark] * count)
        return (
            f"UPDATE {Subscriber.__tablename__} SET soft_bounces = 0"
            f" WHERE soft_bounces > 0 AND id IN ({marks})"
        )


_SENT_STATEMENTS: dict[str, _SentStatements] = {}


def _sent_statements(dialect: Dialect) -> _SentStatements:
    known = _SENT_STATEMENTS.get(dialect.name)
    if known is None:
        process = UTCDateTime().bind_processor(dialect)
        to_db: Callable[[datetime], Any] = process if process is not None else (lambda v: v)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        known = _SENT_STATEMENTS[dialect.name] = _SentStatements(mark, to_db)
    return known


def _record_sent(session: Session, sent: list[DeliveryOutcome], now: datetime) -> None:
    if not sent:
        return
    connection = session.connection()
    statements = _sent_statements(connection.dialect)
    to_db, updated = statements.to_db, statements.to_db(now)
    # One statement, executed for every row with its own time of the server's 250.
    rows = [
        (DeliveryStatus.SENT.value, to_db(o.at or now), updated, o.delivery_id, o.claim.token)
        for o in sent
    ]
    connection.exec_driver_sql(
        statements.sent, [(*row, DeliveryStatus.SENDING.value) for row in rows]
    )
    # "Soft bounces in a row": a delivered message resets the count (harmless for a row whose
    # claim was lost: the message did go out).
    ids = tuple(o.subscriber_id for o in sent)
    connection.exec_driver_sql(statements.reset_soft_bounces(len(ids)), ids)


def _record_temporary(
    session: Session, failures: list[DeliveryOutcome], now: datetime, policy: RetryPolicy
) -> None:
    exhausted: list[int] = []
    for outcome in failures:
        attempt = outcome.claim.attempts + 1
        final = attempt >= policy.max_attempts
        result = session.execute(
            update(Delivery)
            .where(_held(outcome))
            .values(
                status=DeliveryStatus.FAILED if final else DeliveryStatus.RETRY,
                attempts=attempt,
                lease_until=None,
                next_attempt_at=None if final else now + policy.delay(attempt),
                last_error=outcome.error[:500],
                updated_at=now,
            )
        )
        if final and _changed(result):
            exhausted.append(outcome.subscriber_id)
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
    session: Session, bounces: list[DeliveryOutcome], now: datetime, policy: RetryPolicy
) -> None:
    for outcome in bounces:
        result = session.execute(
            update(Delivery)
            .where(_held(outcome))
            .values(
                status=DeliveryStatus.BOUNCED,
                attempts=Delivery.attempts + 1,
                lease_until=None,
                next_attempt_at=None,
                last_error=outcome.error[:500],
                updated_at=now,
            )
        )
        if _changed(result):
            detail = f"hard bounce: {outcome.error}"
            _mark_bounced(session, [outcome.subscriber_id], now, policy.secret, detail)


def _release(session: Session, released: list[DeliveryOutcome], now: datetime) -> None:
    # Not attempted: due again at once, without spending an attempt (a relay outage must not
    # use up anybody's attempts while the circuit breaker pauses the run).
    for outcome in released:
        session.execute(
            update(Delivery)
            .where(_held(outcome))
            .values(
                status=DeliveryStatus.RETRY,
                lease_until=None,
                next_attempt_at=now,
                last_error=outcome.error[:500],
                updated_at=now,
            )
        )
