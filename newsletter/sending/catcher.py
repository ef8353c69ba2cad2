"""The embedded mail catcher (design decision 9): with no SMTP relay configured, ``serve`` runs
an SMTP server on loopback, in its own asyncio loop, that keeps every message it accepts as a
``.eml`` file in ``[smtp] catcher_dir``. ``/outbox`` shows them, so a newcomer sees the real
pipeline work end to end without sending anything anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine

from newsletter.config import Config
from newsletter.errors import NotFoundError
from newsletter.mailserver import LoopServer

CATCHER_HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
# aiosmtpd logs about a dozen DEBUG/INFO lines per connection under this name; the catcher
# says one line per caught message instead.
AIOSMTPD_LOGGER = "mail.log"
logger = logging.getLogger(__name__)
# Names the catcher writes: UTC time, then random hex. Anything else is never served.
EML_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}\.eml$")


class CatcherHandler:
    """aiosmtpd handler: write each accepted message's bytes to a new ``.eml`` file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = bytes(envelope.original_content or b"")
        path = await asyncio.to_thread(store_message, self.folder, data, datetime.now(UTC))
        logger.info(
            "caught a message for %s (%d bytes): /outbox/%s",
            ", ".join(envelope.rcpt_tos),
            len(data),
            path.name,
        )
        return "250 Message accepted for delivery (caught, not delivered)"


def store_message(folder: Path, data: bytes, now: datetime) -> Path:
    """Write ``data`` to a new file in ``folder`` (atomically: readers never see half)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.urandom(4).hex()}.eml"
    temporary = folder / f".{name}.tmp"
    temporary.write_bytes(data)
    temporary.replace(folder / name)
    return folder / name


def catcher_dir(config: Config) -> Path:
    return config.resolve_path(str(config.get("smtp", "catcher_dir")))


@dataclass(frozen=True)
class CaughtMessage:
    """A caught message as the outbox lists it."""

    name: str
    received: datetime
    sender: str
    to: str
    subject: str
    size: int


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, ""))
    except (ValueError, IndexError):  # a malformed header is shown empty, not fatal
        return ""


def read_caught(folder: Path, name: str) -> tuple[EmailMessage, bytes]:
    """Parse one caught message; ``NotFoundError`` for a name the catcher did not write."""
    path = folder / name
    if not EML_NAME.fullmatch(name) or not path.is_file():
        raise NotFoundError("no caught message named %(name)r", name=name)
    data = path.read_bytes()
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message, data


def list_caught(folder: Path, limit: int = 200) -> list[CaughtMessage]:
    """The newest ``limit`` caught messages, newest first."""
    if not folder.is_dir():
        return []
    names = sorted((p.name for p in folder.iterdir() if EML_NAME.fullmatch(p.name)), reverse=True)
    listed = []
    parser = BytesHeaderParser(policy=policy.default)
    for name in names[:limit]:
        data = (folder / name).read_bytes()
        message = parser.parsebytes(data)  # headers only: the list never needs bodies
        assert isinstance(message, EmailMessage)
        stamp = datetime.strptime(name.split("-")[0], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
        listed.append(
            CaughtMessage(
                name=name,
                received=stamp,
                sender=_header(message, "From"),
                to=_header(message, "To"),
                subject=_header(message, "Subject"),
                size=len(data),
            )
        )
    return listed


class MailCatcher(LoopServer):
    """An aiosmtpd server on loopback in the running asyncio loop."""

    def __init__(self, folder: Path, port: int, host: str = CATCHER_HOST) -> None:
        super().__init__(host, port)
        self.folder, self.handler = folder, CatcherHandler(folder)

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        await super().start()

    def make_protocol(self, loop: asyncio.AbstractEventLoop) -> SMTP:
        return SMTP(
            self.handler,
            hostname="newsletter-catcher",
            data_size_limit=MAX_MESSAGE_BYTES,
            decode_data=False,
            loop=loop,
        )


@asynccontextmanager
async def catcher_service(config: Config, engine: Engine) -> AsyncIterator[MailCatcher | None]:
    """The catcher as a ``serve`` service: runs only when ``[smtp] host`` is empty."""
    if not config.catcher_enabled:
        yield None
        return
    logging.getLogger(AIOSMTPD_LOGGER).setLevel(logging.WARNING)
    catcher = MailCatcher(catcher_dir(config), int(config.get("smtp", "catcher_port")))
    await catcher.start()
    try:
        yield catcher
    finally:
        await catcher.stop()
