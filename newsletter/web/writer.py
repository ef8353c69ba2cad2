"""The web app's SQLite writes, one thread (datasette's write thread).

SQLite has one writer at a time. Handing each write to a pool thread of its own, behind a
lock, costs two thread switches per request in the critical path (loop -> thread -> loop),
and on a busy machine each switch may wait for a time slice: the writes then go at the pace
of the scheduler, not of the disk. Here one thread takes the queued writes one after
another, each in its own short transaction, and hands every result back to the event loop
that asked; under load one wake-up serves many requests.

The thread starts on the first write and ends after a few idle seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from newsletter.db import transaction

T = TypeVar("T")

IDLE_SECONDS = 5.0

Job = tuple[Callable[[Session], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class WriteQueue:
    """Runs ``work(session)`` callables in write transactions on one thread, in order."""

    def __init__(self, engine: Engine, idle_seconds: float = IDLE_SECONDS) -> None:
        self.engine = engine
        self.idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)``'s result, or its exception, once its transaction ended (committed
        on success, rolled back on an exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._jobs.put((work, loop, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="sqlite-writer", daemon=True
                )
                self._thread.start()
        return await future

    def _serve(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._thread = None
                        return
                continue
            self._execute(*job)

    def _execute(
        self,
        work: Callable[[Session], Any],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        try:
            with transaction(self.engine) as session:
                result = work(session)
        except BaseException as exc:  # handed to the awaiting request, which re-raises it
            _settle(loop, future, None, exc)
        else:
            _settle(loop, future, result, None)


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    result: Any,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():  # the request was cancelled (the client went away)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    # A loop closed meanwhile raises RuntimeError: nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)
