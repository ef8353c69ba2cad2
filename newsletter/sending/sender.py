"""The async sender: workers that claim deliveries, send them over pooled SMTP connections and
record what happened.

Each worker loops: claim a batch (in a thread) under a short lease with its own claim token,
then for each message: check the recipient is still subscribed (``SubscriptionGate``, right
before the MAIL command), send it on a pooled connection under the global rate limit, and
hand the outcome to the group commit (``OutcomeRecorder``), which commits the 250s of every
worker every few milliseconds. ``sent`` is written only after the server's 250, so a worker
killed between a 250 and its commit re-sends only that: at most one message per connection
plus ``commit_limit`` per crash. A heartbeat renews the leases of the claims this process
holds; a claim left by a process that stopped is taken back at once on its own host, after
its lease elsewhere. A circuit breaker pauses a run when nearly every recent attempt failed
(relay down, or rejecting everything), so nobody runs out of attempts during an outage;
``send resume`` continues it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import NewsletterError
from newsletter.sending.breaker import CircuitBreaker
from newsletter.sending.builders import (
    BuildPool,
    Built,
    MessageFactory,
    Outgoing,
    RunMessage,
    default_message_factory,
    outgoing_builder,
)
from newsletter.sending.ledger import (
    Claim,
    Owner,
    SubscriptionCheck,
    claim_batch,
    renew_leases,
)
from newsletter.sending.outcomes import (
    DeliveryOutcome,
    DeliveryOutcomeKind,
    RetryPolicy,
    record_outcomes,
)
from newsletter.sending.pipeline import OutcomeRecorder, SubscriptionGate
from newsletter.sending.runs import (
    finish_run_if_complete,
    get_run,
    next_due_at,
    pause_if_running,
    running_run_ids,
)
from newsletter.sending.smtp import (
    ConnectionFailure,
    PermanentFailure,
    SendPacer,
    SMTPPool,
    TemporaryFailure,
    relay_settings,
)

NowFn = Callable[[], datetime]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderOptions:
    """Tuning of one sender process. ``workers`` defaults to ``[smtp] max_connections``."""

    batch_size: int = 50
    workers: int | None = None
    # Claims are held this long without news from their owner; the heartbeat renews them
    # every third of it.
    lease: timedelta = timedelta(seconds=20)
    poll_interval: float = 1.0
    breaker_window: int = 20
    breaker_ratio: float = 0.9
    retry_base: timedelta = timedelta(minutes=1)
    # Group commit: outcomes are committed within ``commit_interval`` seconds, and at most
    # ``commit_limit`` of them wait for their commit at any time (the duplicates a SIGKILL
    # may cost on top of one message in flight per connection).
    commit_interval: float = 0.01
    commit_limit: int = 16
    # Messages are built (and DKIM-signed) off the event loop on this many threads (default:
    # one per CPU): the first ``build_ahead`` of a batch, then the rest in chunks twice that
    # size while the previous chunk goes out (each chunk is one hand-off to a thread).
    build_threads: int | None = None
    build_ahead: int = 8


@dataclass
class SenderStats:
    """What this sender did (counts of outcomes) and which runs its breaker paused."""

    sent: int = 0
    temporary: int = 0
    bounced: int = 0
    released: int = 0
    failed: int = 0
    paused_runs: list[int] = field(default_factory=list)

    def add(self, outcome: DeliveryOutcome) -> None:
        if outcome.kind == DeliveryOutcomeKind.SENT:
            self.sent += 1
        elif outcome.kind == DeliveryOutcomeKind.TEMPORARY:
            self.temporary += 1
        elif outcome.kind == DeliveryOutcomeKind.PERMANENT:
            self.bounced += 1
        elif outcome.kind == DeliveryOutcomeKind.RELEASED:
            self.released += 1
        elif outcome.kind == DeliveryOutcomeKind.FAILED:
            self.failed += 1


class Sender:
    """One sender process's state: the pool, the limiter, the breaker, prepared messages, the
    claims it holds and its two meeting points with the database."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        *,
        now_fn: NowFn,
        options: SenderOptions,
        message_factory: MessageFactory,
        run_ids: Sequence[int] | None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.now_fn = now_fn
        self.options = options
        self.factory = message_factory
        self.only_runs = set(run_ids) if run_ids is not None else None
        self.workers = options.workers or int(config.get("smtp", "max_connections")) or 1
        self.pool = SMTPPool(relay_settings(config), self.workers)
        self.limiter = SendPacer(float(config.get("smtp", "rate")))
        self.breaker = CircuitBreaker(options.breaker_window, options.breaker_ratio)
        self.policy = RetryPolicy(
            max_attempts=max(int(config.get("smtp", "max_attempts")), 1),
            base_delay=options.retry_base,
            soft_bounce_limit=int(config.get("bounces", "soft_bounce_limit")),
            secret=config.secret_key,
        )
        self.owner = Owner.this_process()
        self.builders: dict[int, Callable[[Claim, datetime], Outgoing]] = {}
        self.breaker_paused: set[int] = set()
        # Claim tokens whose leases the heartbeat renews: None while the batch is being sent,
        # then when it ended (its last outcomes may still wait for the group commit).
        self.held: dict[str, float | None] = {}
        self.recorder: OutcomeRecorder[tuple[int, DeliveryOutcome]] = OutcomeRecorder(
            self._record, interval=options.commit_interval, limit=options.commit_limit
        )
        self.build_pool = BuildPool(options.build_threads)
        self.check = SubscriptionCheck(engine)
        self.gate = SubscriptionGate(self.check, self.check.at_once)
        self.stats = SenderStats()

    # --- database side (always in a thread) ---------------------------------------------

    def _claim(self) -> tuple[int, list[Claim], RunMessage | None] | None:
        """Claim a batch from the first running run that has one; finish runs that have none.
        Returns None when nothing is claimable right now."""
        now = self.now_fn()
        with transaction(self.engine) as session:
            for run_id in running_run_ids(session):
                if self.only_runs is not None and run_id not in self.only_runs:
                    continue
                if run_id in self.breaker_paused:
                    # Someone resumed the run this breaker paused: start counting afresh.
                    self.breaker_paused.discard(run_id)
                    self.breaker.reset(run_id)
                claims = claim_batch(
                    session,
                    run_id,
                    limit=self.options.batch_size,
                    now=now,
                    lease=self.options.lease,
                    owner=self.owner,
                )
                if claims:
                    message = None
                    if run_id not in self.builders:
                        run = get_run(session, run_id)
                        message = RunMessage(run.id, run.kind, run.subject, run.html, run.text)
                    return run_id, claims, message
                finish_run_if_complete(session, run_id, now)
        return None

    def _record(self, group: list[tuple[int, DeliveryOutcome]]) -> None:
        """One group commit: the outcomes of every worker, and a pause for each run whose
        breaker tripped."""
        now = self.now_fn()
        with transaction(self.engine) as session:
            if self.engine.dialect.name == "postgresql":
                # Losing the last few commits to a crash of PostgreSQL itself costs at most a
                # few duplicates; waiting for the WAL flush at every group costs throughput.
                session.execute(text("SET LOCAL synchronous_commit = off"))
            record_outcomes(session, [o for _, o in group], now=now, policy=self.policy)
            for run_id in {run_id for run_id, _ in group}:
                if self.breaker.tripped(run_id) and run_id not in self.breaker_paused:
                    if pause_if_running(session, run_id, self.breaker.reasons[run_id]):
                        self.stats.paused_runs.append(run_id)
                    self.breaker_paused.add(run_id)

    def _give_back(self, run_id: int, claims: list[Claim], reason: str) -> None:
        """Release ``claims`` unattempted and pause the run with ``reason``."""
        released = [DeliveryOutcome(c, DeliveryOutcomeKind.RELEASED) for c in claims]
        with transaction(self.engine) as session:
            record_outcomes(session, released, now=self.now_fn(), policy=self.policy)
            if pause_if_running(session, run_id, reason):
                self.stats.paused_runs.append(run_id)

    def _renew(self, tokens: list[str]) -> None:
        with transaction(self.engine) as session:
            renew_leases(session, tokens, now=self.now_fn(), lease=self.options.lease)

    def _wait_hint(self) -> float | None:
        """Seconds until something may become claimable; None when no running run is open."""
        now = self.now_fn()
        with transaction(self.engine) as session:
            times = []
            for run_id in running_run_ids(session):
                if self.only_runs is not None and run_id not in self.only_runs:
                    continue
                if finish_run_if_complete(session, run_id, now):
                    continue
                due = next_due_at(session, run_id, now, self.owner)
                if due is not None:
                    times.append(due)
        if not times:
            return None
        return max((min(times) - now).total_seconds(), 0.0)

    # --- network side ---------------------------------------------------------------------

    async def _send_batch(self, run_id: int, claims: list[Claim]) -> None:
        build, ahead = self.builders[run_id], max(self.options.build_ahead, 1)
        chunks = [claims[:ahead]]
        chunks += [claims[i : i + 2 * ahead] for i in range(ahead, len(claims), 2 * ahead)]
        # The messages of the next chunk are built on the pool while this chunk goes out.
        building = asyncio.ensure_future(self.build_pool.build(build, chunks[0], self.now_fn()))
        try:
            for index, chunk in enumerate(chunks):
                built = await building
                if index + 1 < len(chunks):
                    building = asyncio.ensure_future(
                        self.build_pool.build(build, chunks[index + 1], self.now_fn())
                    )
                for claim, data in zip(chunk, built, strict=True):
                    await self._send_built(run_id, claim, data)
        finally:
            if not building.done():
                building.cancel()

    async def _send_built(self, run_id: int, claim: Claim, data: Built) -> None:
        if self.breaker.tripped(run_id):
            outcome = DeliveryOutcome(claim, DeliveryOutcomeKind.RELEASED)
        else:
            await self.limiter.acquire()
            outcome = await self._send_one(run_id, claim, data)
            self.stats.add(outcome)
        await self.recorder.add((run_id, outcome))

    async def _send_one(self, run_id: int, claim: Claim, data: Built) -> DeliveryOutcome:
        if isinstance(data, NewsletterError):
            # This recipient's values cannot make a message (e.g. a line break in the name):
            # record it on their row; the breaker pauses the run if it happens to everyone.
            self.breaker.record(run_id, False, data.message)
            return DeliveryOutcome(
                claim, DeliveryOutcomeKind.FAILED, f"message not built: {data.message}"
            )

        async def still_subscribed() -> bool:
            return await self.gate.still_subscribed(claim.subscriber_id)

        try:
            sent = await self.pool.send(
                data.envelope_from, claim.email, data.payload, still_subscribed
            )
        except ConnectionFailure as exc:
            self.breaker.record(run_id, False, exc.message)
            return DeliveryOutcome(claim, DeliveryOutcomeKind.RELEASED, exc.message)
        except TemporaryFailure as exc:
            self.breaker.record(run_id, False, exc.message)
            return DeliveryOutcome(claim, DeliveryOutcomeKind.TEMPORARY, exc.message)
        except PermanentFailure as exc:
            # A bounce: about this address, not the relay (see ``sending.breaker``).
            self.breaker.record_bounce(run_id, exc.message)
            return DeliveryOutcome(claim, DeliveryOutcomeKind.PERMANENT, exc.message)
        if not sent:
            return DeliveryOutcome(claim, DeliveryOutcomeKind.SKIPPED)
        self.breaker.record(run_id, True)
        return DeliveryOutcome(claim, DeliveryOutcomeKind.SENT, at=self.now_fn())

    async def _worker(self, stop: asyncio.Event, stop_when_idle: bool) -> None:
        while not stop.is_set():
            claimed = await asyncio.to_thread(self._claim)
            if claimed is None:
                # What this process still has to commit may be all that keeps a run open.
                await self.recorder.flush()
                hint = await asyncio.to_thread(self._wait_hint)
                if hint is None and stop_when_idle:
                    return
                delay = self.options.poll_interval if hint is None else hint
                await _sleep_or_stop(stop, min(delay, self.options.poll_interval))
                continue
            run_id, claims, message = claimed
            token = claims[0].token
            self.held[token] = None
            try:
                if message is not None and run_id not in self.builders:
                    try:
                        build = self.factory(self.config, message)
                        self.builders[run_id] = outgoing_builder(self.config, run_id, build)
                    except NewsletterError as exc:
                        # Nobody can get this message (a bad setting, say): pause, lose nothing.
                        reason = f"cannot prepare the message: {exc.message}"
                        async with self.recorder.lock:
                            await asyncio.to_thread(self._give_back, run_id, claims, reason)
                        continue
                await self._send_batch(run_id, claims)
            finally:
                self.held[token] = asyncio.get_running_loop().time()

    async def _heartbeat(self, done: asyncio.Event) -> None:
        """Renew the leases of the claims this process holds, every third of a lease."""
        period = self.options.lease.total_seconds() / 3
        loop = asyncio.get_running_loop()
        while not done.is_set():
            await _sleep_or_stop(done, period)
            # A batch that ended a while ago has nothing left uncommitted: forget it.
            old = loop.time() - period
            for token, ended in list(self.held.items()):
                if ended is not None and ended < old:
                    del self.held[token]
            if self.held and not done.is_set():
                # Never beside a group commit of this process: both lock the rows it holds.
                async with self.recorder.lock:
                    await asyncio.to_thread(self._renew, sorted(self.held))

    async def _supervise(self, workers: list[asyncio.Task[None]]) -> None:
        # When every worker has returned: the last group commit, then the heartbeat stops.
        await asyncio.wait(workers)
        await self.recorder.close()

    async def _record_what_was_sent(self) -> None:
        """After a task failed and the others were cancelled: one attempt to commit the
        outcomes still waiting for their group, so a transient error (the build of a run's
        message, a claim) does not send those messages again. If the database is what
        failed, this fails too, and they are re-sent like after a crash (the bound holds)."""
        pending = self.recorder.take_pending()
        if not pending:
            return
        try:
            async with self.recorder.lock:
                await asyncio.to_thread(self._record, pending)
        except Exception:
            logger.warning("could not record %s outcomes after a failure", len(pending))

    async def run(self, stop: asyncio.Event, stop_when_idle: bool) -> SenderStats:
        done = asyncio.Event()
        try:
            # A TaskGroup: if one task fails (the database went away), the others are
            # cancelled too, rather than left running on a closed pool.
            async with asyncio.TaskGroup() as group:
                recorder = group.create_task(self.recorder.run())
                recorder.add_done_callback(lambda _: done.set())
                group.create_task(self._heartbeat(done))
                workers = [
                    group.create_task(self._worker(stop, stop_when_idle))
                    for _ in range(self.workers)
                ]
                group.create_task(self._supervise(workers))
        except BaseExceptionGroup as group_error:
            await self._record_what_was_sent()
            # Callers see the first task's own exception, not the group.
            raise group_error.exceptions[0] from None
        finally:
            await self.pool.close()
            await self.check.close()
            self.build_pool.close()
        return self.stats


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.001))


async def run_sender(
    config: Config,
    engine: Engine,
    *,
    now_fn: NowFn = utc_now,
    stop_when_idle: bool = True,
    stop: asyncio.Event | None = None,
    options: SenderOptions | None = None,
    message_factory: MessageFactory = default_message_factory,
    run_ids: Sequence[int] | None = None,
) -> SenderStats:
    """Send every running run's open deliveries until none is left (``stop_when_idle``) or
    until ``stop`` is set. Several processes may run this at once on one database.

    ``run_ids`` limits the sender to those runs. Returns what this process did; failures are
    recorded on the delivery rows, never raised (a database error does propagate)."""
    sender = Sender(
        config,
        engine,
        now_fn=now_fn,
        options=options or SenderOptions(),
        message_factory=message_factory,
        run_ids=run_ids,
    )
    return await sender.run(stop or asyncio.Event(), stop_when_idle)
