"""The web app's SQLite writes, one thread (datasette's write thread), with group commit.

SQLite has one writer at a time. Handing each write to a pool thread of its own, behind a
lock, costs two thread switches per request in the critical path (loop -> thread -> loop),
and on a busy machine each switch may wait for a time slice: the writes then go at the pace
of the scheduler, not of the disk. Here one thread takes the queued writes one after
another, each in its own short transaction, and hands every result back to the event loop
that asked; under load one wake-up serves many requests.

Writes that come by the thousand (one-click unsubscribes) go further: ``run_batched`` items
of the same kind queued together are done by one call in one transaction (group commit).
Each sqlite3 call releases and re-takes the GIL, which the event loop holds most of the
time, so a few calls per batch instead of a few per request is what keeps the loop serving.

The thread starts on the first write and ends after a few idle seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from newsletter.db import transaction

T = TypeVar("T")
A = TypeVar("A")

IDLE_SECONDS = 5.0
MAX_BATCH = 64

# ``work(session, items)`` for batched writes: one result per item, in order; an item's own
# failure is an exception object in its place (raised to that request alone).
BatchWork = Callable[[Session, Sequence[Any]], Sequence[Any]]


@dataclass
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    work: Callable[[Session], Any] | None = None  # a write of its own
    batch: BatchWork | None = None  # or an item of a batched write
    item: Any = None


class WriteQueue:
    """Runs writes in transactions on one thread, in the order they were queued."""

    def __init__(
        self, engine: Engine, idle_seconds: float = IDLE_SECONDS, max_batch: int = MAX_BATCH
    ) -> None:
        self.engine = engine
        self.idle_seconds = idle_seconds
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)``'s result, or its exception, once its transaction ended (committed
        on success, rolled back on an exception)."""
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), work=work)
        self._put(job)
        return await job.future  # type: ignore[no-any-return]

    async def run_batched(self, batch: BatchWork, item: Any) -> Any:
        """``item``'s result from ``batch(session, items)``, called once for up to
        ``max_batch`` items queued together (same ``batch`` function), in one transaction.

        If the call raises, every item of the batch is tried again alone, in a transaction
        of its own, so one item's failure is only its own. Raises what was returned (or
        raised) for this item."""
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), batch=batch, item=item)
        self._put(job)
        return await job.future

    def _put(self, job: _Job) -> None:
        with self._lock:
            self._jobs.put(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="sqlite-writer", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        waiting: _Job | None = None
        while True:
            if waiting is not None:
                job, waiting = waiting, None
            else:
                try:
                    job = self._jobs.get(timeout=self.idle_seconds)
                except queue.Empty:
                    with self._lock:
                        if self._jobs.empty():
                            self._thread = None
                            return
                    continue
            if job.batch is None:
                self._execute(job)
                continue
            jobs = [job]
            while len(jobs) < self.max_batch:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more.batch is not job.batch:
                    waiting = more  # next, in its turn
                    break
                jobs.append(more)
            self._execute_batch(job.batch, jobs)

    def _execute(self, job: _Job) -> None:
        assert job.work is not None
        try:
            with transaction(self.engine) as session:
                result = job.work(session)
        except BaseException as exc:  # handed to the awaiting request, which re-raises it
            _settle(job, None, exc)
        else:
            _settle(job, result, None)

    def _execute_batch(self, batch: BatchWork, jobs: list[_Job]) -> None:
        try:
            with transaction(self.engine) as session:
                results = batch(session, [job.item for job in jobs])
        except BaseException as exc:
            if len(jobs) == 1:
                _settle(jobs[0], None, exc)
                return
            for job in jobs:  # one at a time: the failure stays with the item that failed
                self._execute_batch(batch, [job])
            return
        _settle_all(
            [
                (job, None, result) if isinstance(result, BaseException) else (job, result, None)
                for job, result in zip(jobs, results, strict=True)
            ]
        )


Outcome = tuple[_Job, Any, BaseException | None]


def _settle(job: _Job, result: Any, error: BaseException | None) -> None:
    _settle_all([(job, result, error)])


def _settle_all(outcomes: list[Outcome]) -> None:
    """Hand each job its result or its error, with one wake-up of each event loop involved
    rather than one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        # A loop closed meanwhile raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_set_results, settled)


def _set_results(settled: list[Outcome]) -> None:
    for job, result, error in settled:
        if job.future.done():  # the request was cancelled (the client went away)
            continue
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
