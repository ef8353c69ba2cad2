"""End to end through a real MTA: the sender hands a digest to a throwaway Postfix, which
relays it to an SMTP sink that rejects some recipients; Postfix's own ``bounce`` service writes
the DSNs to the signed envelope senders, and delivers them over LMTP to the intake, which
records them and acts on the exact deliveries they answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.inbound.models import InboundMessage
from newsletter.models import Delivery
from newsletter.sending.runs import start_send_run
from newsletter.sending.sender import SenderOptions, run_sender
from newsletter.services.inbound import deliverability
from newsletter.services.inbound_intake import lmtp_intake
from subscribers.models import Subscriber
from tests.admin_support import add_readers
from tests.conftest import ConfigFactory
from tests.delivery_support import FaultHandler
from tests.harness import IN_CI, SMTPServer, free_port
from tests.postfix_support import Postfix, PostfixUnavailable

FAST = SenderOptions(batch_size=10, workers=2, poll_interval=0.01)
READERS = ["ana@example.net", "dead1@dead.example", "bea@example.net", "dead2@dead.example"]
FULL = "full@full.example"


def _rcpt_reply(address: str, tries: int) -> str | None:
    if address.endswith("@dead.example"):
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
    if address.endswith("@full.example"):
        return "452 4.2.2 Mailbox full"
    return None


@pytest.fixture
def sink() -> Iterator[SMTPServer]:
    with SMTPServer(FaultHandler(rcpt_reply=_rcpt_reply)) as server:
        yield server


@pytest.fixture
def postfix(sink: SMTPServer) -> Iterator[tuple[Postfix, int]]:
    lmtp_port = free_port()
    server: Postfix | None = None
    try:
        server = Postfix(relay_port=sink.port, lmtp_port=lmtp_port, bounce_domain="example.org")
        server.start()
    except (PostfixUnavailable, OSError) as exc:
        if server is not None:
            server.stop()  # its temp folder goes too
        if IN_CI:
            pytest.fail(f"a throwaway Postfix is required in CI but could not start: {exc}")
        pytest.skip(f"Postfix tests skipped: {exc}")
    yield server, lmtp_port
    server.stop()


async def _wait_for_inbound(engine: Engine, count: int, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        with transaction(engine) as session:
            if len(list(session.scalars(select(InboundMessage.id)))) >= count:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} inbound messages")


async def _wait_for_recipients(sink: SMTPServer, count: int, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if sum(len(m.rcpt_tos) for m in sink.received()) >= count:
            return
        await asyncio.sleep(0.1)


async def test_postfix_dsns_reach_the_lmtp_intake_and_act(
    make_config: ConfigFactory, sqlite_url: str, sink: SMTPServer, postfix: tuple[Postfix, int]
) -> None:
    """Postfix's real DSNs for two unknown users and one full mailbox come back over LMTP: the
    two deliveries become bounced (and their subscribers), the full mailbox counts as a soft
    bounce, and everyone else got the digest."""
    server, lmtp_port = postfix
    config = make_config(sqlite_url, smtp_port=server.port)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    add_readers(engine, [*READERS, FULL])
    from tests.inbound_support import T0

    with transaction(engine) as session:
        run_id = start_send_run(
            session,
            key="issue:1",
            kind="digest",
            subject="Les liens CivicTech #1",
            html="<p>Bonjour</p><a href='@@UNSUBSCRIBE_URL@@'>x</a>",
            text="Bonjour\n@@UNSUBSCRIBE_URL@@",
            issue_id=None,
            now=T0,
        ).id
    intake = lmtp_intake(config, engine, host="127.0.0.1", port=lmtp_port)
    await intake.start()
    try:
        stats = await run_sender(config, engine, options=FAST)
        assert stats.sent == 5  # Postfix accepted everything; the refusals come later
        await _wait_for_inbound(engine, 3)
    finally:
        await intake.stop()
    # Postfix may still be relaying the good ones when the DSNs for the others are in.
    await _wait_for_recipients(sink, 2)
    assert sorted(r for m in sink.received() for r in m.rcpt_tos) == [
        "ana@example.net",
        "bea@example.net",
    ]
    with transaction(engine) as session:
        rows = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        by_kind = sorted((r.kind, r.action, r.status_code, r.source) for r in rows)
        assert by_kind == [
            ("hard_bounce", "bounced", "5.1.1", "lmtp"),
            ("hard_bounce", "bounced", "5.1.1", "lmtp"),
            ("soft_bounce", "soft_counted", "4.2.2", "lmtp"),
        ]
        assert all("Mail Delivery System" in r.header_from for r in rows)
        people = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
        assert people == {
            "ana@example.net": "active",
            "bea@example.net": "active",
            "dead1@dead.example": "bounced",
            "dead2@dead.example": "bounced",
            FULL: "active",
        }
        deliveries = dict(session.execute(select(Delivery.email, Delivery.status)).all())
        assert deliveries["dead1@dead.example"] == "bounced"
        assert deliveries["ana@example.net"] == "sent"
        figures = deliverability(session, run_id)
        assert (figures.delivered, figures.hard_bounced, figures.soft_bounced) == (3, 2, 1)
    assert "status=bounced" in server.maillog and "relay=127.0.0.1" in server.maillog
