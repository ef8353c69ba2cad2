"""Retention of raw inbound messages: after ``[bounces] keep_raw_days`` the bytes of a handled
message are removed, and the row stays.

A DSN quotes the original message and its addresses, a complaint report the whole digest: kept
without end, that is personal data nobody needs once the message was acted on. The row keeps
what the figures and the de-duplication need (classification, action, status code, dates,
digest, send and subscriber), so a bounce that arrives again is still recognised and every rate
stays the same. Unclassified messages, the ones an editor should read, keep their bytes longer
(``[bounces] keep_unclassified_days``).

Everything happens in the caller's transaction, in batches of ids: the blobs are emptied by an
``UPDATE`` and measured with ``length()`` in the database, never loaded into memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, false, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.inbound.models import InboundKind, InboundMessage
from newsletter.inbound.policy import RawRetention

BATCH = 500


@dataclass(frozen=True)
class RawPurge:
    """What a purge removed (or, in a dry run, would remove)."""

    messages: int  # rows whose raw bytes were emptied
    bytes: int  # raw bytes removed
    waiting: int  # unclassified rows past ``handled_days`` kept for an editor


def _due(retention: RawRetention, now: datetime) -> ColumnElement[bool]:
    """Rows whose raw bytes are due for removal at ``now``."""
    unclassified = InboundMessage.kind == InboundKind.UNCLASSIFIED
    handled_cutoff = retention.handled_cutoff(now)
    unclassified_cutoff = retention.unclassified_cutoff(now)
    handled = (
        and_(~unclassified, InboundMessage.received_at < handled_cutoff)
        if handled_cutoff is not None
        else false()
    )
    waiting = (
        and_(unclassified, InboundMessage.received_at < unclassified_cutoff)
        if unclassified_cutoff is not None
        else false()
    )
    return and_(InboundMessage.raw_removed_at.is_(None), or_(handled, waiting))


def _waiting(session: Session, retention: RawRetention, now: datetime) -> int:
    """Unclassified rows a handled one's age would have emptied, still kept for an editor."""
    cutoff = retention.handled_cutoff(now)
    if cutoff is None:
        return 0
    unclassified_cutoff = retention.unclassified_cutoff(now)
    query = select(func.count()).where(
        InboundMessage.raw_removed_at.is_(None),
        InboundMessage.kind == InboundKind.UNCLASSIFIED,
        InboundMessage.received_at < cutoff,
    )
    if unclassified_cutoff is not None:
        query = query.where(InboundMessage.received_at >= unclassified_cutoff)
    return int(session.scalar(query) or 0)


def measure_raw_purge(session: Session, retention: RawRetention, now: datetime) -> RawPurge:
    """What ``purge_raw`` would remove at ``now``, changing nothing."""
    count, size = session.execute(
        select(func.count(), func.coalesce(func.sum(func.length(InboundMessage.raw)), 0)).where(
            _due(retention, now)
        )
    ).one()
    return RawPurge(int(count), int(size), _waiting(session, retention, now))


def purge_raw(
    session: Session, retention: RawRetention, now: datetime, *, batch: int = BATCH
) -> RawPurge:
    """Empty the raw bytes of every row due at ``now`` (see the module's docstring), ``batch``
    rows at a time, in the caller's transaction; stamp each with ``raw_removed_at = now``."""
    messages = removed = 0
    due = _due(retention, now)
    while True:
        ids = list(
            session.scalars(
                select(InboundMessage.id).where(due).order_by(InboundMessage.id).limit(batch)
            )
        )
        if not ids:
            break
        chosen = InboundMessage.id.in_(ids)
        size = session.scalar(
            select(func.coalesce(func.sum(func.length(InboundMessage.raw)), 0)).where(chosen)
        )
        session.execute(
            update(InboundMessage)
            .where(chosen)
            .values(raw=b"", raw_removed_at=now)
            .execution_options(synchronize_session=False)
        )
        messages, removed = messages + len(ids), removed + int(size or 0)
    return RawPurge(messages, removed, _waiting(session, retention, now))
