"""Tables for content, the schedule, deliveries and editors.

The database is the truth (design decision 1): every link, issue, slot, pause, send run and
delivery is a row, and unique constraints make every step safe to rerun.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, UTCDateTime

# --- content ---------------------------------------------------------------------------------


class Link(Base):
    """A link queued for the next issue (``issue_id`` NULL) or part of an assembled issue."""

    __tablename__ = "link"
    __table_args__ = (
        Index("ix_link_issue_position", "issue_id", "position"),
        Index("ix_link_canonical_url", "canonical_url"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(200), default="")
    excerpt: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(String(500), default="")  # comma-separated
    position: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issue.id", ondelete="SET NULL"), nullable=True
    )
    # Link intake (newsletter.intake): the URL without tracking parameters, after redirects
    # and rel=canonical, to notice the same page queued twice; and anonymous click counters.
    canonical_url: Mapped[str] = mapped_column(String(2000), default="")
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    bot_clicks: Mapped[int] = mapped_column(Integer, default=0)


class Feed(Base):
    """A feed (RSS, Atom or JSON Feed) whose new items are queued as links."""

    __tablename__ = "feed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What the last poll saw: validators for a conditional GET, and its outcome.
    etag: Mapped[str] = mapped_column(String(500), default="")
    last_modified: Mapped[str] = mapped_column(String(100), default="")
    polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Why the last poll failed, as a message key and its values (JSON); empty when it worked.
    error: Mapped[str] = mapped_column(String(500), default="")
    error_values: Mapped[str] = mapped_column(Text, default="")
    queued_total: Mapped[int] = mapped_column(Integer, default=0)


class FeedItem(Base):
    """An item a feed has shown once (by its id, else its link): never queued twice."""

    __tablename__ = "feed_item"
    __table_args__ = (UniqueConstraint("feed_id", "key", name="uq_feed_item_feed_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feed.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(2000))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IssueStatus(StrEnum):
    ASSEMBLED = "assembled"  # numbered and rendered, send not finished
    SENT = "sent"  # its send run is done


class Issue(Base):
    __tablename__ = "issue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    intro: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=IssueStatus.ASSEMBLED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The rendered, not yet personalised, parts (render once per issue).
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")


class IssueDraft(Base):
    """The editor's intro (and optional subject) for the next issue; one row, id 1."""

    __tablename__ = "issue_draft"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    intro: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- schedule --------------------------------------------------------------------------------


class SlotOutcome(StrEnum):
    SENT = "sent"
    PAUSED = "paused"
    DELAYED = "delayed"
    SKIPPED = "skipped"
    MISSED = "missed"


class Slot(Base):
    """What happened at one weekly slot; unique on the slot's UTC instant."""

    __tablename__ = "slot"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime(), unique=True)
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500), default="")
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"), nullable=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Pause(Base):
    """A pause of the schedule until a local date (exclusive), with the editor's reason."""

    __tablename__ = "pause"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(500), default="")
    notify: Mapped[bool] = mapped_column(Boolean, default=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SlotOverride(Base):
    """An editor's decision about one coming slot: delay it to ``send_at`` or skip it."""

    __tablename__ = "slot_override"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime(), unique=True)
    action: Mapped[str] = mapped_column(String(10))  # "delay" | "skip"
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- delivery --------------------------------------------------------------------------------


class RunStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"


class RunKind(StrEnum):
    DIGEST = "digest"
    NOTICE = "notice"


class SendRun(Base):
    """One send of one message to a snapshot of recipients; ``key`` makes it idempotent."""

    __tablename__ = "send_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)  # e.g. "issue:12", "notice:pause:3"
    kind: Mapped[str] = mapped_column(String(20))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id"), nullable=True)
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.RUNNING)
    pause_reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker under a lease
    RETRY = "retry"  # 4xx or dropped connection; due again at next_attempt_at
    SENT = "sent"
    FAILED = "failed"  # attempts exhausted
    BOUNCED = "bounced"  # 5xx for this recipient
    SKIPPED = "skipped"  # unsubscribed or bounced before we got to them


class Delivery(Base):
    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("run_id", "subscriber_id", name="uq_delivery_run_subscriber"),
        Index("ix_delivery_run_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("send_run.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="SET NULL"), nullable=True
    )
    email: Mapped[str] = mapped_column(String(320))  # snapshot, for the report
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The owner of the current (or last) claim: every outcome is written only where the
    # token still matches, so a sender whose claim was taken back changes nothing.
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claim_host: Mapped[str] = mapped_column(String(255), default="")
    claim_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ClaimRecovery(Base):
    """Deliveries of a run taken back from a sender that stopped (its process gone, or its
    lease run out), shown by ``send status`` and the dashboard."""

    __tablename__ = "claim_recovery"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("send_run.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    count: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- editors ---------------------------------------------------------------------------------


class Editor(Base):
    __tablename__ = "editor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Part of every session cookie; signing out raises it, which ends the editor's sessions.
    session_version: Mapped[int] = mapped_column(Integer, default=0)


class ApiToken(Base):
    """A bearer token for ``/api``; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editor.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
