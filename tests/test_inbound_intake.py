"""The LMTP intake and ``newsletter inbound deliver``: a message is answered 250 / exit 0 only
once it is recorded, and 451 / exit 75 (the MTA keeps it) when it could not be."""

from __future__ import annotations

import asyncio
import smtplib
import socket
from collections.abc import AsyncIterator

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, text

from newsletter.cli import main
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.inbound.lmtp import LMTPIntake
from newsletter.inbound.models import InboundMessage
from newsletter.services.inbound_intake import lmtp_intake
from subscribers.models import Subscriber
from tests.conftest import ConfigFactory
from tests.inbound_support import T1, bounce_address, dsn, sent_run, unsubscribe_address


@pytest.fixture
async def intake(config: Config, engine: Engine) -> AsyncIterator[LMTPIntake]:
    server = lmtp_intake(config, engine, host="127.0.0.1", port=0, now_fn=lambda: T1)
    await server.start()
    yield server
    await server.stop()


def _lmtp_send(
    port: int, sender: str, rcpts: list[str], data: bytes
) -> dict[str, tuple[int, bytes]]:
    """Deliver over LMTP with the standard library's client; the per-recipient refusals."""
    with smtplib.LMTP("127.0.0.1", port) as client:
        try:
            return client.sendmail(sender, rcpts, data)
        except smtplib.SMTPDataError as exc:
            return {rcpt: (exc.smtp_code, exc.smtp_error) for rcpt in rcpts}


