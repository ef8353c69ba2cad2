"""Delivery under faults, against a real SMTP server that injects them: temporary errors and
dropped connections, bounces, a relay down for the whole send, a pause mid-send. (Sender
processes that die or stop: ``test_crashes.py``.)"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from newsletter.cli import main
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.models import Delivery, RunStatus, SendRun
from newsletter.sending.builders import BuildFn, RunMessage
from newsletter.sending.ledger import Claim
from newsletter.sending.runs import pause_run
from newsletter.sending.service import SenderOptions, resume_run, run_sender, start_send_run
from subscribers.models import Subscriber, SubscriberStatus
from tests.conftest import ConfigFactory
from tests.delivery_support import T0, FaultHandler, add_subscribers, delivery_counts
from tests.harness import RecordingHandler, SMTPServer

QUICK = SenderOptions(
    batch_size=10, workers=3, poll_interval=0.01, retry_base=timedelta(milliseconds=5)
)


def number(address: str) -> int:
    return int(address.removeprefix("reader").split("@")[0])


def start(engine: Engine) -> int:
    with transaction(engine) as session:
        return start_send_run(
            session,
            key="issue:1",
            kind="digest",
            subject="Les liens CivicTech #1",
            html="<p>Bonjour</p><a href='@@UNSUBSCRIBE_URL@@'>désinscription</a>",
            text="Bonjour\n@@UNSUBSCRIBE_URL@@",
            issue_id=None,
            now=T0,
        ).id


def everyone_once(server: SMTPServer, count: int) -> None:
    received = Counter(server.handler.recipients())
    assert received == {f"reader{i}@example.net": 1 for i in range(count)}


def test_temporary_errors_and_dropped_connections_deliver_everyone_once(
    make_config: ConfigFactory, db_url: str
) -> None:
    """421 at RCPT, 451 after DATA and connections dropped mid-DATA are retried on fresh
    connections until every recipient has the message exactly once."""

    def rcpt(address: str, tries: int) -> str | None:
        return (
            "421 4.7.0 busy, come back later" if number(address) % 11 == 0 and tries == 1 else None
        )

    def data(address: str, tries: int) -> str | None:
        n = number(address)
        if n % 5 == 0 and tries == 1:
            return "451 4.3.0 local error"
        if n % 7 == 0 and tries <= (2 if n % 35 == 0 else 1):
            return "DROP"
        return None

    with SMTPServer(FaultHandler(rcpt_reply=rcpt, data_reply=data)) as server:
        config = make_config(db_url, smtp_port=server.port)
        engine = make_engine(db_url)
        upgrade_database(engine)
        add_subscribers(engine, 120)
        run_id = start(engine)
        asyncio_run(run_sender(config, engine, options=QUICK))
        everyone_once(server, 120)
        assert delivery_counts(engine, run_id) == {"sent": 120}
        with transaction(engine) as session:
            attempts = dict(session.execute(select(Delivery.email, Delivery.attempts)).all())
            run = session.get(SendRun, run_id)
            assert run is not None and run.status == RunStatus.DONE
        assert attempts["reader35@example.net"] == 3  # 451, then dropped, then delivered
        assert attempts["reader7@example.net"] == 2
        assert attempts["reader11@example.net"] == 2
        assert attempts["reader1@example.net"] == 1
        engine.dispose()


def test_hard_bounces_are_recorded_and_the_rest_delivered(
    make_config: ConfigFactory, db_url: str
) -> None:
    """550 for some recipients: their deliveries and subscribers are bounced, nobody else is
    affected, and no message reached the server for them."""

    def rcpt(address: str, tries: int) -> str | None:
        return "550 5.1.1 no such user" if number(address) % 10 == 3 else None

    with SMTPServer(FaultHandler(rcpt_reply=rcpt)) as server:
        config = make_config(db_url, smtp_port=server.port)
        engine = make_engine(db_url)
        upgrade_database(engine)
        add_subscribers(engine, 60)
        run_id = start(engine)
        asyncio_run(run_sender(config, engine, options=QUICK))
        received = Counter(server.handler.recipients())
        assert received == {f"reader{i}@example.net": 1 for i in range(60) if i % 10 != 3}
        assert delivery_counts(engine, run_id) == {"sent": 54, "bounced": 6}
        with transaction(engine) as session:
            bounced = session.scalars(
                select(Subscriber.email).where(Subscriber.status == SubscriberStatus.BOUNCED)
            )
            assert sorted(bounced) == sorted(f"reader{i}@example.net" for i in range(3, 60, 10))
            error = session.scalar(select(Delivery.last_error).where(Delivery.status == "bounced"))
            assert error is not None and "550" in error
        engine.dispose()


def test_fifty_subscribers_at_a_dead_domain_never_pause_the_run(
    make_config: ConfigFactory, db_url: str
) -> None:
    """50 recipients in a row refused at RCPT (550 5.1.2, a dead domain) are bounces: the run
    never pauses, they are bounced and everyone else gets the issue once."""

    def rcpt(address: str, tries: int) -> str | None:
        dead = 20 <= number(address) < 70
        return "550 5.1.2 <x@dead.example>: domain does not exist" if dead else None

    with SMTPServer(FaultHandler(rcpt_reply=rcpt)) as server:
        config = make_config(db_url, smtp_port=server.port)
        engine = make_engine(db_url)
        upgrade_database(engine)
        add_subscribers(engine, 150)
        run_id = start(engine)
        stats = asyncio_run(run_sender(config, engine, options=QUICK))
        assert stats.paused_runs == [] and stats.bounced == 50
        received = Counter(server.handler.recipients())
        assert received == {f"reader{i}@example.net": 1 for i in range(150) if not 20 <= i < 70}
        assert delivery_counts(engine, run_id) == {"sent": 100, "bounced": 50}
        engine.dispose()


def test_a_relay_refusing_every_recipient_still_pauses_the_run(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """A 5xx at RCPT that names the relay (554 5.7.1 relay access denied) for everyone trips
    the breaker: the run pauses instead of bouncing the whole list."""

    def rcpt(address: str, tries: int) -> str | None:
        return "554 5.7.1 <x@example.net>: Relay access denied"

    with SMTPServer(FaultHandler(rcpt_reply=rcpt)) as server:
        config = make_config(sqlite_url, smtp_port=server.port)
        engine = make_engine(sqlite_url)
        upgrade_database(engine)
        add_subscribers(engine, 200)
        run_id = start(engine)
        stats = asyncio_run(run_sender(config, engine, options=QUICK))
        assert stats.paused_runs == [run_id] and server.received() == []
        assert delivery_counts(engine, run_id)["bounced"] < 40
        engine.dispose()


def test_relay_down_pauses_the_run_and_resume_completes_it(
    make_config: ConfigFactory, db_url: str
) -> None:
    """With the relay down for the whole send, the run pauses itself with the reason, nobody
    is failed or loses an attempt, and `send resume` completes the send once it is back."""
    server = SMTPServer(RecordingHandler())  # its port is chosen but nothing listens yet
    config = make_config(db_url, smtp_port=server.port)
    engine = make_engine(db_url)
    upgrade_database(engine)
    add_subscribers(engine, 80)
    run_id = start(engine)
    stats = asyncio_run(run_sender(config, engine, options=QUICK))
    assert stats.paused_runs == [run_id] and stats.sent == 0
    with transaction(engine) as session:
        run = session.get(SendRun, run_id)
        assert run is not None and run.status == RunStatus.PAUSED
        assert "paused automatically" in run.pause_reason
        attempts = set(session.scalars(select(Delivery.attempts)))
        assert attempts == {0}
    assert set(delivery_counts(engine, run_id)) <= {"pending", "retry"}
    with server:
        result = CliRunner().invoke(main, ["--config", str(config.path), "send", "resume"])
        assert result.exit_code == 0, result.output
        everyone_once(server, 80)
    assert delivery_counts(engine, run_id) == {"sent": 80}
    engine.dispose()


@pytest.mark.parametrize("reply", ["451 4.4.1 queue full", "554 5.7.1 message refused"])
def test_relay_rejecting_everything_pauses_before_anyone_fails(
    make_config: ConfigFactory, sqlite_url: str, reply: str
) -> None:
    """A relay refusing every message after DATA (4xx, or a 5xx that says nothing about the
    address) trips the breaker: the run pauses, nobody is marked failed or bounced, and a
    resume after the relay recovers delivers everyone once."""
    healthy = {"ok": False}

    def data(address: str, tries: int) -> str | None:
        return None if healthy["ok"] else reply

    with SMTPServer(FaultHandler(data_reply=data)) as server:
        config = make_config(sqlite_url, smtp_port=server.port, smtp__max_attempts=3)
        engine = make_engine(sqlite_url)
        upgrade_database(engine)
        add_subscribers(engine, 100)
        run_id = start(engine)
        stats = asyncio_run(run_sender(config, engine, options=QUICK))
        assert stats.paused_runs == [run_id]
        counts = delivery_counts(engine, run_id)
        assert set(counts) <= {"pending", "retry"}
        with transaction(engine) as session:
            statuses = set(session.scalars(select(Subscriber.status)))
            assert statuses == {SubscriberStatus.ACTIVE}
        healthy["ok"] = True
        with transaction(engine) as session:
            resume_run(session, run_id, utc_now())
        asyncio_run(run_sender(config, engine, options=QUICK))
        everyone_once(server, 100)
        assert delivery_counts(engine, run_id) == {"sent": 100}
        engine.dispose()


def test_pause_mid_send_then_resume_sends_nobody_twice_and_misses_nobody(
    make_config: ConfigFactory, db_url: str
) -> None:
    """Pausing stops claiming, in-flight messages finish and are recorded; resuming sends the
    rest: every recipient exactly once."""
    with SMTPServer(RecordingHandler()) as server:
        config = make_config(db_url, smtp_port=server.port)
        engine = make_engine(db_url)
        upgrade_database(engine)
        add_subscribers(engine, 150)
        run_id = start(engine)
        built = Counter[int]()

        def factory(config: Config, message: RunMessage) -> BuildFn:
            def build(claim: Claim, now: datetime) -> bytes:
                built["n"] += 1
                if built["n"] == 30:
                    with transaction(engine) as session:
                        pause_run(session, run_id, "l'édito n'est pas relu", now)
                return f"To: {claim.email}\r\nSubject: x\r\n\r\nBonjour\r\n".encode()

            return build

        asyncio_run(run_sender(config, engine, options=QUICK, message_factory=factory))
        first = len(server.received())
        counts = delivery_counts(engine, run_id)
        assert 30 <= first < 150 and counts["sent"] == first and "sending" not in counts
        with transaction(engine) as session:
            resume_run(session, run_id, utc_now())
        asyncio_run(run_sender(config, engine, options=QUICK))
        everyone_once(server, 150)
        engine.dispose()


def asyncio_run(coro: object) -> object:
    import asyncio

    return asyncio.run(coro)  # type: ignore[arg-type]
