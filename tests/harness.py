"""Real services for the tests: a throwaway PostgreSQL cluster and a recording SMTP server.

Nothing here is a mock. PostgreSQL runs from the installed server binaries (as the
``postgres`` user when the tests run as root); the SMTP server is aiosmtpd on loopback and
keeps every message it accepts as the exact bytes that arrived.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # exactly what arrived after DATA

    def parsed(self) -> EmailMessage:
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class RecordingHandler:
    """Accepts every message and records it; subclasses inject faults."""

    messages: list[ReceivedMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Offer PIPELINING (RFC 2920) in the EHLO reply, as real relays do; aiosmtpd reads
    # pipelined commands in order but does not advertise the extension itself.
    pipelining = True

    async def handle_EHLO(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself without this hook
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.lock:
            self.messages.append(
                ReceivedMessage(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=bytes(content),
                )
            )
        return "250 OK"

    def received(self) -> list[ReceivedMessage]:
        with self.lock:
            return list(self.messages)

    def recipients(self) -> list[str]:
        return [rcpt for message in self.received() for rcpt in message.rcpt_tos]


class SMTPServer:
    """An aiosmtpd server on 127.0.0.1 in a background thread."""

    def __init__(self, handler: Any | None = None) -> None:
        self.handler = handler or RecordingHandler()
        self.port = free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            decode_data=False,
            data_size_limit=None,
        )

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def received(self) -> list[ReceivedMessage]:
        return list(self.handler.received())

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages arrived (the server runs in another thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.received()
            if len(messages) >= count:
                return messages
            time.sleep(0.02)
        raise AssertionError(f"expected {count} messages, got {len(self.received())}")


# --- PostgreSQL ------------------------------------------------------------------------------


class PostgresUnavailable(RuntimeError):
    pass


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise PostgresUnavailable(f"PostgreSQL server binary {name!r} not found")
    return candidates[0]


class PostgresCluster:
    """A throwaway PostgreSQL cluster on a free loopback port, trust auth, removed on stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
        self.data = self.dir / "data"
        self.as_root = os.geteuid() == 0
        self._db_counter = 0
        self._lock = threading.Lock()

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(argv)} failed: {result.stderr.strip()}")

    def start(self) -> PostgresCluster:
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(PostgresUnavailable):
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """Create a fresh, empty database and return its URL."""
        import psycopg

        with self._lock:
            self._db_counter += 1
            name = f"test_{os.getpid()}_{self._db_counter}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class ExternalPostgres:
    """A server named by ``NEWSLETTER_TEST_PG_URL`` (a ``postgresql+psycopg://`` URL)."""

    def __init__(self, url: str) -> None:
        self.base = url
        self._counter = 0

    def create_database(self) -> str:
        import psycopg
        from sqlalchemy.engine import make_url

        parsed = make_url(self.base)
        self._counter += 1
        name = f"test_{os.getpid()}_{self._counter}"
        conninfo = parsed.set(drivername="postgresql", database="postgres").render_as_string(
            hide_password=False
        )
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return parsed.set(database=name).render_as_string(hide_password=False)

    def stop(self) -> None:
        pass
