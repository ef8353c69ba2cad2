"""The subscriber store: validated addresses, status changes and the append-only consent log.

Every function takes the session of the caller's transaction and ``now``; none commits. An
address is normalised by email-validator (syntax only, never DNS) and is unique through its
lower-cased ``email_key``. Erasure keeps only a keyed hash of the address (HMAC-SHA256 with the
secret), so an erased person leaves nothing readable behind yet an import cannot re-add them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from newsletter.errors import InvalidInputError, NotFoundError
from newsletter.inputs import check_text
from newsletter.models import Delivery
from subscribers.models import (
    ConsentEvent,
    ConsentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
)

MAX_NAME_LENGTH = 200
MAX_ADDRESS_LENGTH = 254
LANGUAGES = ("fr", "en")


@dataclass(frozen=True)
class ConsentContext:
    """Where a change of consent came from, stored with it in the consent log."""

    source: str = ""
    ip: str = ""
    user_agent: str = ""
    consent_text_version: str = ""
    detail: str = ""


def normalise_address(raw: str) -> str:
    """The address as email-validator normalises it (syntax only, no DNS).

    Raises ``InvalidInputError`` naming the problem for an empty or invalid address.
    """
    text = raw.strip()
    if not text:
        raise InvalidInputError("an email address is required", where="email")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise InvalidInputError("this email address is too long", where="email")
    try:
        # SMTPUTF8 is refused: many relays cannot deliver to an accented local part, and the
        # message builder writes ASCII headers. International domains are kept, as punycode.
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidInputError(
            "not a valid email address (%(error)s)", where="email", error=str(exc)
        ) from None
    return str(result.ascii_email or result.normalized)


def address_key(email: str) -> str:
    """The case-insensitive identity of a normalised address."""
    return email.lower()


def address_hash(secret: str, email: str) -> str:
    """A keyed hash of an address: stable for one secret, unreadable without it."""
    return _keyed_hash(secret, address_key(normalise_address(email)))


def subscriber_hash(secret: str, subscriber: Subscriber) -> str:
    """``address_hash`` of a stored subscriber's address, from its key (stored normalised,
    so validating the address again, which costs a millisecond, is not needed)."""
    return _keyed_hash(secret, subscriber.email_key)


def _keyed_hash(secret: str, key: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def check_name(name: str) -> str:
    """A display name without control characters. Raises ``InvalidInputError`` when too long."""
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            "longer than %(limit)s characters", where="name", limit=MAX_NAME_LENGTH
        )
    return check_text(cleaned, "name")


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None. Invalid input raises."""
    key = address_key(normalise_address(email))
    return session.scalars(select(Subscriber).where(Subscriber.email_key == key)).one_or_none()


def get_subscriber(session: Session, email: str) -> Subscriber:
    """The subscriber with this address; raises ``NotFoundError`` when there is none."""
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise NotFoundError("no subscriber with the address %(email)r", email=email)
    return subscriber


def is_suppressed(session: Session, secret: str, email: str) -> bool:
    """Whether this address was erased and must not be re-added silently."""
    return session.get(Suppression, address_hash(secret, email)) is not None


def record_consent(
    session: Session,
    secret: str,
    subscriber: Subscriber,
    kind: ConsentKind,
    now: datetime,
    context: ConsentContext,
) -> ConsentEvent:
    """Append one event to the consent log (never updated afterwards, except on erasure)."""
    event = ConsentEvent(
        subscriber_id=subscriber.id,
        address_hash=subscriber_hash(secret, subscriber),
        kind=kind.value,
        at=now,
        ip=context.ip[:64],
        user_agent=context.user_agent[:400],
        source=context.source[:200],
        consent_text_version=context.consent_text_version[:40],
        detail=context.detail,
    )
    session.add(event)
    return event


