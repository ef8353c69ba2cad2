"""Bounce policy: pure decisions with ``now`` passed in, no database (like
``newsletter.schedule.policy``). Detection is elsewhere (``classify``); this only scores."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SoftBouncePolicy:
    """``limit`` soft bounces (from distinct sends) within ``window`` mark a subscriber
    bounced; ``limit`` 0 never does."""

    limit: int = 3
    window: timedelta = timedelta(days=30)


def soft_bounces_in_window(
    bounce_times: Iterable[datetime], now: datetime, policy: SoftBouncePolicy
) -> int:
    """How many of ``bounce_times`` (one per send that soft-bounced) still count at ``now``:
    those within ``policy.window``; older ones have expired."""
    since = now - policy.window
    return sum(1 for at in bounce_times if since <= at <= now)


def soft_bounce_limit_reached(
    bounce_times: Iterable[datetime], now: datetime, policy: SoftBouncePolicy
) -> bool:
    """Whether the soft bounces that still count reach the policy's limit."""
    if policy.limit <= 0:
        return False
    return soft_bounces_in_window(bounce_times, now, policy) >= policy.limit


@dataclass(frozen=True)
class RawRetention:
    """How long the raw bytes of inbound messages are kept: ``handled_days`` for a message
    that was classified and acted on (or ignored), ``unclassified_days`` for one still waiting
    for an editor to read it. 0 keeps them forever; an unclassified message is never emptied
    before a handled one would be."""

    handled_days: int = 90
    unclassified_days: int = 365

    def handled_cutoff(self, now: datetime) -> datetime | None:
        """Handled messages received before this lose their raw bytes; None: none do."""
        return now - timedelta(days=self.handled_days) if self.handled_days > 0 else None

    def unclassified_cutoff(self, now: datetime) -> datetime | None:
        """Unclassified messages received before this lose their raw bytes; None: none do."""
        if self.handled_days <= 0 or self.unclassified_days <= 0:
            return None
        return now - timedelta(days=max(self.unclassified_days, self.handled_days))


@dataclass(frozen=True)
class RateThresholds:
    """A run pauses when its hard-bounce or complaint rate passes these fractions, judged once
    at least ``min_sent`` messages of it were delivered."""

    max_hard_bounce_rate: float = 0.05
    max_complaint_rate: float = 0.003
    min_sent: int = 100


@dataclass(frozen=True)
class RunCounts:
    """The counts a run's rates are computed from."""

    delivered: int  # accepted by the relay and not bounced since
    hard_bounced: int
    complained: int

    @property
    def attempted(self) -> int:
        return self.delivered + self.hard_bounced

    @property
    def hard_bounce_rate(self) -> float:
        return self.hard_bounced / self.attempted if self.attempted else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained / self.delivered if self.delivered else 0.0


def rate_alarm(counts: RunCounts, thresholds: RateThresholds) -> str | None:
    """Why the run must pause (an English reason for the pause row), or None."""
    if counts.attempted < max(thresholds.min_sent, 1):
        return None
    if counts.hard_bounce_rate > thresholds.max_hard_bounce_rate:
        return (
            f"paused automatically: hard-bounce rate {counts.hard_bounce_rate:.1%} "
            f"is over {thresholds.max_hard_bounce_rate:.1%}"
        )
    if counts.complaint_rate > thresholds.max_complaint_rate:
        return (
            f"paused automatically: complaint rate {counts.complaint_rate:.2%} "
            f"is over {thresholds.max_complaint_rate:.2%}"
        )
    return None
