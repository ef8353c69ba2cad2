"""Tables for people and their consent.

A subscriber row holds what we need to mail someone; the consent log is append-only and
records every change of consent with its context. Erasure deletes the person's row and keeps
only a keyed hash of the address in ``suppression`` so an import cannot silently re-add them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, UTCDateTime


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class ConsentKind(StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"
    IMPORTED = "imported"
    BOUNCED = "bounced"
    COMPLAINED = "complained"  # a spam complaint (ARF): unsubscribed at once
    ERASED = "erased"


class Subscriber(Base):
    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The address as normalised by email-validator; ``email_key`` is its lower-cased form and
    # carries the case-insensitive uniqueness.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), index=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(10), default="fr")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)
    # When the last confirmation email went out: throttles subscription bombing.
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConsentEvent(Base):
    __tablename__ = "consent_event"
    __table_args__ = (Index("ix_consent_event_subscriber_at", "subscriber_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL once the person is erased; ``address_hash`` still ties the event to the suppression.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="SET NULL"), nullable=True
    )
    address_hash: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(400), default="")
    source: Mapped[str] = mapped_column(String(200), default="")
    consent_text_version: Mapped[str] = mapped_column(String(40), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


class Suppression(Base):
    """Addresses that must not be re-added silently, kept only as a keyed hash."""

    __tablename__ = "suppression"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
