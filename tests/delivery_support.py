"""Helpers for the delivery tests: subscribers in bulk, a simple message builder, and SMTP
handlers that inject faults into the real aiosmtpd server."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import Engine, insert, select

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Delivery
from newsletter.sending.builders import BuildFn, RunMessage
from newsletter.sending.ledger import Claim
from subscribers.models import Subscriber, SubscriberStatus
from tests.harness import RecordingHandler

T0 = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)


def add_subscribers(
    engine: Engine, count: int, *, status: str = SubscriberStatus.ACTIVE, start: int = 0
) -> list[int]:
    """Insert ``count`` subscribers ``reader{i}@example.net``; returns their ids in order."""
    rows = [
        {
            "email": f"reader{i}@example.net",
            "email_key": f"reader{i}@example.net",
            "name": f"Reader {i}",
            "status": status,
            "source": "test",
            "language": "fr",
            "created_at": T0,
            "soft_bounces": 0,
        }
        for i in range(start, start + count)
    ]
    with transaction(engine) as session:
        if rows:
            session.execute(insert(Subscriber), rows)
        query = select(Subscriber.id).where(Subscriber.source == "test").order_by(Subscriber.id)
        ids = list(session.scalars(query))
    return ids[start : start + count] if start else ids[:count]


def simple_factory(config: Config, message: RunMessage) -> BuildFn:
    """Plain wire bytes naming the recipient, so the server's copy can be traced."""

    def build(claim: Claim, now: datetime) -> bytes:
        return (
            f"From: {config.get('list', 'from_address')}\r\n"
            f"To: {claim.email}\r\n"
            f"Subject: {message.subject}\r\n"
            f"Message-ID: <d{claim.delivery_id}.a{claim.attempts}@test>\r\n"
            f"\r\n{message.text}\r\n"
        ).encode()

    return build


def delivery_counts(engine: Engine, run_id: int) -> Counter[str]:
    with transaction(engine) as session:
        rows = session.scalars(select(Delivery.status).where(Delivery.run_id == run_id))
        return Counter(rows)


@dataclass
class FaultHandler(RecordingHandler):
    """Records accepted messages like ``RecordingHandler``; ``rcpt_reply`` and
    ``data_reply`` may answer an error instead, per recipient and per try."""

    rcpt_reply: Callable[[str, int], str | None] = lambda address, tries: None
    data_reply: Callable[[str, int], str | None] = lambda address, tries: None
    tries: Counter[str] = field(default_factory=Counter)
    tries_lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self.tries_lock:
            self.tries[address] += 1
            tries = self.tries[address]
        reply = self.rcpt_reply(address, tries)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        address = envelope.rcpt_tos[0]
        with self.tries_lock:
            tries = self.tries[address]
        reply = self.data_reply(address, tries)
        if reply == "DROP":
            # The connection dies before the server accepts the message: nothing recorded.
            assert server.transport is not None
            server.transport.close()
            return "421 dropped"
        if reply:
            return reply
        return await super().handle_DATA(server, session, envelope)
