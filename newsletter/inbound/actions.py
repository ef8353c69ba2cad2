"""Actions: what a classified inbound message changes, in the caller's transaction.

Every action is idempotent: the same bounce or complaint for the same delivery changes nothing
the second time. Only a message whose signed token names an existing delivery acts on anyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.errors import NotYetError
from newsletter.inbound.classify import Classification
from newsletter.inbound.figures import run_deliverability
from newsletter.inbound.models import InboundAction, InboundKind, InboundMessage
from newsletter.inbound.policy import (
    RateThresholds,
    SoftBouncePolicy,
    rate_alarm,
    soft_bounce_limit_reached,
)
from newsletter.models import Delivery, DeliveryStatus, RunStatus, SendRun
from newsletter.returnpath import DeliveryRef
from newsletter.sending import pause_if_running
from subscribers.models import ConsentKind, Subscriber, SubscriberStatus
from subscribers.store import ConsentContext, deactivate, record_consent


@dataclass(frozen=True)
class InboundOutcome:
    """What acting on one message did."""

    kind: InboundKind
    action: InboundAction
    detail: str = ""
    paused_run: bool = False


def soft_bounce_policy(config: Config) -> SoftBouncePolicy:
    return SoftBouncePolicy(
        limit=int(config.get("bounces", "soft_bounce_limit")),
        window=timedelta(days=int(config.get("bounces", "soft_bounce_days"))),
    )


def rate_thresholds(config: Config) -> RateThresholds:
    return RateThresholds(
        max_hard_bounce_rate=float(config.get("bounces", "max_hard_bounce_rate")),
        max_complaint_rate=float(config.get("bounces", "max_complaint_rate")),
        min_sent=int(config.get("bounces", "rate_min_sent")),
    )


def act(
    session: Session,
    config: Config,
    found: Classification,
    row: InboundMessage,
    source: str,
    now: datetime,
) -> InboundOutcome:
    """Apply ``found`` (already stored as ``row``, flushed) and return what was done. A
    reference to a delivery that does not exist turns the message into an unclassified one."""
    if found.kind in (InboundKind.UNCLASSIFIED, InboundKind.AUTO_REPLY) or found.ref is None:
        action = (
            InboundAction.IGNORED if found.kind is InboundKind.AUTO_REPLY else InboundAction.NONE
        )
        return InboundOutcome(found.kind, action, found.note)
    delivery = _delivery(session, found.ref)
    subscriber = session.get(Subscriber, found.ref.subscriber_id)
    if delivery is None or subscriber is None:
        note = f"{found.kind.value} for an unknown delivery (send {found.ref.run_id}): not acted on"
        return InboundOutcome(InboundKind.UNCLASSIFIED, InboundAction.NONE, note)
    # Tied to the delivery only now that it is known to exist (foreign keys).
    row.run_id, row.subscriber_id = found.ref.run_id, found.ref.subscriber_id
    context = ConsentContext(source=f"inbound:{source}", detail=_detail(found, row.id))
    if found.kind is InboundKind.HARD_BOUNCE:
        outcome = _hard_bounce(session, config, delivery, subscriber, found, context, now)
    elif found.kind is InboundKind.SOFT_BOUNCE:
        outcome = _soft_bounce(session, config, subscriber, context, now)
    elif found.kind is InboundKind.COMPLAINT:
        outcome = _complaint(session, config, subscriber, context, now)
    else:
        changed = deactivate(session, config.secret_key, subscriber, now, context)
        action = InboundAction.UNSUBSCRIBED if changed else InboundAction.ALREADY
        outcome = InboundOutcome(found.kind, action, "mailto unsubscribe")
    if outcome.action in (InboundAction.BOUNCED, InboundAction.COMPLAINED):
        reason = _check_rates(session, config, found.ref.run_id)
        if reason:
            return InboundOutcome(outcome.kind, outcome.action, f"{outcome.detail}; {reason}", True)
    return outcome


def _delivery(session: Session, ref: DeliveryRef) -> Delivery | None:
    query = select(Delivery).where(
        Delivery.run_id == ref.run_id, Delivery.subscriber_id == ref.subscriber_id
    )
    return session.scalars(query).one_or_none()


def _detail(found: Classification, row_id: int) -> str:
    parts = [f"inbound message {row_id}", f"send {found.ref.run_id}" if found.ref else ""]
    if found.status_code:
        parts.append(found.status_code)
    if found.reason:
        parts.append(found.reason[:300])
    return "; ".join(p for p in parts if p)


def _hard_bounce(
    session: Session,
    config: Config,
    delivery: Delivery,
    subscriber: Subscriber,
    found: Classification,
    context: ConsentContext,
    now: datetime,
) -> InboundOutcome:
    reason = " ".join(p for p in (found.status_code, found.reason) if p) or "hard bounce"
    if delivery.status == DeliveryStatus.SENDING:
        # A fast relay's DSN can overtake the sender's record of the 250: acting now, the
        # sender would then write "sent" over "bounced". Have it handed again a bit later.
        raise NotYetError("send %(run)s is still recording this delivery", run=delivery.run_id)
    changed = False
    if delivery.status != DeliveryStatus.BOUNCED:
        delivery.status = DeliveryStatus.BOUNCED
        delivery.last_error = f"bounced after delivery: {reason}"[:500]
        delivery.updated_at = now
        changed = True
    if subscriber.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
        subscriber.status = SubscriberStatus.BOUNCED
        subscriber.bounced_at = now
        record_consent(session, config.secret_key, subscriber, ConsentKind.BOUNCED, now, context)
        changed = True
    action = InboundAction.BOUNCED if changed else InboundAction.ALREADY
    return InboundOutcome(InboundKind.HARD_BOUNCE, action, reason[:500])


def _soft_bounce(
    session: Session,
    config: Config,
    subscriber: Subscriber,
    context: ConsentContext,
    now: datetime,
) -> InboundOutcome:
    policy = soft_bounce_policy(config)
    times = _soft_bounce_times(session, subscriber.id, now - policy.window)
    detail = f"{len(times)} soft bounce(s) within {policy.window.days} days"
    if subscriber.status != SubscriberStatus.ACTIVE or not soft_bounce_limit_reached(
        times, now, policy
    ):
        return InboundOutcome(InboundKind.SOFT_BOUNCE, InboundAction.SOFT_COUNTED, detail)
    subscriber.status = SubscriberStatus.BOUNCED
    subscriber.bounced_at = now
    limit_context = ConsentContext(source=context.source, detail=f"{detail}; {context.detail}")
    record_consent(session, config.secret_key, subscriber, ConsentKind.BOUNCED, now, limit_context)
    return InboundOutcome(InboundKind.SOFT_BOUNCE, InboundAction.SOFT_LIMIT, detail)


def _soft_bounce_times(session: Session, subscriber_id: int, since: datetime) -> list[datetime]:
    """When each send soft-bounced for the subscriber since ``since``: a soft-bounce DSN came
    back for it, or the relay answered 4xx until the sender gave up (a ``failed`` delivery that
    was attempted). One per send: a relay's repeated "still delayed" DSNs are one."""
    per_run: dict[int | None, datetime] = {}
    dsns = session.execute(
        select(InboundMessage.run_id, func.max(InboundMessage.received_at))
        .where(
            InboundMessage.subscriber_id == subscriber_id,
            InboundMessage.kind == InboundKind.SOFT_BOUNCE,
            InboundMessage.received_at >= since,
        )
        .group_by(InboundMessage.run_id)
    )
    relay = session.execute(
        select(Delivery.run_id, Delivery.updated_at).where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status == DeliveryStatus.FAILED,
            Delivery.attempts > 0,
            Delivery.updated_at >= since,
        )
    )
    for run_id, at in [*dsns, *relay]:
        per_run[run_id] = max(at, per_run.get(run_id, at))
    return list(per_run.values())


