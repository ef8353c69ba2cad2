"""Use cases of the return path: what the LMTP intake, ``newsletter inbound deliver``, the IMAP
poll, the provider webhooks, the dashboard and the CLI call.

Every inbound message goes through ``receive_message`` (or ``receive_event`` for a provider's
verified JSON event): classified outside the transaction, then recorded and acted on in one
transaction, so a message is either recorded with its outcome or not at all (and the intake
tells its sender to try again).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import NotFoundError
from newsletter.inbound.actions import act
from newsletter.inbound.classify import Classification, Headline, classify, headline
from newsletter.inbound.figures import Deliverability, run_deliverability
from newsletter.inbound.models import InboundAction, InboundKind, InboundMessage
from newsletter.inbound.policy import RawRetention
from newsletter.inbound.providers import ProviderEvent
from newsletter.inbound.retention import RawPurge, measure_raw_purge, purge_raw
from newsletter.models import Delivery, SendRun
from newsletter.returnpath import DeliveryRef, ReturnPurpose, read_return_address
from newsletter.sending import issue_run_key

SOURCES = ("lmtp", "stdin", "imap", "ses", "postmark", "mailgun")


@dataclass(frozen=True)
class Received:
    """What became of one inbound message."""

    id: int
    kind: str
    action: str
    detail: str
    duplicate: bool = False
    paused_run: bool = False

    @property
    def classified(self) -> bool:
        return self.kind != InboundKind.UNCLASSIFIED


def receive_message(
    engine: Engine,
    config: Config,
    raw: bytes,
    *,
    source: str,
    envelope_from: str = "",
    envelope_to: Sequence[str] = (),
    now: datetime,
) -> Received:
    """Record, classify and act on one message. The same bytes twice are recorded once (the
    second answer says ``duplicate``). Raises only when the store fails: then nothing was
    recorded and the caller must make the sender try again."""
    found = classify(config, raw, envelope_to)
    head = headline(raw)
    digest = hashlib.sha256(raw).hexdigest()
    meta = _Meta(source, envelope_from, ",".join(envelope_to), head, len(raw))
    return _record(engine, config, digest, raw, found, meta, now)


def receive_event(
    engine: Engine, config: Config, event: ProviderEvent, payload: bytes, *, now: datetime
) -> Received:
    """Record and act on a provider's verified event. The delivery is the one its return path's
    signed token names; when the provider does not return our envelope sender (Postmark), the
    latest delivery to the reported address, since the signature vouches for the provider."""
    digest = hashlib.sha256(f"{event.source}:{event.event_id}".encode()).hexdigest()
    head = Headline(header_from=event.source, subject=event.subject[:500], message_id="")
    meta = _Meta(event.source, event.return_path[:320], event.recipient[:1000], head, len(payload))
    with transaction(engine) as session:
        ref = _event_ref(session, config, event)
    if event.kind is InboundKind.UNCLASSIFIED or ref is None:
        note = f"{event.kind.value} event for {event.recipient!r}: no matching delivery"
        found = Classification(InboundKind.UNCLASSIFIED, status_code=event.status_code, note=note)
    else:
        found = Classification(event.kind, ref, event.status_code, event.reason, f"{event.source}")
    return _record(engine, config, digest, payload, found, meta, now)


def _event_ref(session: Session, config: Config, event: ProviderEvent) -> DeliveryRef | None:
    if event.return_path:
        ref = read_return_address(config, event.return_path)
        if ref is not None and ref.purpose is ReturnPurpose.BOUNCE:
            return ref
    if not event.recipient:
        return None
    row = session.execute(
        select(Delivery.run_id, Delivery.subscriber_id)
        .where(Delivery.email == event.recipient, Delivery.sent_at.is_not(None))
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    ).first()
    if row is None or row.subscriber_id is None:
        return None
    return DeliveryRef(ReturnPurpose.BOUNCE, int(row.run_id), int(row.subscriber_id))


@dataclass(frozen=True)
class _Meta:
    source: str
    envelope_from: str
    envelope_to: str
    head: Headline
    size: int


def _record(
    engine: Engine,
    config: Config,
    digest: str,
    raw: bytes,
    found: Classification,
    meta: _Meta,
    now: datetime,
) -> Received:
    try:
        with transaction(engine) as session:
            existing = _by_digest(session, digest)
            if existing is not None:
                return existing
            row = InboundMessage(
                received_at=now,
                source=meta.source,
                digest=digest,
                envelope_from=meta.envelope_from[:320],
                envelope_to=meta.envelope_to[:1000],
                header_from=meta.head.header_from,
                subject=meta.head.subject,
                message_id=meta.head.message_id,
                size=meta.size,
                raw=raw,
                kind=found.kind.value,
                action=InboundAction.NONE.value,
                status_code=found.status_code[:20],
                detail="",
            )
            session.add(row)
            session.flush()
            outcome = act(session, config, found, row, meta.source, now)
            row.kind, row.action, row.detail = outcome.kind, outcome.action, outcome.detail
            if outcome.kind is InboundKind.UNCLASSIFIED:
                row.run_id = row.subscriber_id = None
            return Received(
                row.id, outcome.kind, outcome.action, outcome.detail, paused_run=outcome.paused_run
            )
    except IntegrityError:
        # The same message arrived twice at once (two MTA connections): the other one won.
        with transaction(engine) as session:
            existing = _by_digest(session, digest)
        if existing is None:
            raise
        return existing


def _by_digest(session: Session, digest: str) -> Received | None:
    row = session.scalars(select(InboundMessage).where(InboundMessage.digest == digest)).first()
    if row is None:
        return None
    return Received(row.id, row.kind, InboundAction.DUPLICATE, row.detail, duplicate=True)


# --- the inbound view ----------------------------------------------------------------------


@dataclass(frozen=True)
class InboundRow:
    """One line of the inbound view."""

    id: int
    received_at: datetime
    source: str
    kind: str
    action: str
    header_from: str
    subject: str
    detail: str
    run_id: int | None
    subscriber_id: int | None
    size: int


@dataclass(frozen=True)
class InboundDetail:
    row: InboundRow
    envelope_from: str
    envelope_to: str
    status_code: str
    text: str  # the raw message, decoded for reading, at most ``MAX_SHOWN`` characters
    raw_removed_at: datetime | None = None  # the retention job emptied it then ("" text)

    @property
    def kept_days(self) -> int | None:
        """How many days the raw message was kept before it was removed; None while it is."""
        if self.raw_removed_at is None:
            return None
        return (self.raw_removed_at - self.row.received_at) // timedelta(days=1)


MAX_SHOWN = 200_000


def _row(message: InboundMessage) -> InboundRow:
    return InboundRow(
        id=message.id,
        received_at=message.received_at,
        source=message.source,
        kind=message.kind,
        action=message.action,
        header_from=message.header_from,
        subject=message.subject,
        detail=message.detail,
        run_id=message.run_id,
        subscriber_id=message.subscriber_id,
        size=message.size,
    )


def list_inbound(session: Session, *, kind: str | None = None, limit: int = 50) -> list[InboundRow]:
    """The latest inbound messages, newest first; only ``kind`` when given."""
    query = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(max(1, limit))
    if kind:
        query = query.where(InboundMessage.kind == kind)
    return [_row(m) for m in session.scalars(query)]


def get_inbound(session: Session, message_id: int) -> InboundDetail:
    """One inbound message with its text. Raises ``NotFoundError``."""
    message = session.get(InboundMessage, message_id)
    if message is None:
        raise NotFoundError("no inbound message %(id)s", id=message_id)
    text = bytes(message.raw[:MAX_SHOWN]).decode("utf-8", errors="replace")
    return InboundDetail(
        row=_row(message),
        envelope_from=message.envelope_from,
        envelope_to=message.envelope_to,
        status_code=message.status_code,
        text=text,
        raw_removed_at=message.raw_removed_at,
    )


# --- retention of raw messages ----------------------------------------------------------------


def raw_retention(config: Config, *, handled_days: int | None = None) -> RawRetention:
    """``[bounces] keep_raw_days`` and ``keep_unclassified_days``; ``handled_days`` overrides
    the first for one run (``inbound purge --days``)."""
    days = int(config.get("bounces", "keep_raw_days")) if handled_days is None else handled_days
    return RawRetention(days, int(config.get("bounces", "keep_unclassified_days")))


def purge_raw_messages(
    engine: Engine, retention: RawRetention, *, now: datetime, dry_run: bool = False
) -> RawPurge:
    """Remove the raw bytes of the inbound messages past ``retention`` at ``now``, in one
    transaction; rows stay (see ``newsletter.inbound.retention``). A dry run only counts."""
    with transaction(engine) as session:
        if dry_run:
            return measure_raw_purge(session, retention, now)
        return purge_raw(session, retention, now)


def deliverability(session: Session, run_id: int) -> Deliverability:
    """A send's deliverability figures (delivered, bounced, complained, unsubscribed, rates)."""
    return run_deliverability(session, run_id)


def issue_deliverability(session: Session, number: int) -> Deliverability:
    """The deliverability figures of issue ``number``'s send; raises ``NotFoundError`` when it
    was never sent."""
    run_id = session.scalar(select(SendRun.id).where(SendRun.key == issue_run_key(number)))
    if run_id is None:
        raise NotFoundError("issue #%(number)s has not been sent", number=number)
    return run_deliverability(session, run_id)