def _lmtp_replies(port: int, rcpts: list[str], data: bytes) -> list[bytes]:
    """Speak LMTP on a plain socket; the reply lines after the final dot (one per
    recipient, RFC 2033)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rwb")

        def reply() -> bytes:
            line = stream.readline()
            while line[3:4] == b"-":
                line = stream.readline()
            return line

        def say(command: bytes) -> bytes:
            stream.write(command + b"\r\n")
            stream.flush()
            return reply()

        reply()  # greeting
        say(b"LHLO test")
        say(b"MAIL FROM:<>")
        for rcpt in rcpts:
            say(b"RCPT TO:<" + rcpt.encode() + b">")
        say(b"DATA")
        stream.write(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        stream.flush()
        answers = [reply() for _ in rcpts]
        say(b"QUIT")
        return answers


def _rows(engine: Engine) -> list[tuple[str, str, str]]:
    with transaction(engine) as session:
        rows = session.execute(
            select(InboundMessage.source, InboundMessage.kind, InboundMessage.action).order_by(
                InboundMessage.id
            )
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _status(engine: Engine, subscriber_id: int) -> str:
    with transaction(engine) as session:
        person = session.get(Subscriber, subscriber_id)
        assert person is not None
        return person.status


async def test_lmtp_records_then_answers_250_per_recipient(
    config: Config, engine: Engine, intake: LMTPIntake
) -> None:
    """A DSN and a mailto unsubscribe delivered over LMTP are answered 250 for every recipient,
    recorded and acted on."""
    run_id = sent_run(engine, 2)
    first, second = _ids(engine)
    verp = bounce_address(config, run_id, first)
    raw = dsn(config, run_id, first, "reader0@example.net")
    replies = await asyncio.to_thread(_lmtp_replies, intake.port, [verp, verp.upper()], raw)
    assert [line[:3] for line in replies] == [b"250", b"250"]
    mailto = unsubscribe_address(config, run_id, second)
    note = f"From: reader1@example.net\r\nTo: {mailto}\r\nSubject: unsubscribe\r\n\r\nx\r\n"
    refused = await asyncio.to_thread(
        _lmtp_send, intake.port, "reader1@example.net", [mailto], note.encode()
    )
    assert refused == {}
    assert _rows(engine) == [
        ("lmtp", "hard_bounce", "bounced"),
        ("lmtp", "unsubscribe", "unsubscribed"),
    ]
    assert (_status(engine, first), _status(engine, second)) == ("bounced", "unsubscribed")


def _ids(engine: Engine) -> list[int]:
    with transaction(engine) as session:
        return list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))


def _break_store(engine: Engine) -> None:
    """A real fault: the inbound table is gone (e.g. a failed migration)."""
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE inbound_message"))


async def test_lmtp_answers_451_when_it_cannot_record(
    config: Config, engine: Engine, intake: LMTPIntake
) -> None:
    """When the store fails, every recipient gets 451 so the MTA keeps the message."""
    run_id = sent_run(engine, 1)
    person = _ids(engine)[0]
    _break_store(engine)
    verp = bounce_address(config, run_id, person)
    raw = dsn(config, run_id, person, "reader0@example.net")
    replies = await asyncio.to_thread(_lmtp_replies, intake.port, [verp, verp.upper()], raw)
    assert [line[:3] for line in replies] == [b"451", b"451"]
    refused = await asyncio.to_thread(_lmtp_send, intake.port, "", [verp], raw)
    assert refused[verp][0] == 451
    assert _status(engine, person) == "active"


def _deliver(config: Config, raw: bytes, *args: str):
    return CliRunner().invoke(
        main, ["--config", str(config.path), "inbound", "deliver", *args], input=raw
    )


def test_stdin_deliver_exit_0_once_recorded(config: Config, engine: Engine) -> None:
    """``inbound deliver`` records a DSN from standard input and exits 0; the envelope
    recipient comes from --recipient (Postfix pipe's ${recipient})."""
    run_id = sent_run(engine, 1)
    person = _ids(engine)[0]
    raw = dsn(config, run_id, person, "reader0@example.net", to="someone@example.org")
    result = _deliver(config, raw, "--recipient", bounce_address(config, run_id, person))
    assert result.exit_code == 0, result.output
    assert _rows(engine) == [("stdin", "hard_bounce", "bounced")]
    assert _status(engine, person) == "bounced"


def test_stdin_deliver_exit_75_when_it_cannot_record(config: Config, engine: Engine) -> None:
    """``inbound deliver`` exits 75 (EX_TEMPFAIL) when the store fails: try again later."""
    run_id = sent_run(engine, 1)
    person = _ids(engine)[0]
    _break_store(engine)
    result = _deliver(config, dsn(config, run_id, person, "reader0@example.net"))
    assert result.exit_code == 75
    assert "try again later" in result.output
    assert _status(engine, person) == "active"


def test_inbound_list_shows_classification_and_action(config: Config, engine: Engine) -> None:
    """``inbound list`` shows each message's classification and action, and --kind filters."""
    run_id = sent_run(engine, 1)
    person = _ids(engine)[0]
    _deliver(config, dsn(config, run_id, person, "reader0@example.net"))
    _deliver(config, b"Subject: hello\r\n\r\nA human wrote this.\r\n")
    result = CliRunner().invoke(main, ["--config", str(config.path), "inbound", "list"])
    assert result.exit_code == 0
    assert "hard_bounce" in result.output and "unclassified" in result.output
    result = CliRunner().invoke(
        main, ["--config", str(config.path), "inbound", "list", "--kind", "unclassified"]
    )
    assert "hello" in result.output and "hard_bounce" not in result.output
    with transaction(engine) as session:
        count = session.scalar(select(func.count()).select_from(InboundMessage))
    assert count == 2


def test_readme_sample_bounce_lands_in_the_inbound_view(config: Config, engine: Engine) -> None:
    """The README's try-it line: tools/sample_bounce.py piped into ``inbound deliver`` bounces
    the first delivered subscriber of the latest send."""
    import subprocess
    import sys
    from pathlib import Path

    sent_run(engine, 2)
    first = _ids(engine)[0]
    tool = Path(__file__).resolve().parent.parent / "tools" / "sample_bounce.py"
    env = {"NEWSLETTER_CONFIG": str(config.path), "PATH": "/usr/bin:/bin"}
    made = subprocess.run(
        [sys.executable, str(tool)], env=env, capture_output=True, check=True, timeout=60
    )
    result = _deliver(config, made.stdout)
    assert result.exit_code == 0, result.output
    assert _rows(engine) == [("stdin", "hard_bounce", "bounced")]
    assert _status(engine, first) == "bounced"


async def test_serve_runs_the_lmtp_intake_when_enabled(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """With ``[bounces] lmtp_in_serve`` on, the service ``serve`` starts listens on the
    configured port and records what it is handed; off, it starts nothing."""
    from newsletter.db import make_engine, upgrade_database
    from newsletter.services.inbound_intake import inbound_service
    from tests.harness import free_port

    port = free_port()
    config = make_config(sqlite_url, bounces__lmtp_in_serve=True, bounces__lmtp_port=port)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    async with inbound_service(config, engine) as intake:
        assert intake is not None and intake.port == port
        replies = await asyncio.to_thread(
            _lmtp_replies, port, ["bounces@example.org"], b"Subject: hi\r\n\r\nx\r\n"
        )
    assert [line[:3] for line in replies] == [b"250"]
    assert _rows(engine) == [("lmtp", "unclassified", "none")]
    async with inbound_service(make_config(sqlite_url), engine) as nothing:
        assert nothing is None