def _complaint(
    session: Session,
    config: Config,
    subscriber: Subscriber,
    context: ConsentContext,
    now: datetime,
) -> InboundOutcome:
    already = session.scalar(
        select(func.count()).where(
            InboundMessage.subscriber_id == subscriber.id,
            InboundMessage.kind == InboundKind.COMPLAINT,
            InboundMessage.action == InboundAction.COMPLAINED,
        )
    )
    if already:
        return InboundOutcome(
            InboundKind.COMPLAINT, InboundAction.ALREADY, "complaint already recorded"
        )
    # A complaint unsubscribes at once; an import never re-adds an unsubscribed address.
    if subscriber.status != SubscriberStatus.UNSUBSCRIBED:
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        subscriber.unsubscribed_at = now
    record_consent(session, config.secret_key, subscriber, ConsentKind.COMPLAINED, now, context)
    return InboundOutcome(
        InboundKind.COMPLAINT, InboundAction.COMPLAINED, "complaint: unsubscribed"
    )


def _check_rates(session: Session, config: Config, run_id: int) -> str | None:
    """Pause a running send whose hard-bounce or complaint rate passed its threshold."""
    status = session.scalar(select(SendRun.status).where(SendRun.id == run_id))
    if status != RunStatus.RUNNING:
        return None
    session.flush()
    reason = rate_alarm(run_deliverability(session, run_id).counts, rate_thresholds(config))
    if reason and pause_if_running(session, run_id, reason):
        return reason
    return None
