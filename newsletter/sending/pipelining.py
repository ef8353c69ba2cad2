"""SMTP command pipelining (RFC 2920) on a connection aiosmtplib has set up.

aiosmtplib waits for each reply before the next command: MAIL, RCPT, DATA and the payload
are four round trips per message, and on a bulk send those round trips, not the CPU, set the
pace of each connection. When the relay offers PIPELINING, ``PipelinedSession`` writes MAIL,
RCPT and DATA at once and reads their three replies, then writes the payload: two round
trips. aiosmtplib's protocol keeps one reply at a time and drops data that arrives while a
reply waits to be read, so once aiosmtplib has done the greeting, EHLO, STARTTLS and AUTH,
the connection's transport is handed to ``ReplyReader``, which queues every reply in order.
"""

from __future__ import annotations

import asyncio
import collections
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse

MAX_REPLY = 64 * 1024  # bytes of one reply (with continuation lines) before giving up


class ReplyReader(asyncio.Protocol):
    """Splits what the server sends into replies (continuation lines joined) and queues
    them in order, however the bytes were cut into segments."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._replies: collections.deque[SMTPResponse] = collections.deque()
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def is_connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def take_over(self, transport: asyncio.Transport) -> None:
        transport.set_protocol(self)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            self._lines.append(line)
            if line[3:4] != b"-":
                self._reply_complete()
        if len(self._buffer) + sum(map(len, self._lines)) > MAX_REPLY:
            self._fail(aiosmtplib.SMTPResponseException(-1, "reply too long"))
        if self._replies or self._error is not None:
            self._wake()

    def _reply_complete(self) -> None:
        lines, self._lines = self._lines, []
        try:
            code = int(lines[-1][:3])
        except ValueError:
            self._fail(aiosmtplib.SMTPResponseException(-1, "malformed reply"))
            return
        text = b"\n".join(line[4:].strip(b" \t\r\n") for line in lines)
        self._replies.append(SMTPResponse(code, text.decode("utf-8", "surrogateescape")))

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("unexpected EOF"))
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._error is None:
            error = aiosmtplib.SMTPServerDisconnected("connection lost")
            error.__cause__ = exc
            self._error = error
        self.transport = None
        self._wake()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("connection lost")
        self.transport.write(data)

    async def read(self, timeout: float | None) -> SMTPResponse:
        """The next reply; raises ``SMTPServerDisconnected`` or ``SMTPReadTimeoutError``."""
        if not self._replies and self._error is None:
            # Usually the replies to MAIL, RCPT and DATA come in one segment: one wait for
            # three replies, with a plain timer rather than ``wait_for`` and its task.
            loop = asyncio.get_running_loop()
            timer = None if timeout is None else loop.call_later(timeout, self._expire)
            try:
                while not self._replies and self._error is None:
                    self._waiter = loop.create_future()
                    await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        if self._replies:
            return self._replies.popleft()
        assert self._error is not None
        raise self._error

    def _expire(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            error = aiosmtplib.SMTPReadTimeoutError("timed out waiting for a reply")
            self._waiter.set_exception(error)


class PipelinedSession:
    """A set-up SMTP session whose relay offers PIPELINING, taken over from aiosmtplib."""

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its methods.
        transport = cast(asyncio.Transport | None, client.transport)
        if transport is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("not connected")
        self.client = client
        self.timeout = client.timeout
        self.reader = ReplyReader()
        self.reader.take_over(transport)

    @property
    def is_connected(self) -> bool:
        return self.reader.is_connected

    async def send(self, envelope_from: str, recipient: str, payload: bytes) -> None:
        """One mail transaction: MAIL, RCPT and DATA in one write, then the (dot-stuffed,
        terminated) payload. Raises aiosmtplib's errors, as its ``sendmail`` would."""
        self.reader.write(self._envelope(envelope_from, recipient))
        replies: list[SMTPResponse] = []
        try:
            while len(replies) < 3:
                replies.append(await self.reader.read(self.timeout))
        except aiosmtplib.SMTPException:
            _check_envelope(replies, envelope_from, recipient)  # the refusal, if one came
            raise
        _check_envelope(replies, envelope_from, recipient)
        self.reader.write(payload)
        reply = await self.reader.read(self.timeout)
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)

    def _envelope(self, envelope_from: str, recipient: str) -> bytes:
        for address in (envelope_from, recipient):
            if any(c in address for c in "<> \t\r\n\0"):
                raise aiosmtplib.SMTPRecipientRefused(553, "not a usable address", recipient)
        option = b""
        if not (envelope_from.isascii() and recipient.isascii()):
            # An internationalised address needs SMTPUTF8; without it the relay would refuse
            # the recipient for good anyway.
            if not self.client.supports_extension("smtputf8"):
                raise aiosmtplib.SMTPRecipientRefused(
                    553, "the address needs SMTPUTF8, which the relay does not offer", recipient
                )
            option = b" SMTPUTF8"
        return b"".join(
            [
                b"MAIL FROM:<" + envelope_from.encode() + b">" + option + b"\r\n",
                b"RCPT TO:<" + recipient.encode() + b">\r\n",
                b"DATA\r\n",
            ]
        )

    async def quit(self) -> None:
        self.reader.write(b"QUIT\r\n")
        await self.reader.read(self.timeout)

    def close(self) -> None:
        self.client.close()  # closes the transport it opened


def _check_envelope(replies: list[SMTPResponse], envelope_from: str, recipient: str) -> None:
    """Raise for the first of the MAIL, RCPT and DATA replies that refused."""
    if replies and replies[0].code != 250:
        raise aiosmtplib.SMTPSenderRefused(replies[0].code, replies[0].message, envelope_from)
    if len(replies) > 1 and replies[1].code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(replies[1].code, replies[1].message, recipient)
    if len(replies) > 2 and replies[2].code != 354:
        raise aiosmtplib.SMTPDataError(replies[2].code, replies[2].message)
