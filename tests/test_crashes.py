"""Sender processes that die or stop, against a real SMTP server and a real database: SIGKILL
at five points of a send (each re-sends at most what was in flight), the rest taken back at
once on the same host or when the lease runs out elsewhere, SIGTERM, and several worker
processes sharing one PostgreSQL send."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from newsletter.config import Config
from newsletter.db import make_engine, read_transaction, transaction, upgrade_database
from newsletter.models import ClaimRecovery, Delivery, DeliveryStatus, RunStatus, SendRun
from newsletter.sending.sender import SenderOptions, run_sender
from newsletter.sending.service import run_progress
from tests.conftest import ConfigFactory
from tests.delivery_support import T0, FaultHandler, add_subscribers, delivery_counts
from tests.harness import RecordingHandler, SMTPServer
from tests.test_faults import asyncio_run, everyone_once, number, start

ROOT = Path(__file__).resolve().parent.parent
BATCH, WORKERS = 20, 2
# What one SIGKILL may re-send: one message in flight per connection, plus the outcomes
# waiting for the group commit (SenderOptions.commit_limit).
BOUND = WORKERS + SenderOptions().commit_limit

Condition = Callable[[SMTPServer, Engine], bool]


def spawn(config: Config, *, workers: int = WORKERS, **options: float) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.fault_worker", str(config.path)]
    argv += ["--batch", str(BATCH), "--workers", str(workers)]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def kill_when(
    process: subprocess.Popen[str], server: SMTPServer, engine: Engine, ready: Condition
) -> None:
    """SIGKILL ``process`` as soon as ``ready`` holds (polled every few milliseconds)."""
    deadline = time.monotonic() + 120
    while not ready(server, engine):
        assert process.poll() is None, "the sender finished before it could be killed"
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def sent_in_ledger(engine: Engine) -> set[str]:
    with read_transaction(engine) as session:
        query = select(Delivery.email).where(Delivery.status == DeliveryStatus.SENT)
        return set(session.scalars(query))


def in_retry(engine: Engine) -> int:
    with read_transaction(engine) as session:
        query = select(func.count()).where(Delivery.status == DeliveryStatus.RETRY)
        return int(session.scalar(query) or 0)


def received_at_least(count: int) -> Condition:
    return lambda server, engine: len(server.received()) >= count


def after_a_group_commit(count: int) -> Condition:
    """True right after the ledger's count of ``sent`` grew, once ``count`` were received."""
    seen: list[int] = []

    def ready(server: SMTPServer, engine: Engine) -> bool:
        if len(server.received()) < count:
            return False
        now = len(sent_in_ledger(engine))
        seen.append(now)
        return len(seen) > 1 and seen[-1] > seen[-2]

    return ready


def while_retries_wait(count: int) -> Condition:
    return lambda server, engine: len(server.received()) >= count and in_retry(engine) > 0


