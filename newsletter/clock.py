"""The one place the edges read the wall clock; the core takes ``now`` as a parameter."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The calendar day ``instant`` falls on in ``zone``."""
    return instant.astimezone(zone).date()
