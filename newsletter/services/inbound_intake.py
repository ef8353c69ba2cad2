"""The long-running ways in: the LMTP intake and the IMAP poll, wired to ``receive_message``.

``inbound_service`` is what ``newsletter serve`` runs when ``[bounces] lmtp_in_serve`` is on or
an IMAP host is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import NewsletterError, NotYetError
from newsletter.inbound.imap import ImapSettings, Mailbox, imap_settings
from newsletter.inbound.lmtp import LMTPIntake
from newsletter.inbound.models import ImapCursor
from newsletter.services.inbound import Received, receive_message

log = logging.getLogger(__name__)

NowFn = Callable[[], datetime]


def lmtp_intake(
    config: Config,
    engine: Engine,
    *,
    host: str | None = None,
    port: int | None = None,
    now_fn: NowFn = utc_now,
) -> LMTPIntake:
    """An LMTP intake (not started) that records every message through ``receive_message``."""

    def record(raw: bytes, envelope_from: str, envelope_to: Sequence[str]) -> Received:
        return receive_message(
            engine,
            config,
            raw,
            source="lmtp",
            envelope_from=envelope_from,
            envelope_to=envelope_to,
            now=now_fn(),
        )

    return LMTPIntake(
        record,
        host or str(config.get("bounces", "lmtp_host")),
        int(config.get("bounces", "lmtp_port")) if port is None else port,
        int(config.get("bounces", "max_message_bytes")),
    )


@dataclass(frozen=True)
class PollReport:
    fetched: int
    moved: int
    kept: int
    processed_folder: str


MailboxFactory = Callable[[ImapSettings], Mailbox]


def poll_imap(
    engine: Engine,
    config: Config,
    *,
    now_fn: NowFn,
    mailbox_factory: MailboxFactory = Mailbox,
) -> PollReport:
    """Read the new messages of the IMAP folder once. Each is recorded, then moved to
    ``[bounces] imap_processed_folder`` when it was classified; unclassified ones stay where
    they are, for a person to read. Idempotent: a cursor (UIDVALIDITY, last UID) remembers
    what was read, and a message recorded twice is recorded once. Raises ``MailboxError``;
    a failure to record stops the poll before the cursor passes that message."""
    settings = imap_settings(config)
    if settings is None:
        raise NewsletterError("no IMAP mailbox configured ([bounces] imap_host)")
    fetched = moved = 0
    with mailbox_factory(settings) as mailbox:
        last_uid = _cursor(engine, settings, mailbox.uidvalidity)
        for uid in mailbox.uids_after(last_uid):
            raw = mailbox.fetch(uid)
            if raw is not None:
                try:
                    received = receive_message(engine, config, raw, source="imap", now=now_fn())
                except NotYetError:
                    break  # this one and the rest are read again at the next poll
                fetched += 1
                if received.classified:
                    mailbox.move(uid, settings.processed_folder)
                    moved += 1
            _advance(engine, settings, mailbox.uidvalidity, uid)
    return PollReport(fetched, moved, fetched - moved, settings.processed_folder)


def _cursor(engine: Engine, settings: ImapSettings, uidvalidity: int) -> int:
    with transaction(engine) as session:
        cursor = session.get(ImapCursor, settings.name)
        if cursor is None or cursor.uidvalidity != uidvalidity:
            return 0  # a new folder, or one whose UIDs were renumbered: read it all again
        return cursor.last_uid


def _advance(engine: Engine, settings: ImapSettings, uidvalidity: int, uid: int) -> None:
    with transaction(engine) as session:
        cursor = session.get(ImapCursor, settings.name)
        if cursor is None:
            session.add(ImapCursor(mailbox=settings.name, uidvalidity=uidvalidity, last_uid=uid))
        else:
            cursor.uidvalidity, cursor.last_uid = uidvalidity, uid


@contextlib.asynccontextmanager
async def inbound_service(config: Config, engine: Engine) -> AsyncIterator[LMTPIntake | None]:
    """For ``serve``: the LMTP intake when ``[bounces] lmtp_in_serve`` is on, and the IMAP
    poll every ``[bounces] imap_interval_seconds`` when an IMAP host is set."""
    intake: LMTPIntake | None = None
    if config.get("bounces", "lmtp_in_serve"):
        intake = lmtp_intake(config, engine)
        await intake.start()
    poller: asyncio.Task[None] | None = None
    interval = int(config.get("bounces", "imap_interval_seconds"))
    if imap_settings(config) is not None and interval > 0:
        poller = asyncio.create_task(_poll_forever(config, engine, interval))
    try:
        yield intake
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if intake is not None:
            await intake.stop()


async def _poll_forever(config: Config, engine: Engine, interval: int) -> None:
    while True:
        try:
            report = await asyncio.to_thread(poll_imap, engine, config, now_fn=utc_now)
            if report.fetched:
                log.info("IMAP poll: %s fetched, %s moved", report.fetched, report.moved)
        except NewsletterError as exc:
            log.warning("IMAP poll failed: %s", exc)
        await asyncio.sleep(interval)
