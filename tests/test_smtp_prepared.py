"""The pool's fast mail transaction (``send_prepared``): bytes arrive exactly as built, dot
lines included, and refusals keep their SMTP classes."""

from __future__ import annotations

import asyncio

from aiosmtpd.controller import Controller

from newsletter.sending.smtp import PermanentFailure, RelaySettings, SMTPPool, TemporaryFailure
from tests.harness import RecordingHandler, SMTPServer, free_port

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: dots\r\n\r\n"
    b".starts with a dot\r\n..two dots\r\n.\r\nmiddle . line\r\n.\r\n"
)


def relay(port: int) -> RelaySettings:
    return RelaySettings("127.0.0.1", port, "none", "", "", 5.0)


async def send_all(port: int, recipients: list[str]) -> list[Exception | None]:
    pool = SMTPPool(relay(port), 2)
    results: list[Exception | None] = []
    try:
        for rcpt in recipients:
            try:
                await pool.send("liens@example.org", rcpt, MESSAGE)
                results.append(None)
            except (PermanentFailure, TemporaryFailure) as exc:
                results.append(exc)
    finally:
        await pool.close()
    return results


def test_lines_starting_with_a_dot_arrive_unchanged(smtp_server: SMTPServer) -> None:
    """Dot-stuffing on the wire is undone by the server: the stored bytes equal ours."""
    asyncio.run(send_all(smtp_server.port, ["b@example.org", "c@example.org"]))
    received = smtp_server.wait_for(2)
    assert [m.data for m in received] == [MESSAGE, MESSAGE]
    assert [m.rcpt_tos for m in received] == [["b@example.org"], ["c@example.org"]]


class RefusingHandler(RecordingHandler):
    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if address.startswith("gone"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "451 4.3.0 try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def test_refused_recipients_are_permanent_or_temporary_and_the_connection_recovers() -> None:
    """A 550 RCPT is a PermanentFailure, a 451 a TemporaryFailure; later mail still goes."""
    with SMTPServer(RefusingHandler()) as server:
        results = asyncio.run(
            send_all(server.port, ["gone@example.org", "later@example.org", "ok@example.org"])
        )
        received = server.wait_for(1)
    assert isinstance(results[0], PermanentFailure) and "550" in str(results[0])
    assert isinstance(results[1], TemporaryFailure) and "451" in str(results[1])
    assert results[2] is None
    assert [m.rcpt_tos for m in received] == [["ok@example.org"]]


ADDRESS = "évelyne@exämple.org"


def test_addresses_needing_smtputf8_go_out_with_it(smtp_server: SMTPServer) -> None:
    """An internationalised address is sent with SMTPUTF8 when the relay offers it."""
    results = asyncio.run(send_all(smtp_server.port, [ADDRESS]))
    assert results == [None]
    assert smtp_server.wait_for(1)[0].rcpt_tos == [ADDRESS]


def test_addresses_needing_smtputf8_are_refused_by_a_relay_without_it() -> None:
    """Without SMTPUTF8 at the relay, such a recipient is refused for good (a bounce), not a
    crash of the sender; the next recipient still goes."""
    handler = RecordingHandler()
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
