"""The pool's fast mail transactions (``send_prepared``, and ``PipelinedSession`` when the
relay offers PIPELINING): bytes arrive exactly as built, dot lines included, and refusals
keep their SMTP classes. Every test runs against a relay with and without PIPELINING."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as ServerProtocol

from newsletter.sending.smtp import PermanentFailure, RelaySettings, SMTPPool, TemporaryFailure
from newsletter.sending.wire import Payload
from tests.harness import RecordingHandler, SMTPServer, free_port

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
    b".starts with a dot\r\n..two dots\r\n.\r\nmiddle . line\r\n.\r\n"
)


def relay(port: int) -> RelaySettings:
    return RelaySettings("127.0.0.1", port, "none", "", "", 5.0)


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def send_all(
    port: int, recipients: list[str], data: bytes | Payload = MESSAGE
) -> list[Exception | None]:
    pool = SMTPPool(relay(port), 2)
    results: list[Exception | None] = []
    try:
        for rcpt in recipients:
            try:
                await pool.send("liens@example.org", rcpt, data)
                results.append(None)
            except (PermanentFailure, TemporaryFailure) as exc:
                results.append(exc)
    finally:
        await pool.close()
    return results


def test_lines_starting_with_a_dot_arrive_unchanged(pipelining: bool) -> None:
    """Dot-stuffing on the wire is undone by the server: the stored bytes equal ours, whether
    the message or its prepared payload was handed to the pool."""
    handler = RecordingHandler()
    handler.pipelining = pipelining
    with SMTPServer(handler) as server:
        asyncio.run(send_all(server.port, ["b@example.org", "c@example.org"]))
        asyncio.run(send_all(server.port, ["d@example.org"], Payload.of(MESSAGE)))
        received = server.wait_for(3)
    assert [m.data for m in received] == [MESSAGE] * 3
    assert [m.rcpt_tos for m in received] == [
        ["b@example.org"],
        ["c@example.org"],
        ["d@example.org"],
    ]


class BatchCountingServer(ServerProtocol):
    """Notes each segment that brought MAIL, RCPT and DATA together."""

    batched: ClassVar[list[bytes]] = []

    def data_received(self, data: bytes) -> None:
        if b"MAIL FROM:" in data and b"RCPT TO:" in data and b"DATA\r\n" in data:
            self.batched.append(b"MAIL")
        super().data_received(data)


class BatchCountingController(Controller):
    def factory(self) -> ServerProtocol:
        return BatchCountingServer(self.handler, **self.SMTP_kwargs)


def test_with_pipelining_mail_rcpt_and_data_go_in_one_write() -> None:
    """A relay offering PIPELINING receives MAIL, RCPT and DATA together (one round trip
    instead of three); one without it gets them one by one."""
    for offered, expected in ((True, [b"MAIL", b"MAIL"]), (False, [])):
        handler = RecordingHandler()
        handler.pipelining = offered
        BatchCountingServer.batched = []
        port = free_port()
        controller = BatchCountingController(
            handler, hostname="127.0.0.1", port=port, decode_data=False
        )
        controller.start()
        try:
            asyncio.run(send_all(port, ["b@example.org", "c@example.org"]))
        finally:
            controller.stop()
        assert BatchCountingServer.batched == expected
        assert [m.data for m in handler.received()] == [MESSAGE, MESSAGE]


class RefusingHandler(RecordingHandler):
    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if address.startswith("gone"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "451 4.3.0 try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_refused_recipients_are_permanent_or_temporary_and_the_connection_recovers(
    pipelining: bool,
) -> None:
    """A 550 RCPT is a PermanentFailure, a 451 a TemporaryFailure; later mail still goes."""
    handler = RefusingHandler()
    handler.pipelining = pipelining
    with SMTPServer(handler) as server:
        results = asyncio.run(
            send_all(server.port, ["gone@example.org", "later@example.org", "ok@example.org"])
        )
        received = server.wait_for(1)
    assert isinstance(results[0], PermanentFailure) and "550" in str(results[0])
    assert isinstance(results[1], TemporaryFailure) and "451" in str(results[1])
    assert results[2] is None
    assert [m.rcpt_tos for m in received] == [["ok@example.org"]]


ADDRESS = "évelyne@exämple.org"


def test_addresses_needing_smtputf8_go_out_with_it(pipelining: bool) -> None:
    """An internationalised address is sent with SMTPUTF8 when the relay offers it."""
    handler = RecordingHandler()
    handler.pipelining = pipelining
    with SMTPServer(handler) as server:
        results = asyncio.run(send_all(server.port, [ADDRESS]))
        received = server.wait_for(1)
    assert results == [None]
    assert received[0].rcpt_tos == [ADDRESS]
    assert received[0].data == MESSAGE


def test_addresses_needing_smtputf8_are_refused_by_a_relay_without_it(pipelining: bool) -> None:
    """Without SMTPUTF8 at the relay, such a recipient is refused for good (a bounce), not a
    crash of the sender; the next recipient still goes."""
    handler = RecordingHandler()
    handler.pipelining = pipelining
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        results = asyncio.run(send_all(port, [ADDRESS, "ok@example.org"]))
    finally:
        controller.stop()
    assert isinstance(results[0], PermanentFailure) and "SMTPUTF8" in str(results[0])
    assert results[1] is None
    assert handler.recipients() == ["ok@example.org"]


class SlowHandler(RecordingHandler):
    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if any(rcpt.startswith("slow") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(1.0)
        return await super().handle_DATA(server, session, envelope)


def test_a_reply_that_never_comes_is_a_temporary_failure_and_the_next_mail_goes(
    pipelining: bool,
) -> None:
    """A relay that does not answer the payload within [smtp] timeout gives a
    TemporaryFailure; the next message goes out on a fresh connection."""
    handler = SlowHandler()
    handler.pipelining = pipelining

    async def send_two(port: int) -> list[Exception | None]:
        pool = SMTPPool(RelaySettings("127.0.0.1", port, "none", "", "", 0.2), 1)
        results: list[Exception | None] = []
        try:
            for rcpt in ("slow@example.org", "ok@example.org"):
                try:
                    await pool.send("liens@example.org", rcpt, MESSAGE)
                    results.append(None)
                except TemporaryFailure as exc:
                    results.append(exc)
        finally:
            await pool.close()
        return results

    with SMTPServer(handler) as server:
        results = asyncio.run(send_two(server.port))
        received = server.wait_for(1)
    assert isinstance(results[0], TemporaryFailure) and "timed out" in str(results[0]).lower()
    assert results[1] is None
    assert [m.rcpt_tos for m in received] == [["ok@example.org"]]


def test_pipelined_sends_work_on_uvloop(pipelining: bool) -> None:
    """On uvloop (what ``serve`` runs on), whose transports are not asyncio's classes, the
    pool still sends, pipelined or not, and the bytes arrive unchanged."""
    uvloop = pytest.importorskip("uvloop")
    handler = RecordingHandler()
    handler.pipelining = pipelining
    with SMTPServer(handler) as server:
        results = uvloop.run(send_all(server.port, ["b@example.org", "c@example.org"]))
        received = server.wait_for(2)
    assert results == [None, None]
    assert [m.data for m in received] == [MESSAGE, MESSAGE]
