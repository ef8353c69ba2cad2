"""Unsubscribing is final, even mid-send: once the one-click POST has been answered, the
sender hands that person nothing more (real app over HTTP, real SMTP server, real database)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session
from sqlalchemy import select

from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.models import Delivery
from newsletter.sending.sender import SenderOptions, run_sender
from newsletter.web.app import create_app
from subscribers.tokens import make_unsubscribe_token
from tests.conftest import ConfigFactory
from tests.delivery_support import add_subscribers, delivery_counts
from tests.harness import RecordingHandler, SMTPServer, free_port
from tests.test_faults import start
from tests.web_support import ServerThread

WORKERS = 4


@dataclass
class HoldingHandler(RecordingHandler):
    """Records messages; while ``hold`` is set, every RCPT waits (the message stays in
    flight) and its address is listed in ``held``."""

    hold: threading.Event = field(default_factory=threading.Event)
    held: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTPProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.hold.is_set():
            with self.lock:
                self.held.append(address)
            while self.hold.is_set():
                await asyncio.sleep(0.002)
        envelope.rcpt_tos.append(address)
        return "250 OK"


def wait(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_people_who_unsubscribe_mid_send_get_nothing_after_their_200(
    make_config: ConfigFactory, db_url: str
) -> None:
    """Mid-send, with every connection holding a message in flight, 40 people who have not
    had the issue yet unsubscribe with the one-click POST (200): when the send goes on, none
    of them gets it, whether their row was already claimed by a worker or still pending;
    everyone else gets it once."""
    handler = HoldingHandler()
    with SMTPServer(handler) as smtp:
        config = make_config(db_url, smtp_port=smtp.port)
        engine = make_engine(db_url)
        upgrade_database(engine)
        ids = add_subscribers(engine, 400)
        run_id = start(engine)
        options = SenderOptions(batch_size=50, workers=WORKERS, poll_interval=0.01)
        sender = threading.Thread(
            target=lambda: asyncio.run(run_sender(config, engine, options=options))
        )
        port = free_port()
        with ServerThread(create_app(config, engine), port):
            sender.start()
            wait(lambda: len(smtp.received()) >= 60, "the send to start")
            handler.hold.set()
            wait(lambda: len(handler.held) == WORKERS, "every connection to hold a message")
            done = set(smtp.handler.recipients()) | set(handler.held)
            # The next recipients (claimed by the workers already) and some further on.
            waiting = [i for i in range(400) if f"reader{i}@example.net" not in done]
            leavers = waiting[:20] + waiting[40::10][:20]
            assert len(leavers) == 40  # however many went out before the hold
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for i in leavers:
                    token = make_unsubscribe_token(config.secret_key, ids[i])
                    response = client.post(
                        f"/u/{token}",
                        content=b"List-Unsubscribe=One-Click",
                        headers={"content-type": "application/x-www-form-urlencoded"},
                    )
                    assert response.status_code == 200
            handler.hold.clear()
            sender.join(timeout=120)
        received = Counter(smtp.handler.recipients())
        gone = {f"reader{i}@example.net" for i in leavers}
        assert not gone & set(received), sorted(gone & set(received))
        assert received == {f"reader{i}@example.net": 1 for i in range(400) if i not in leavers}
        assert delivery_counts(engine, run_id) == {"sent": 360, "skipped": 40}
        with transaction(engine) as session:
            skipped = set(
                session.scalars(select(Delivery.email).where(Delivery.status == "skipped"))
            )
        assert skipped == gone
        engine.dispose()
