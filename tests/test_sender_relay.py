"""The sender against relays that need AUTH or never answer: credentials are used, and a
relay that refuses them or hangs pauses the run instead of failing anyone."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Engine, select

from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.models import Delivery, RunStatus, SendRun
from newsletter.sending.service import SenderOptions, run_sender, start_send_run
from tests.conftest import ConfigFactory
from tests.delivery_support import T0, add_subscribers, simple_factory
from tests.harness import RecordingHandler, free_port

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

OPTIONS = SenderOptions(batch_size=5, workers=2, poll_interval=0.01, breaker_window=6)


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"redaction",
        b"s3cret-relay",
    )
    return AuthResult(success=ok)


@pytest.fixture
def auth_relay() -> Iterator[tuple[int, RecordingHandler]]:
    """An SMTP server on loopback that requires AUTH (PLAIN/LOGIN) before MAIL."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield port, handler
    controller.stop()


def prepared(make_config: ConfigFactory, url: str, port: int, **overrides: Any) -> Any:
    config = make_config(url, smtp_port=port, **overrides)
    engine = make_engine(url)
    upgrade_database(engine)
    add_subscribers(engine, 12)
    with transaction(engine) as session:
        start_send_run(
            session,
            key="issue:1",
            kind="digest",
            subject="Les liens #1",
            html="<p>x</p>",
            text="x",
            issue_id=None,
            now=T0,
        )
    return config, engine


def run_state(engine: Engine) -> tuple[str, str, set[int]]:
    with transaction(engine) as session:
        run = session.scalars(select(SendRun)).one()
        attempts = set(session.scalars(select(Delivery.attempts)))
        return run.status, run.pause_reason, attempts


async def test_relay_credentials_are_used(
    make_config: ConfigFactory, sqlite_url: str, auth_relay: tuple[int, RecordingHandler]
) -> None:
    """With [smtp] username/password set, the sender authenticates and delivers."""
    port, handler = auth_relay
    config, engine = prepared(
        make_config, sqlite_url, port, smtp__username="redaction", smtp__password="s3cret-relay"
    )
    stats = await run_sender(config, engine, options=OPTIONS, message_factory=simple_factory)
    assert stats.sent == 12
    assert Counter(handler.recipients()) == {f"reader{i}@example.net": 1 for i in range(12)}
    engine.dispose()


async def test_refused_credentials_pause_the_run(
    make_config: ConfigFactory, sqlite_url: str, auth_relay: tuple[int, RecordingHandler]
) -> None:
    """Wrong credentials: nothing is sent, the run pauses itself, and no recipient has spent
    an attempt."""
    port, handler = auth_relay
    config, engine = prepared(
        make_config,
        sqlite_url,
        port,
        smtp__username="redaction",
        smtp__password="wrong",
        smtp__timeout=1.0,
    )
    stats = await run_sender(config, engine, options=OPTIONS, message_factory=simple_factory)
    status, reason, attempts = run_state(engine)
    assert stats.sent == 0 and handler.recipients() == []
    assert status == RunStatus.PAUSED and "paused automatically" in reason
    assert attempts == {0}
    engine.dispose()


async def test_relay_that_never_answers_times_out_and_pauses(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """A relay that accepts the TCP connection but never greets: after [smtp] timeout the
    connection counts as failed and the run pauses itself, nobody failed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept_and_hold() -> None:
        listener.settimeout(0.05)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept_and_hold, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        config, engine = prepared(make_config, sqlite_url, port, smtp__timeout=0.2)
        options = SenderOptions(batch_size=3, workers=3, poll_interval=0.01, breaker_window=6)
        stats = await run_sender(config, engine, options=options, message_factory=simple_factory)
        status, reason, attempts = run_state(engine)
        assert stats.sent == 0 and status == RunStatus.PAUSED
        assert "paused automatically" in reason and attempts == {0}
        engine.dispose()
    finally:
        done.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


def test_retry_policy_backoff_doubles_and_is_capped() -> None:
    """Backoff is base × 2^(attempt-1), never more than an hour."""
    from newsletter.sending.outcomes import RetryPolicy

    policy = RetryPolicy(base_delay=timedelta(minutes=1))
    assert [policy.delay(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert policy.delay(20) == timedelta(hours=1)
