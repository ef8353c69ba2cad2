"""The clock: the real APScheduler wiring fires the dispatcher at the configured local time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, select

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.models import Issue, Slot
from newsletter.schedule.dispatch import schedule_of
from newsletter.schedule.policy import following_slot, latest_slot, next_slot
from newsletter.sending.service import run_sender
from scheduler import CHECK_JOB, SLOT_JOB, build_scheduler, scheduler_service, slot_trigger
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer
from tests.test_dispatch import add_subscribers, queue

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def test_cron_trigger_agrees_with_the_schedule_across_dst(make_config: ConfigFactory) -> None:
    """APScheduler's trigger fires at the same instants as the pure schedule around both 2026
    DST changes in Europe/Paris (08:00 local: 07:00 UTC in winter, 06:00 UTC in summer)."""
    config = make_config("sqlite:///unused.db")
    trigger, schedule = slot_trigger(config), schedule_of(config)
    for start in (paris(2026, 3, 20), paris(2026, 10, 16)):
        fired, expected = [], []
        previous, now = None, start
        slot = next_slot(schedule, start)
        for _ in range(3):
            fire = trigger.get_next_fire_time(previous, now)
            assert fire is not None
            fired.append(fire.astimezone(UTC))
            expected.append(slot)
            previous, now, slot = fire, fire, following_slot(schedule, slot)
        assert fired == expected
    assert expected[1] == datetime(2026, 10, 25, 7, tzinfo=UTC)


def _listen(
    scheduler: AsyncIOScheduler, job_id: str
) -> Callable[[], asyncio.Future[JobExecutionEvent]]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[JobExecutionEvent] = loop.create_future()

    def on_event(event: JobExecutionEvent) -> None:
        if event.job_id == job_id and not future.done():
            loop.call_soon_threadsafe(future.set_result, event)

    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    return lambda: future


async def test_real_scheduler_fires_the_slot_job_end_to_end(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """The real AsyncIOScheduler runs the weekly-slot job: the slot is recorded, issue #1 is
    published and its send reaches a real SMTP server once per subscriber."""
    add_subscribers(engine, 2, paris(2026, 3, 20))
    queue(engine, "La démocratie locale", paris(2026, 3, 25, 9))
    slot = paris(2026, 3, 29, 8)
    scheduler = build_scheduler(config, engine, now_fn=lambda: slot)
    scheduler.remove_job(CHECK_JOB)  # only the cron job may act in this test
    executed = _listen(scheduler, SLOT_JOB)
    scheduler.start()
    try:
        job = scheduler.get_job(SLOT_JOB)
        assert job.misfire_grace_time == 24 * 3600 and job.coalesce is True
        real_next = job.next_run_time.astimezone(PARIS)
        assert (real_next.weekday(), real_next.hour, real_next.minute) == (6, 8, 0)
        # Fire it now through the scheduler's own machinery rather than waiting for Sunday.
        job.modify(next_run_time=datetime.now(UTC))
        scheduler.wakeup()
        event = await asyncio.wait_for(executed(), timeout=20)
    finally:
        scheduler.shutdown(wait=False)
    assert event.exception is None
    assert [s.outcome for s in event.retval] == ["sent"]
    await run_sender(config, engine, stop_when_idle=True)
    messages = smtp_server.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in messages) == [
        "lecteur0@example.org",
        "lecteur1@example.org",
    ]
    parsed = messages[0].parsed()
    assert parsed["Subject"].endswith("#1")
    assert "La démocratie locale" in parsed.get_body(("plain",)).get_content()
    with transaction(engine) as session:
        assert session.scalars(select(Slot.outcome)).all() == ["sent"]
        assert session.scalars(select(Issue.number)).all() == [1]
    assert len(smtp_server.received()) == 2


async def test_service_catches_up_at_start_up(config: Config, engine: Engine) -> None:
    """Entering scheduler_service runs a start-up check that sends a slot missed while down."""
    add_subscribers(engine, 1, paris(2026, 4, 1))  # a send needs a recipient
    queue(engine, "Un lien", paris(2026, 4, 8, 9))
    late = paris(2026, 4, 12, 20)  # 12 h after the slot, within the 24 h grace
    async with scheduler_service(config, engine, now_fn=lambda: late) as scheduler:
        assert scheduler is not None
        executed = _listen(scheduler, CHECK_JOB)
        event = await asyncio.wait_for(executed(), timeout=20)
    assert [(s.slot_at, s.outcome) for s in event.retval] == [(paris(2026, 4, 12, 8), "sent")]


async def test_service_is_off_when_schedule_disabled(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """With [schedule] enabled = false the service starts no scheduler."""
    config = make_config(sqlite_url, schedule__enabled=False)
    async with scheduler_service(config, make_engine(sqlite_url)) as scheduler:
        assert scheduler is None


async def test_stopping_the_service_lets_a_running_dispatch_commit(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """Leaving scheduler_service while a dispatch is running waits for it instead of cancelling
    it: the slot it was deciding is recorded and the job ends without error."""
    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    add_subscribers(engine, 1, paris(2026, 4, 1))  # a send needs a recipient
    queue(engine, "Un lien", paris(2026, 4, 8, 9))
    late = paris(2026, 4, 12, 9)
    service = scheduler_service(config, engine, now_fn=lambda: late)
    lock = engine.connect()
    lock.begin()  # BEGIN IMMEDIATE: the dispatch's transaction waits for this one
    scheduler = await service.__aenter__()
    assert scheduler is not None
    executed = _listen(scheduler, CHECK_JOB)
    submitted = asyncio.get_running_loop().create_future()
    scheduler.add_listener(
        lambda e: submitted.done() or submitted.set_result(e.job_id), EVENT_JOB_SUBMITTED
    )
    assert await asyncio.wait_for(submitted, timeout=20) == CHECK_JOB
    stopping = asyncio.create_task(service.__aexit__(None, None, None))
    for _ in range(20):
        await asyncio.sleep(0)  # let the exit start waiting; no timed sleep
    assert not stopping.done()
    lock.rollback()
    lock.close()
    await asyncio.wait_for(stopping, timeout=20)
    event = await asyncio.wait_for(executed(), timeout=5)
    assert event.exception is None
    with transaction(engine) as session:
        assert session.scalars(select(Slot.outcome)).all() == ["sent"]


def test_standalone_scheduler_process_catches_up_and_stops_on_sigterm(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """`python scheduler.py` records every slot since the last recorded one at start-up (the
    real clock), even with [schedule] enabled off (that is for `serve`), and exits 0 on
    SIGTERM."""
    config = make_config(sqlite_url, schedule__enabled=False)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    latest = latest_slot(schedule_of(config), utc_now())
    two_weeks_ago = latest_slot(schedule_of(config), latest - timedelta(days=10))
    with transaction(engine) as session:
        session.add(Slot(slot_at=two_weeks_ago, outcome="sent", reason="", decided_at=utc_now()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    script = str(Path(__file__).resolve().parent.parent / "scheduler.py")
    process = subprocess.Popen(
        [sys.executable, script, "--config", str(config.path), "--no-sender"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with transaction(engine) as session:
                recorded = session.scalars(select(Slot.slot_at).order_by(Slot.slot_at)).all()
            if len(recorded) == 3 or process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling a starting process, not waiting for time to pass
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert recorded == [
        two_weeks_ago,
        latest_slot(schedule_of(config), latest - timedelta(days=1)),
        latest,
    ], output
    assert process.returncode == 0, output
