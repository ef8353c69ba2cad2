"""The sender's circuit breaker: it pauses a run when nearly every recent attempt failed (relay
down, or rejecting everything), so nobody runs out of attempts during an outage.

A 5xx for one recipient is a bounce, recorded on their row: it says nothing about the relay and
never counts here (50 subscribers at one dead domain must not pause a send). Only a refusal that
names the relay itself (an enhanced status 5.7.x, "relay access denied", "authentication
required") counts, so a relay that refuses every recipient still pauses the run.
"""

from __future__ import annotations

import re
from collections import deque

RELAY_REFUSAL = re.compile(r"\b5\.7\.\d{1,3}\b|\brelay|\bauthenticat", re.IGNORECASE)


def refusal_names_the_relay(reply: str) -> bool:
    """Whether a 5xx reply to RCPT is about us and the relay rather than the address."""
    return RELAY_REFUSAL.search(reply) is not None


class CircuitBreaker:
    """Trips when at least ``ratio`` of the last ``window`` attempts of a run failed."""

    def __init__(self, window: int, ratio: float) -> None:
        self.window = window
        self.ratio = ratio
        self._recent: dict[int, deque[bool]] = {}
        self.reasons: dict[int, str] = {}

    def record(self, run_id: int, ok: bool, error: str = "") -> None:
        recent = self._recent.setdefault(run_id, deque(maxlen=self.window))
        recent.append(ok)
        failures = recent.count(False)
        if len(recent) == self.window and failures >= self.ratio * self.window:
            self.reasons.setdefault(
                run_id,
                f"paused automatically: {failures} of the last {self.window} "
                f"attempts failed (last error: {error})"[:500],
            )

    def record_bounce(self, run_id: int, reply: str) -> None:
        """A recipient refused with a 5xx: counts only when the reply names the relay."""
        if refusal_names_the_relay(reply):
            self.record(run_id, False, reply)

    def tripped(self, run_id: int) -> bool:
        return run_id in self.reasons

    def reset(self, run_id: int) -> None:
        self._recent.pop(run_id, None)
        self.reasons.pop(run_id, None)
