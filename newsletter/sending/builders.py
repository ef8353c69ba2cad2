"""Building each recipient's message bytes off the event loop.

Personalising a 90 KB digest costs tens of microseconds, but signing it with DKIM (hashing
the body, an RSA signature) costs about a millisecond of CPU, and on the event loop that
millisecond is stolen from every SMTP connection and, in ``serve``, from every web request.
A ``BuildPool`` runs the builder on worker threads, as many as the machine has CPUs: hashlib
and OpenSSL release the GIL while they work, so the signatures of several messages are
computed in parallel while the loop keeps the connections busy.

The sender asks for a few messages ahead (``ahead``): while one chunk goes out, the next one
is being built.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from newsletter.errors import NewsletterError

C = TypeVar("C")

# A built message, or why this recipient's values could not make one.
Built = bytes | NewsletterError


def default_threads() -> int:
    """One build thread per CPU this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return max(os.cpu_count() or 1, 1)


class BuildPool:
    """Runs message builders on ``threads`` worker threads (default: one per CPU)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or default_threads()
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="build")

    async def build(
        self, build: Callable[[C, datetime], bytes], items: Sequence[C], now: datetime
    ) -> list[Built]:
        """``build(item, now)`` for each item, in order, on a worker thread; an item whose
        build raised ``NewsletterError`` gets that error in its place."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _build_each, build, items, now)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _build_each(
    build: Callable[[C, datetime], bytes], items: Sequence[C], now: datetime
) -> list[Built]:
    built: list[Built] = []
    for item in items:
        try:
            built.append(build(item, now))
        except NewsletterError as exc:
            built.append(exc)
    return built
