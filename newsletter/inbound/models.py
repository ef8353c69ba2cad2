"""Tables of the return path: every inbound message, and the IMAP poll's position."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, UTCDateTime
from newsletter.i18n import N_


class InboundKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto_reply"  # RFC 3834 auto-replies, success DSNs: ignored
    UNCLASSIFIED = "unclassified"  # kept for an editor to read; never acted on


class InboundAction(StrEnum):
    NONE = "none"
    IGNORED = "ignored"
    BOUNCED = "bounced"  # delivery and subscriber marked bounced
    SOFT_COUNTED = "soft_counted"  # soft bounce counted, under the policy's limit
    SOFT_LIMIT = "soft_limit"  # soft bounce that crossed the limit: subscriber bounced
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    ALREADY = "already"  # the same outcome was already recorded: nothing changed
    DUPLICATE = "duplicate"  # the same message arrived before


class InboundMessage(Base):
    """One message (or provider event) that came back, with what we made of it."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        Index("ix_inbound_subscriber_kind_at", "subscriber_id", "kind", "received_at"),
        Index("ix_inbound_run_kind", "run_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    source: Mapped[str] = mapped_column(String(20))  # lmtp, stdin, imap, ses, postmark, mailgun
    # SHA-256 of the raw bytes (or of the provider's event id): the same message twice is one.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[str] = mapped_column(String(1000), default="")
    header_from: Mapped[str] = mapped_column(String(500), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    message_id: Mapped[str] = mapped_column(String(500), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # When the retention job emptied ``raw`` ([bounces] keep_raw_days); None while it is kept.
    raw_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[str] = mapped_column(String(20), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("send_run.id", ondelete="SET NULL"), nullable=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="SET NULL"), nullable=True
    )


class ImapCursor(Base):
    """How far the IMAP poll read one mailbox folder: UIDs above ``last_uid`` are new, as long
    as the folder's UIDVALIDITY is unchanged."""

    __tablename__ = "imap_cursor"

    mailbox: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(Integer)
    last_uid: Mapped[int] = mapped_column(Integer)


# The names of kinds and actions as the inbound view shows them (translated with ``tr``).
LABELS = (
    N_("hard_bounce"),
    N_("soft_bounce"),
    N_("complaint"),
    N_("unsubscribe"),
    N_("auto_reply"),
    N_("unclassified"),
    N_("none"),
    N_("ignored"),
    N_("bounced"),
    N_("soft_counted"),
    N_("soft_limit"),
    N_("unsubscribed"),
    N_("complained"),
    N_("already"),
    N_("duplicate"),
)