def create_subscriber(
    session: Session,
    *,
    email: str,
    name: str,
    status: SubscriberStatus,
    source: str,
    language: str,
    now: datetime,
) -> Subscriber:
    """Insert a new subscriber (the caller checked the address is not there yet)."""
    normalised = normalise_address(email)
    subscriber = Subscriber(
        email=normalised,
        email_key=address_key(normalised),
        name=check_name(name),
        status=status.value,
        source=source[:200],
        language=language if language in LANGUAGES else LANGUAGES[0],
        created_at=now,
        confirmed_at=now if status is SubscriberStatus.ACTIVE else None,
        soft_bounces=0,
    )
    session.add(subscriber)
    session.flush()
    return subscriber


def activate(
    session: Session, secret: str, subscriber: Subscriber, now: datetime, context: ConsentContext
) -> bool:
    """Make the subscriber active; logs ``confirmed`` or ``resubscribed``. False if already."""
    if subscriber.status == SubscriberStatus.ACTIVE:
        return False
    was_unsubscribed = subscriber.unsubscribed_at is not None
    subscriber.status = SubscriberStatus.ACTIVE.value
    subscriber.confirmed_at = now
    subscriber.unsubscribed_at = None
    subscriber.bounced_at = None
    subscriber.soft_bounces = 0
    kind = ConsentKind.RESUBSCRIBED if was_unsubscribed else ConsentKind.CONFIRMED
    record_consent(session, secret, subscriber, kind, now, context)
    # A person who erased themselves and then confirmed again has consented anew.
    suppression = session.get(Suppression, address_hash(secret, subscriber.email))
    if suppression is not None:
        session.delete(suppression)
    return True


def deactivate(
    session: Session, secret: str, subscriber: Subscriber, now: datetime, context: ConsentContext
) -> bool:
    """Unsubscribe at once; logs ``unsubscribed``. False if it already was."""
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return False
    subscriber.status = SubscriberStatus.UNSUBSCRIBED.value
    subscriber.unsubscribed_at = now
    record_consent(session, secret, subscriber, ConsentKind.UNSUBSCRIBED, now, context)
    return True


@dataclass(frozen=True)
class Departure:
    """Somebody asking, by id, to be unsubscribed: when, and from where."""

    subscriber_id: int
    at: datetime
    context: ConsentContext


def deactivate_by_id(
    session: Session, secret: str, subscriber_id: int, now: datetime, context: ConsentContext
) -> bool:
    """``deactivate`` for the subscriber with this id, with nothing loaded. False when they
    were unsubscribed already or do not exist (erased)."""
    return deactivate_many(session, secret, [Departure(subscriber_id, now, context)])[0]


def deactivate_many(session: Session, secret: str, departures: Sequence[Departure]) -> list[bool]:
    """Unsubscribe everyone these departures name, in two statements whatever their number
    (one UPDATE that says who changed, one INSERT of their consent events): the one-click
    path, with nothing loaded. One flag per departure, in order: True for the first
    departure of each person who was subscribed, False for anyone already unsubscribed,
    erased, or named twice. The status change is stamped with the latest ``at``; each
    consent event keeps its own."""
    if not departures:
        return []
    rows = session.execute(
        _UNSUBSCRIBE_BY_IDS,
        {
            "ids": sorted({d.subscriber_id for d in departures}),
            "left": SubscriberStatus.UNSUBSCRIBED.value,
            "at": max(d.at for d in departures),
        },
    )
    changed = {int(row[0]): str(row[1]) for row in rows}
    flags: list[bool] = []
    events: list[dict[str, Any]] = []
    for departure in departures:
        email_key = changed.pop(departure.subscriber_id, None)
        flags.append(email_key is not None)
        if email_key is not None:
            events.append(_departure_event(secret, departure, email_key))
    if events:
        session.execute(_CONSENT_LOG, events)
    return flags


def _departure_event(secret: str, departure: Departure, email_key: str) -> dict[str, Any]:
    context = departure.context
    return {
        "subscriber_id": departure.subscriber_id,
        "address_hash": _keyed_hash(secret, email_key),
        "kind": ConsentKind.UNSUBSCRIBED.value,
        "at": departure.at,
        "ip": context.ip[:64],
        "user_agent": context.user_agent[:400],
        "source": context.source[:200],
        "consent_text_version": context.consent_text_version[:40],
        "detail": context.detail,
    }


