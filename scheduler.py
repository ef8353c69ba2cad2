"""The clock: APScheduler wiring only. At each weekly slot it calls the dispatcher.

Run on its own with ``python scheduler.py`` (or ``newsletter scheduler``); ``newsletter serve``
runs the same scheduler inside its process through ``scheduler_service``.

The database is the truth (design decision 1): every decision lives in
``newsletter.schedule.dispatch``, which records one row per slot, so a job that fires twice or two
schedulers on one database still send once. Two jobs call it:

- ``weekly-slot``: a ``CronTrigger`` on ``[schedule] day``/``time`` in ``[schedule] timezone``
  (APScheduler keeps it at local time across DST changes). ``misfire_grace_time`` is
  ``[schedule] grace_hours`` so a late wake-up still runs it, and ``coalesce`` folds several
  missed runs into one.
- ``schedule-check``: every minute, and once at start-up. It catches up a slot missed while the
  service was down and sends an issue an editor delayed to another time (``schedule delay``),
  which no cron expression knows about.
- ``feeds-poll`` and ``feeds-before-slot`` (link intake): read the registered feeds every
  ``[intake] feed_poll_minutes`` and ``feed_lead_minutes`` before each slot, so new items are
  queued in time. A feed that fails is recorded on its row; it never touches the send jobs.
- ``inbound-retention`` (the return path): once a day, first a few minutes after start-up,
  remove the raw bytes of inbound messages older than ``[bounces] keep_raw_days`` (their rows
  stay). Off when it is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from newsletter.clock import utc_now
from newsletter.config import Config, load_config
from newsletter.db import make_engine
from newsletter.errors import NewsletterError
from newsletter.intake.fetcher import FetchPolicy
from newsletter.models import Slot
from newsletter.schedule.dispatch import dispatch_due, grace_of, schedule_of
from newsletter.schedule.policy import WEEKDAYS
from newsletter.services.feeds import poll_all_feeds
from newsletter.services.inbound import purge_raw_messages, raw_retention

SLOT_JOB = "weekly-slot"
CHECK_JOB = "schedule-check"
FEEDS_JOB = "feeds-poll"
FEEDS_LEAD_JOB = "feeds-before-slot"
RETENTION_JOB = "inbound-retention"
RETENTION_EVERY = timedelta(days=1)
RETENTION_FIRST = timedelta(minutes=5)  # after start-up: never in the way of a catch-up
CHECK_EVERY = timedelta(minutes=1)
STOP_TIMEOUT = 30.0  # seconds to let a running dispatch finish on shutdown

NowFn = Callable[[], datetime]
log = logging.getLogger("newsletter.scheduler")


async def run_dispatch(config: Config, engine: Engine, now_fn: NowFn) -> list[Slot]:
    """The job: record what is due now. The store is synchronous, so it runs in a thread."""
    recorded = await asyncio.to_thread(dispatch_due, config, engine, now_fn())
    for slot in recorded:
        log.info("slot %s: %s %s", slot.slot_at.isoformat(), slot.outcome, slot.reason)
    return recorded


def slot_trigger(config: Config) -> CronTrigger:
    """The weekly slot as a cron trigger in the list's time zone."""
    schedule = schedule_of(config)
    return CronTrigger(
        day_of_week=WEEKDAYS[schedule.weekday],
        hour=schedule.at.hour,
        minute=schedule.at.minute,
        timezone=schedule.zone,
    )


async def run_feed_poll(config: Config, engine: Engine, now_fn: NowFn) -> None:
    """The feeds job: read every feed in a thread; failures are recorded per feed."""
    policy = FetchPolicy.from_config(config)
    for result in await asyncio.to_thread(poll_all_feeds, engine, policy, now_fn()):
        if result.error is not None:
            log.warning("feed %s: %s", result.url, result.error)
        elif result.queued:
            log.info("feed %s: %s link(s) queued", result.url, result.queued)


def feed_lead_trigger(config: Config) -> CronTrigger:
    """``[intake] feed_lead_minutes`` before the weekly slot, in the list's time zone."""
    schedule = schedule_of(config)
    lead = timedelta(minutes=int(config.get("intake", "feed_lead_minutes")))
    monday = date(2026, 1, 5)  # any Monday: only the weekday and the time matter
    before = datetime.combine(monday + timedelta(days=schedule.weekday), schedule.at) - lead
    return CronTrigger(
        day_of_week=WEEKDAYS[before.weekday()],
        hour=before.hour,
        minute=before.minute,
        timezone=schedule.zone,
    )


def add_feed_jobs(
    scheduler: AsyncIOScheduler, config: Config, engine: Engine, now_fn: NowFn
) -> None:
    """The two feed jobs (link intake), apart from the send jobs: one never waits on the other."""
    args = (config, engine, now_fn)
    every = max(int(config.get("intake", "feed_poll_minutes")), 1) * 60
    scheduler.add_job(
        run_feed_poll,
        IntervalTrigger(seconds=every, timezone=schedule_of(config).zone),
        args=args,
        id=FEEDS_JOB,
        name="read the feeds",
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        run_feed_poll,
        feed_lead_trigger(config),
        args=args,
        id=FEEDS_LEAD_JOB,
        name="read the feeds before the slot",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=600,
    )


