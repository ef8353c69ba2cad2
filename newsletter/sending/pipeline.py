"""Two meeting points of a sender's workers with the database, each one query or one commit
for every worker that reaches it at about the same time:

- ``OutcomeRecorder``: group commit. Each outcome (a 250 above all) is committed within
  ``interval`` seconds of being added, and no more than ``limit`` outcomes ever wait for
  their commit: a worker that would exceed it waits. A SIGKILL thus re-sends at most the
  messages in flight (one per connection) plus ``limit``.
- ``SubscriptionGate``: "is this recipient still subscribed?", asked right before each
  message is handed to SMTP. Every question is answered by a query that started after it
  was asked, so an unsubscribe committed before the question is always seen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")


class OutcomeRecorder(Generic[Item]):
    """Collects items from many tasks and hands them to ``write`` (run in a thread) in
    groups; ``run`` is the committing task, ``close`` ends it after a last group."""

    def __init__(
        self,
        write: Callable[[list[Item]], None],
        *,
        interval: float,
        limit: int,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self._write = write
        # Held while writing: other writers of the same rows (the heartbeat) take it too, so
        # two transactions of one process never lock the same rows in different orders.
        self.lock = lock or asyncio.Lock()
        self.interval = interval
        self.limit = max(limit, 1)
        # Half the limit: the next group fills while this one commits, so workers wait only
        # when commits fall behind.
        self._group_size = max(self.limit // 2, 1)
        self._pending: list[Item] = []
        self._writing = 0
        self._closed = False
        self._changed = asyncio.Condition()
        self.groups = 0

    def _uncommitted(self) -> int:
        return len(self._pending) + self._writing

    async def add(self, item: Item) -> None:
        """Queue ``item``; returns once fewer than ``limit`` items wait for their commit."""
        async with self._changed:
            self._pending.append(item)
            # Only the committing task waits for items to arrive: it needs to know when the
            # first one comes and when a group is full, not about every item in between.
            if len(self._pending) in (1, self._group_size):
                self._changed.notify_all()
            await self._changed.wait_for(lambda: self._uncommitted() < self.limit)

    async def flush(self) -> None:
        """Wait until everything added so far is committed."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._uncommitted() == 0)

    def take_pending(self) -> list[Item]:
        """The items added but not yet handed to ``write`` (for a last attempt after the
        committing task was cancelled); they are no longer this recorder's."""
        pending, self._pending = self._pending, []
        return pending

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    async def run(self) -> None:
        """Commit groups until closed and empty. A failing ``write`` raises here (the sender's
        task group then stops every worker)."""
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._pending) or self._closed)
                if not self._pending:
                    return
                closing = self._closed
            if not closing and self.interval > 0:
                # Let the group fill for a moment, unless waiting tasks already fill it.
                async with self._changed:
                    full = lambda: (  # noqa: E731
                        len(self._pending) >= self._group_size or self._closed
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait_for(full), self.interval)
            async with self._changed:
                group, self._pending = self._pending, []
                self._writing = len(group)
            try:
                async with self.lock:
                    await asyncio.to_thread(self._write, group)
                self.groups += 1
            finally:
                async with self._changed:
                    self._writing = 0
                    self._changed.notify_all()


class SubscriptionGate:
    """Answers "still subscribed?" for many tasks with one ``query`` for every question
    waiting at that moment."""

    def __init__(
        self,
        query: Callable[[Sequence[int]], Awaitable[set[int]]],
        at_once: Callable[[Sequence[int]], set[int] | None] | None = None,
    ) -> None:
        self._query = query
        # A synchronous answer when the backend can give one without waiting (None: ask
        # ``query``), which spares a task and a future per message.
        self._at_once = at_once
        self._waiting: dict[int, list[asyncio.Future[bool]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.queries = 0

    async def still_subscribed(self, subscriber_id: int) -> bool:
        if self._at_once is not None:
            active = self._at_once([subscriber_id])
            if active is not None:
                return subscriber_id in active
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(subscriber_id, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._answer())
        return await future

    async def _answer(self) -> None:
        while self._waiting:
            asked, self._waiting = self._waiting, {}
            try:
                active = await self._query(list(asked))
            except Exception as exc:  # handed to every task that asked, which raises it
                for futures in asked.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            self.queries += 1
            for subscriber_id, futures in asked.items():
                for future in futures:
                    if not future.done():
                        future.set_result(subscriber_id in active)