# Built once: building a statement costs more than running it on SQLite.
_PEOPLE = cast(Table, Subscriber.__table__)
_UNSUBSCRIBE_BY_IDS = (
    update(_PEOPLE)
    .where(
        _PEOPLE.c.id.in_(bindparam("ids", expanding=True)),
        _PEOPLE.c.status != bindparam("left"),
    )
    .values(status=bindparam("left"), unsubscribed_at=bindparam("at"))
    .returning(_PEOPLE.c.id, _PEOPLE.c.email_key)
)
_CONSENT_LOG = insert(cast(Table, ConsentEvent.__table__))


def list_subscribers(session: Session, status: str | None = None) -> Sequence[Subscriber]:
    """Subscribers in creation order, optionally only those with ``status``."""
    query = select(Subscriber).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    return session.scalars(query).all()


def count_by_status(session: Session) -> dict[str, int]:
    """How many subscribers have each status (every status listed, zero included)."""
    counts = {status.value: 0 for status in SubscriberStatus}
    rows = session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status))
    for status, count in rows:
        counts[str(status)] = int(count)
    return counts


def consent_events(session: Session, subscriber_id: int) -> Sequence[ConsentEvent]:
    query = select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id)
    return session.scalars(query.order_by(ConsentEvent.at, ConsentEvent.id)).all()


def export_person(session: Session, email: str) -> dict[str, Any]:
    """Everything held about one person, as JSON-ready data. Raises ``NotFoundError``."""
    subscriber = get_subscriber(session, email)
    deliveries = session.scalars(
        select(Delivery).where(Delivery.subscriber_id == subscriber.id).order_by(Delivery.id)
    ).all()
    return {
        "subscriber": subscriber_dict(subscriber),
        "consent_log": [
            {
                "kind": event.kind,
                "at": event.at.isoformat(),
                "ip": event.ip,
                "user_agent": event.user_agent,
                "source": event.source,
                "consent_text_version": event.consent_text_version,
                "detail": event.detail,
            }
            for event in consent_events(session, subscriber.id)
        ],
        "deliveries": [
            {
                "run_id": delivery.run_id,
                "status": delivery.status,
                "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
                "last_error": delivery.last_error,
            }
            for delivery in deliveries
        ],
    }


def subscriber_dict(subscriber: Subscriber) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "source": subscriber.source,
        "language": subscriber.language,
        "created_at": iso(subscriber.created_at),
        "confirmed_at": iso(subscriber.confirmed_at),
        "unsubscribed_at": iso(subscriber.unsubscribed_at),
        "bounced_at": iso(subscriber.bounced_at),
    }


def erase_person(session: Session, secret: str, email: str, now: datetime) -> str:
    """Delete a person's data and keep only the keyed hash of the address in ``suppression``.

    The consent log keeps its events (kind, time, source) tied to the hash, with IP and user
    agent blanked; delivery rows lose their address snapshot. On SQLite the freed space is
    zeroed (``secure_delete``); the caller should checkpoint the WAL after commit. On
    PostgreSQL dead rows stay on disk until the next VACUUM. Returns the hash. Raises
    ``NotFoundError`` when the address is unknown.
    """
    subscriber = get_subscriber(session, email)
    digest = address_hash(secret, subscriber.email)
    if session.get_bind().dialect.name == "sqlite":
        # Zero the freed bytes instead of leaving the address readable in free pages.
        session.execute(text("PRAGMA secure_delete=ON"))
    session.execute(
        update(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber.id)
        .values(ip="", user_agent="", subscriber_id=None)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id)
        .values(email="", subscriber_id=None)
    )
    session.add(
        ConsentEvent(
            subscriber_id=None,
            address_hash=digest,
            kind=ConsentKind.ERASED.value,
            at=now,
            source="erasure",
        )
    )
    if session.get(Suppression, digest) is None:
        session.add(Suppression(address_hash=digest, reason="erased", created_at=now))
    session.delete(subscriber)
    session.flush()
    return digest