async def run_retention(config: Config, engine: Engine, now_fn: NowFn) -> None:
    """The retention job: empty the raw bytes of old inbound messages, in a thread."""
    retention = raw_retention(config)
    report = await asyncio.to_thread(purge_raw_messages, engine, retention, now=now_fn())
    if report.messages:
        log.info("inbound retention: raw bytes of %s message(s) removed", report.messages)


def add_retention_job(
    scheduler: AsyncIOScheduler, config: Config, engine: Engine, now_fn: NowFn
) -> None:
    """The daily retention job, unless ``[bounces] keep_raw_days`` is 0 (keep forever)."""
    if raw_retention(config).handled_days <= 0:
        return
    scheduler.add_job(
        run_retention,
        IntervalTrigger(seconds=int(RETENTION_EVERY.total_seconds())),
        args=(config, engine, now_fn),
        id=RETENTION_JOB,
        name="remove old raw inbound messages",
        coalesce=True,
        max_instances=1,
        next_run_time=utc_now() + RETENTION_FIRST,
    )


def build_scheduler(config: Config, engine: Engine, *, now_fn: NowFn = utc_now) -> AsyncIOScheduler:
    """An AsyncIOScheduler (not started) holding the jobs described in the module doc."""
    schedule = schedule_of(config)
    scheduler = AsyncIOScheduler(timezone=schedule.zone)
    args = (config, engine, now_fn)
    grace = max(int(grace_of(config).total_seconds()), 1)
    scheduler.add_job(
        run_dispatch,
        slot_trigger(config),
        args=args,
        id=SLOT_JOB,
        name="weekly slot",
        misfire_grace_time=grace,
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        run_dispatch,
        IntervalTrigger(seconds=int(CHECK_EVERY.total_seconds()), timezone=schedule.zone),
        args=args,
        id=CHECK_JOB,
        name="catch-up and delayed sends",
        misfire_grace_time=int(CHECK_EVERY.total_seconds()),
        coalesce=True,
        max_instances=1,
        next_run_time=utc_now(),  # start-up catch-up
    )
    add_feed_jobs(scheduler, config, engine, now_fn)
    add_retention_job(scheduler, config, engine, now_fn)
    return scheduler


@contextlib.asynccontextmanager
async def scheduler_service(
    config: Config, engine: Engine, *, now_fn: NowFn = utc_now, always: bool = False
) -> AsyncIterator[AsyncIOScheduler | None]:
    """Run the schedule in the current event loop for as long as the context lasts (``serve``
    enters it beside the web server). Yields ``None`` when ``[schedule] enabled`` is off,
    unless ``always`` (the standalone scheduler, run on purpose)."""
    if not (always or config.get("schedule", "enabled")):
        yield None
        return
    scheduler = build_scheduler(config, engine, now_fn=now_fn)
    idle = _track_running_jobs(scheduler)
    scheduler.start()
    job = scheduler.get_job(SLOT_JOB)
    log.info("schedule started; next slot %s", job.next_run_time if job else None)
    try:
        yield scheduler
    finally:
        # Stop new firings, let a dispatch in progress commit (shutting down the asyncio
        # executor would cancel it mid-way and log a spurious error), then shut down.
        scheduler.pause()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), timeout=STOP_TIMEOUT)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # let the loop run the scheduled shutdown


def _track_running_jobs(scheduler: AsyncIOScheduler) -> asyncio.Event:
    """An event set whenever no job of ``scheduler`` is running (events arrive in the loop).

    A submission carries its run times; each one ends with an executed, error or missed event.
    """
    idle = asyncio.Event()
    idle.set()
    running = [0]

    def on_event(event: JobEvent) -> None:
        if isinstance(event, JobSubmissionEvent):
            running[0] += len(event.scheduled_run_times)
        else:
            running[0] -= 1
        if running[0] > 0:
            idle.clear()
        else:
            idle.set()

    scheduler.add_listener(
        on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
    )
    return idle


async def run_standalone(config: Config, engine: Engine, *, with_sender: bool = True) -> None:
    """``python scheduler.py``: the schedule (and, unless told not to, a delivery worker that
    sends what it starts) until SIGTERM or Ctrl-C. It runs even with ``[schedule] enabled``
    off, which only keeps ``serve`` from running a second schedule."""
    from newsletter.sending.service import delivery_service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(scheduler_service(config, engine, always=True))
        if with_sender:
            await stack.enter_async_context(delivery_service(config, engine))
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the weekly schedule of the newsletter.")
    parser.add_argument("--config", default=None, help="configuration file")
    parser.add_argument(
        "--no-sender", action="store_true", help="only record slots; leave sending to `serve`"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # APScheduler logs every run of the minute job at INFO; editors need only its problems.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
        for note in config.deprecated:
            log.warning("%s (%s) is deprecated: use %s", note.old, note.source, note.new)
        engine = make_engine(config.database_url)
        asyncio.run(run_standalone(config, engine, with_sender=not args.no_sender))
    except NewsletterError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
