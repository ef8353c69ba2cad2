"""Per-send deliverability figures: delivered, bounced (hard and soft), complained,
unsubscribed after the send, and their rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from newsletter.inbound.models import InboundKind, InboundMessage
from newsletter.inbound.policy import RunCounts
from newsletter.models import Delivery, DeliveryStatus, SendRun
from subscribers.models import Subscriber, SubscriberStatus


@dataclass(frozen=True)
class Deliverability:
    """What became of one send's messages, as far as we have heard back."""

    run_id: int
    delivered: int  # accepted by the relay and not bounced since
    hard_bounced: int  # refused at SMTP time (5xx) or bounced later (DSN, webhook)
    soft_bounced: int  # attempts used up, or a soft bounce came back
    complained: int
    unsubscribed: int  # recipients of this send who have unsubscribed since it started

    @property
    def counts(self) -> RunCounts:
        return RunCounts(self.delivered, self.hard_bounced, self.complained)

    def as_dict(self) -> dict[str, Any]:
        counts = self.counts
        base = max(counts.attempted, 1)
        return {
            "delivered": self.delivered,
            "hard_bounced": self.hard_bounced,
            "soft_bounced": self.soft_bounced,
            "complained": self.complained,
            "unsubscribed": self.unsubscribed,
            "hard_bounce_rate": round(counts.hard_bounce_rate, 4),
            "soft_bounce_rate": round(self.soft_bounced / base, 4),
            "complaint_rate": round(counts.complaint_rate, 4),
            "unsubscribe_rate": round(self.unsubscribed / max(self.delivered, 1), 4),
        }


def run_deliverability(session: Session, run_id: int) -> Deliverability:
    """The figures of run ``run_id`` (zeros for a run that does not exist)."""
    in_run = Delivery.run_id == run_id
    accepted = _count(session, select(func.count()).where(in_run, Delivery.sent_at.is_not(None)))
    bounced = Delivery.status == DeliveryStatus.BOUNCED
    hard = _count(session, select(func.count()).where(in_run, bounced))
    bounced_later = _count(
        session, select(func.count()).where(in_run, bounced, Delivery.sent_at.is_not(None))
    )
    soft_people = select(InboundMessage.subscriber_id).where(
        InboundMessage.run_id == run_id, InboundMessage.kind == InboundKind.SOFT_BOUNCE
    )
    soft = _count(
        session,
        select(func.count()).where(
            in_run,
            ~bounced,
            or_(Delivery.status == DeliveryStatus.FAILED, Delivery.subscriber_id.in_(soft_people)),
        ),
    )
    complained = _count(
        session,
        select(func.count(distinct(InboundMessage.subscriber_id))).where(
            InboundMessage.run_id == run_id, InboundMessage.kind == InboundKind.COMPLAINT
        ),
    )
    started = select(SendRun.created_at).where(SendRun.id == run_id).scalar_subquery()
    unsubscribed = _count(
        session,
        select(func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            in_run,
            Subscriber.status == SubscriberStatus.UNSUBSCRIBED,
            Subscriber.unsubscribed_at >= started,
        ),
    )
    return Deliverability(
        run_id=run_id,
        delivered=accepted - bounced_later,
        hard_bounced=hard,
        soft_bounced=soft,
        complained=complained,
        unsubscribed=unsubscribed,
    )


def _count(session: Session, query: Any) -> int:
    return int(session.scalar(query) or 0)