def test_sigkill_at_five_points_resends_at_most_what_was_in_flight(
    make_config: ConfigFactory, db_url: str
) -> None:
    """A sender SIGKILLed early, mid-batch, just after a group commit, while retries wait for
    their backoff and during the final batch, each time restarted at once on the same host:
    everyone gets the issue, and each kill re-sends at most one message per connection plus
    the group-commit window."""
    size = 400

    def data(address: str, tries: int) -> str | None:
        return "451 4.3.0 try again" if number(address) % 13 == 5 and tries == 1 else None

    kills: dict[str, Condition] = {
        "early": received_at_least(15),
        "mid-batch": received_at_least(4 * BATCH + BATCH // 2),
        "after a group commit": after_a_group_commit(150),
        "during retry backoff": while_retries_wait(230),
        "final batch": received_at_least(size - 8),
    }
    with SMTPServer(FaultHandler(data_reply=data)) as server:
        config = make_config(db_url, smtp_port=server.port)
        engine = make_engine(db_url)
        upgrade_database(engine)
        add_subscribers(engine, size)
        run_id = start(engine)
        resent: dict[str, int] = {}
        for point, ready in kills.items():
            kill_when(spawn(config, retry_ms=300), server, engine, ready)
            received = set(server.handler.recipients())
            resent[point] = len(received - sent_in_ledger(engine))
        began = time.monotonic()
        final = spawn(config, retry_ms=300)
        out, _ = final.communicate(timeout=120)
        recovery = time.monotonic() - began
        assert final.returncode == 0 and json.loads(out)["sent"] > 0
        received_count = Counter(server.handler.recipients())
        assert set(received_count) == {f"reader{i}@example.net" for i in range(size)}
        duplicates = sum(received_count.values()) - size
        print(f"SIGKILL at 5 points, {size} recipients: re-sent {resent}, {duplicates} duplicates")
        print(f"the last kill's rest finished {recovery:.1f} s after a restart")
        assert all(n <= BOUND for n in resent.values()), resent
        assert duplicates <= sum(resent.values())
        assert delivery_counts(engine, run_id) == {"sent": size}
        with transaction(engine) as session:
            run = session.get(SendRun, run_id)
            assert run is not None and run.status == RunStatus.DONE
            recovered = session.scalar(select(func.sum(ClaimRecovery.count)))
            assert recovered and recovered > 0
        engine.dispose()


def test_claims_of_a_sender_on_another_host_come_back_when_the_lease_runs_out(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """Rows held by a killed sender of another host are not taken back while its lease holds;
    `send status` names the stopped sender, and a new sender finishes the send once the lease
    has run out."""
    with SMTPServer(RecordingHandler()) as server:
        config = make_config(sqlite_url, smtp_port=server.port)
        engine = make_engine(sqlite_url)
        upgrade_database(engine)
        add_subscribers(engine, 200)
        run_id = start(engine)
        kill_when(spawn(config, lease=2.0), server, engine, received_at_least(50))
        with transaction(engine) as session:
            held = session.execute(
                update(Delivery)
                .where(Delivery.status == DeliveryStatus.SENDING)
                .values(claim_host="elsewhere.example")
            ).rowcount
        assert held > 0
        began = time.monotonic()
        out, _ = spawn(config, lease=2.0).communicate(timeout=120)
        assert json.loads(out)["sent"] > 0
        assert time.monotonic() - began >= 1.0  # it waited for the lease
        everyone_once_or_resent(server, 200)
        assert delivery_counts(engine, run_id) == {"sent": 200}
        with transaction(engine) as session:
            recovery = session.scalars(select(ClaimRecovery)).one()
            assert (recovery.host, recovery.count) == ("elsewhere.example", held)
        engine.dispose()


def everyone_once_or_resent(server: SMTPServer, count: int) -> None:
    received = Counter(server.handler.recipients())
    assert set(received) == {f"reader{i}@example.net" for i in range(count)}
    assert sum(received.values()) - count <= BOUND


@pytest.mark.slow
def test_one_of_three_postgres_workers_killed_the_others_finish_at_once(
    make_config: ConfigFactory, postgres: object
) -> None:
    """Three worker processes share a PostgreSQL send; one is SIGKILLed: the two others take
    its rows back at once (same host) and finish, everyone gets the issue."""
    url = postgres.create_database()  # type: ignore[attr-defined]
    size = 1500
    with SMTPServer(RecordingHandler()) as server:
        config = make_config(url, smtp_port=server.port)
        engine = make_engine(url)
        upgrade_database(engine)
        add_subscribers(engine, size)
        run_id = start(engine)
        processes = [spawn(config) for _ in range(3)]
        kill_when(processes[0], server, engine, received_at_least(size // 3))
        killed_at = time.monotonic()
        for process in processes[1:]:
            process.communicate(timeout=120)
            assert process.returncode == 0
        finished = time.monotonic() - killed_at
        received = Counter(server.handler.recipients())
        assert set(received) == {f"reader{i}@example.net" for i in range(size)}
        assert sum(received.values()) - size <= BOUND
        assert delivery_counts(engine, run_id) == {"sent": size}
        print(f"one of 3 PostgreSQL workers killed: the rest finished {finished:.1f} s later")
        assert finished < 30
        engine.dispose()


def test_send_status_names_a_stopped_sender_until_its_rows_are_taken_back(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """After a SIGKILL, the run's progress counts the messages held by the stopped sender
    (its pid and host) and, once a new sender took them back, when that happened."""
    with SMTPServer(RecordingHandler()) as server:
        config = make_config(sqlite_url, smtp_port=server.port)
        engine = make_engine(sqlite_url)
        upgrade_database(engine)
        add_subscribers(engine, 300)
        run_id = start(engine)
        process = spawn(config)
        kill_when(process, server, engine, received_at_least(60))
        with transaction(engine) as session:
            progress = run_progress(session, run_id, T0)
        [stopped] = progress.stopped_senders
        assert stopped.pid == process.pid and stopped.count > 0
        assert stopped.taken_back_at is None
        asyncio_run(run_sender(config, engine, options=SenderOptions(poll_interval=0.01)))
        with transaction(engine) as session:
            progress = run_progress(session, run_id, T0)
        [stopped] = progress.stopped_senders
        assert stopped.pid == process.pid and stopped.taken_back_at is not None
        engine.dispose()


def test_sigterm_on_worker_records_in_flight_messages_and_duplicates_nothing(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """`newsletter worker` stopped with SIGTERM finishes and records what it has in flight:
    no row is left claimed, and the next sender duplicates nobody."""
    with SMTPServer(RecordingHandler()) as server:
        config = make_config(sqlite_url, smtp_port=server.port)
        engine = make_engine(sqlite_url)
        upgrade_database(engine)
        add_subscribers(engine, 1500)
        run_id = start(engine)
        entry = "from newsletter.cli import main; main()"
        argv = [sys.executable, "-c", entry, "--config", str(config.path), "worker"]
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(server.received()) < 100:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.002)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0 and out.startswith("Sent ")
        counts = delivery_counts(engine, run_id)
        assert "sending" not in counts
        assert counts["sent"] == len(server.received()) < 1500
        asyncio_run(
            run_sender(
                config, engine, options=SenderOptions(batch_size=10, workers=3, poll_interval=0.01)
            )
        )
        everyone_once(server, 1500)
        engine.dispose()


def test_two_worker_processes_share_a_postgres_send_exactly_once(
    make_config: ConfigFactory, postgres: object
) -> None:
    """Two sender processes on one PostgreSQL send split the work (SKIP LOCKED) and each
    recipient gets the message exactly once."""
    url = postgres.create_database()  # type: ignore[attr-defined]
    with SMTPServer(RecordingHandler()) as server:
        config = make_config(url, smtp_port=server.port)
        engine = make_engine(url)
        upgrade_database(engine)
        add_subscribers(engine, 1200)
        run_id = start(engine)
        processes = [spawn(config) for _ in range(2)]
        results = [json.loads(p.communicate(timeout=300)[0]) for p in processes]
        assert all(p.returncode == 0 for p in processes)
        assert all(r["sent"] > 0 for r in results), results
        assert sum(r["sent"] for r in results) == 1200
        everyone_once(server, 1200)
        assert delivery_counts(engine, run_id) == {"sent": 1200}
        engine.dispose()
