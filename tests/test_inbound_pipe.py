"""``newsletter inbound deliver`` as an MTA runs it: a separate process fed one message on
standard input (Postfix ``pipe``, a ``.forward`` line), answering with a sysexits code: 0
recorded, 65 refused for good, 75 try again later."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.inbound.models import InboundMessage
from subscribers.models import Subscriber
from tests.conftest import ConfigFactory
from tests.inbound_support import bounce_address, dsn, sent_run

NEWSLETTER = str(Path(sys.executable).parent / "newsletter")


def _pipe(
    config: Config, raw: bytes, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``newsletter inbound deliver ARGS`` in its own process with ``raw`` on stdin."""
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANGUAGE": "en", **(env or {})}
    command = [NEWSLETTER, "--config", str(config.path), "inbound", "deliver", *args]
    return subprocess.run(command, input=raw, env=environ, capture_output=True, timeout=120)


def _rows(engine: Engine) -> list[tuple[str, str, str, str, str, int, bytes]]:
    """(source, kind, action, envelope from, envelope to, size, raw) of each row, in order."""
    with transaction(engine) as session:
        return [
            tuple(r)  # type: ignore[misc]
            for r in session.execute(
                select(
                    InboundMessage.source,
                    InboundMessage.kind,
                    InboundMessage.action,
                    InboundMessage.envelope_from,
                    InboundMessage.envelope_to,
                    InboundMessage.size,
                    InboundMessage.raw,
                ).order_by(InboundMessage.id)
            )
        ]


def _person(engine: Engine) -> tuple[int, str]:
    with transaction(engine) as session:
        person = session.scalars(select(Subscriber).order_by(Subscriber.id)).first()
        assert person is not None
        return person.id, person.status


def test_a_piped_dsn_is_recorded_and_acted_on_once(config: Config, engine: Engine) -> None:
    """A Postfix DSN piped with ``--recipient``/``--sender`` exits 0 once recorded, bounces
    the subscriber, and the same bytes piped again exit 0 as a duplicate with no new row."""
    run_id = sent_run(engine, 1)
    person, _ = _person(engine)
    verp = bounce_address(config, run_id, person)
    raw = dsn(config, run_id, person, "reader0@example.net", to="liens@example.org")
    first = _pipe(config, raw, "--recipient", verp, "--sender", "")
    assert first.returncode == 0, first.stderr
    assert first.stdout.decode().startswith("recorded #1: hard_bounce, bounced")
    assert _rows(engine) == [("stdin", "hard_bounce", "bounced", "", verp, len(raw), raw)]
    assert _person(engine) == (person, "bounced")
    again = _pipe(config, raw, "--recipient", verp)
    assert again.returncode == 0 and b"duplicate" in again.stdout
    assert len(_rows(engine)) == 1


def test_a_forward_line_reads_the_envelope_from_the_environment(
    config: Config, engine: Engine
) -> None:
    """Run from ``.forward`` (no arguments), the envelope comes from ``ORIGINAL_RECIPIENT``
    and ``SENDER``, as Postfix's local delivery sets them."""
    run_id = sent_run(engine, 1)
    person, _ = _person(engine)
    verp = bounce_address(config, run_id, person)
    raw = dsn(config, run_id, person, "reader0@example.net", to="liens@example.org")
    env = {"ORIGINAL_RECIPIENT": verp, "SENDER": "MAILER-DAEMON@mx.example.org"}
    result = _pipe(config, raw, env=env)
    assert result.returncode == 0, result.stderr
    (row,) = _rows(engine)
    assert row[:5] == ("stdin", "hard_bounce", "bounced", "MAILER-DAEMON@mx.example.org", verp)


MALFORMED = {
    "binary": b"\x00\xff\xfe not mail at all \x80\x81\r\n\x00\r\n",
    "no-body": b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail",
    "bad-headers": b"::::\r\nFrom\r\n: \r\n\tfolded nothing\r\n\r\nbody\r\n",
    "broken-report": (
        b"From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0"
        b'\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="x"\r\n\r\n'
        b"--x\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n"
        b"Final-Recipient: rfc822;\r\n"
    ),
}


@pytest.fixture
def on_sqlite(make_config: ConfigFactory, sqlite_url: str) -> Iterator[tuple[Config, Engine]]:
    """A config and its migrated SQLite file (parsing does not depend on the backend)."""
    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    yield config, engine
    engine.dispose()


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_malformed_mail_is_kept_unclassified_and_acts_on_nobody(
    on_sqlite: tuple[Config, Engine], shape: str
) -> None:
    """A message that is not valid mail (binary, no body, broken headers, a report without
    its boundary's end) is recorded byte for byte as unclassified, exit 0, and acts on nobody."""
    config, engine = on_sqlite
    sent_run(engine, 1)
    raw = MALFORMED[shape]
    result = _pipe(config, raw, "--recipient", "bounces@example.org")
    assert result.returncode == 0, result.stderr
    assert _rows(engine) == [
        ("stdin", "unclassified", "none", "", "bounces@example.org", len(raw), raw)
    ]
    assert _person(engine)[1] == "active"


def test_an_empty_message_is_refused_with_65(config: Config, engine: Engine) -> None:
    """Nothing on standard input exits 65 (EX_DATAERR) and records nothing."""
    result = _pipe(config, b"")
    assert result.returncode == 65 and b"empty" in result.stderr
    assert _rows(engine) == []


def test_an_oversized_message_is_refused_with_65(
    make_config: ConfigFactory, db_url: str, engine: Engine
) -> None:
    """A message over ``[bounces] max_message_bytes`` exits 65 and records nothing; one of
    exactly that size is recorded."""
    config = make_config(db_url, bounces__max_message_bytes=4096)
    header = b"From: a@example.net\r\nSubject: big\r\n\r\n"
    exact = header + b"x" * (4096 - len(header))
    over = _pipe(config, exact + b"y" * 10_000_000)
    assert over.returncode == 65, over.stderr
    assert b"larger than 4096 bytes" in over.stderr
    assert _rows(engine) == []
    fits = _pipe(config, exact)
    assert fits.returncode == 0, fits.stderr
    assert [row[5] for row in _rows(engine)] == [4096]


def test_a_store_that_fails_answers_75(config: Config, engine: Engine) -> None:
    """When the store refuses the write the process exits 75 (EX_TEMPFAIL), so the MTA keeps
    the message; once the store works again the same message is recorded."""
    run_id = sent_run(engine, 1)
    person, _ = _person(engine)
    raw = dsn(config, run_id, person, "reader0@example.net")
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inbound_message RENAME TO inbound_message_away"))
    failed = _pipe(config, raw)
    assert failed.returncode == 75 and b"try again later" in failed.stderr
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inbound_message_away RENAME TO inbound_message"))
    assert _person(engine)[1] == "active"
    retried = _pipe(config, raw)
    assert retried.returncode == 0, retried.stderr
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert _person(engine)[1] == "bounced"
