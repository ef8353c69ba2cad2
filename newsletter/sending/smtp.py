"""SMTP: where mail goes (the relay or the embedded catcher), how one message is sent, and
the bulk sender's tools: a pool of persistent connections and a global rate limiter.

Messages are always sent as bytes we built and checked (``SMTP.sendmail``), never through
``send_message``, which re-folds headers such as ``List-Unsubscribe`` (design decision 3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from newsletter.config import Config
from newsletter.errors import DeliveryError
from newsletter.sending.pipelining import PipelinedSession
from newsletter.sending.wire import Payload

MAX_ERROR = 500  # characters of a relay's reply kept in a failure (the stored error's size)


@dataclass(frozen=True)
class RelaySettings:
    host: str
    port: int
    tls: str  # "none" | "starttls" | "tls"
    username: str
    password: str
    timeout: float


def relay_settings(config: Config) -> RelaySettings:
    """The relay from ``[smtp]``, or the embedded catcher on loopback when no host is set."""
    if config.catcher_enabled:
        return RelaySettings(
            host="127.0.0.1",
            port=int(config.get("smtp", "catcher_port")),
            tls="none",
            username="",
            password="",
            timeout=float(config.get("smtp", "timeout")),
        )
    return RelaySettings(
        host=str(config.get("smtp", "host")),
        port=int(config.get("smtp", "port")),
        tls=str(config.get("smtp", "tls")),
        username=str(config.get("smtp", "username")),
        password=str(config.get("smtp", "password")),
        timeout=float(config.get("smtp", "timeout")),
    )


class TemporaryFailure(DeliveryError):
    """A 4xx reply, a timeout or a dropped connection: worth retrying later."""


class PermanentFailure(DeliveryError):
    """A 5xx reply for the recipient: a bounce."""


class ConnectionFailure(TemporaryFailure):
    """No session could be opened with the relay (refused, TLS, AUTH, timeout): nothing was
    attempted for the recipient, so it costs them no attempt."""


class MessageRejected(TemporaryFailure):
    """The relay refused the sender (MAIL) or the message (DATA) with a 5xx. That says
    nothing about the recipient's address, so it is not a bounce: it is retried like a 4xx,
    and when it happens to every message the sender's circuit breaker pauses the run."""


def make_client(relay: RelaySettings) -> aiosmtplib.SMTP:
    """An unconnected client for ``relay`` (TLS mode and credentials applied on connect)."""
    return aiosmtplib.SMTP(
        hostname=relay.host,
        port=relay.port,
        use_tls=relay.tls == "tls",
        start_tls=relay.tls == "starttls",
        username=relay.username or None,
        password=relay.password or None,
        timeout=relay.timeout,
    )


def classify(exc: Exception) -> DeliveryError:
    """Translate an aiosmtplib or network error into ``TemporaryFailure``/``PermanentFailure``."""
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return classify(first)
    failure = PermanentFailure if isinstance(code, int) and 500 <= code < 600 else TemporaryFailure
    if code:
        reply = str(getattr(exc, "message", exc))
        return failure("%(code)s %(reply)s", code=code, reply=_clip(reply, f"{code} "))
    return failure("%(error)s", error=_clip(str(exc) or type(exc).__name__))


def _clip(text: str, before: str = "") -> str:
    """``text`` cut so that ``before + text`` fits ``MAX_ERROR`` characters (the stored
    error's size)."""
    return text[: max(0, MAX_ERROR - len(before))]


async def send_single(
    config: Config, envelope_from: str, recipients: Sequence[str], data: bytes
) -> None:
    """Send one pre-built message on a fresh connection (transactional mail: confirmations,
    tests). Raises ``TemporaryFailure`` or ``PermanentFailure``."""
    client = make_client(relay_settings(config))
    try:
        async with client:
            errors, _ = await client.sendmail(envelope_from, list(recipients), data)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise classify(exc) from None
    if errors:
        address, (code, message) = next(iter(errors.items()))
        failure = PermanentFailure if 500 <= code < 600 else TemporaryFailure
        raise failure("%(address)s: %(code)s %(reply)s", address=address, code=code, reply=message)


def _plain_address(address: str) -> bool:
    return address.isascii() and not any(c in address for c in "<> \t\r\n\0")


async def send_prepared(
    client: aiosmtplib.SMTP, envelope_from: str, recipient: str, payload: Payload
) -> dict[str, aiosmtplib.SMTPResponse]:
    """One mail transaction (MAIL, RCPT, DATA) for one recipient on a connected client
    whose relay does not offer PIPELINING; returns ``sendmail``'s error mapping (empty:
    accepted). Raises aiosmtplib's errors.

    aiosmtplib's ``sendmail`` rewrites line endings and dot-stuffs with regular expressions,
    up to three passes over the message: ~1.7 ms for a 90 KB digest on the benchmark machine,
    half of the sender's CPU time. Our payload is stuffed already. Addresses that need
    SMTPUTF8 or look odd still go through ``sendmail``."""
    protocol = client.protocol
    if protocol is None or not (_plain_address(envelope_from) and _plain_address(recipient)):
        return await _sendmail(client, envelope_from, recipient, payload.message())
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    reply = await client.execute_command(b"MAIL", b"FROM:<" + envelope_from.encode() + b">")
    if reply.code != 250:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, envelope_from)
    reply = await client.execute_command(b"RCPT", b"TO:<" + recipient.encode() + b">")
    if reply.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)
    reply = await client.execute_command(b"DATA")
    if reply.code != 354:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    # The client is this task's alone (the pool hands each connection to one sender at a
    # time), so writing the payload and reading the reply directly cannot interleave.
    protocol.write(payload.wire)
    reply = await protocol.read_response(timeout=client.timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return {}


async def _sendmail(
    client: aiosmtplib.SMTP, envelope_from: str, recipient: str, data: bytes
) -> dict[str, aiosmtplib.SMTPResponse]:
    # An internationalised address needs SMTPUTF8; a relay without it refuses the recipient
    # for good (553), rather than the encoding error crashing the sender.
    utf8 = not (envelope_from.isascii() and recipient.isascii())
    try:
        errors, _ = await client.sendmail(
            envelope_from, [recipient], data, mail_options=["SMTPUTF8"] if utf8 else None
        )
    except (aiosmtplib.SMTPNotSupported, UnicodeEncodeError):
        raise aiosmtplib.SMTPRecipientRefused(
            553, "the address needs SMTPUTF8, which the relay does not offer", recipient
        ) from None
    return errors


SMTPSession = aiosmtplib.SMTP | PipelinedSession


class SMTPPool:
    """Up to ``size`` persistent connections to one relay, shared by the sender's workers.
    With a relay that offers PIPELINING (most do), each connection is a ``PipelinedSession``:
    two round trips per message instead of four.

    A connection that fails in any way is dropped, so the next message gets a fresh one; a
    connection that worked goes back to the pool for the next message.
    """

    def __init__(self, relay: RelaySettings, size: int) -> None:
        self.relay = relay
        self._slots = asyncio.Semaphore(max(size, 1))
        self._idle: list[SMTPSession] = []
        self.connections_opened = 0

    async def send(
        self,
        envelope_from: str,
        recipient: str,
        data: bytes | Payload,
        confirm: Callable[[], Awaitable[bool]] | None = None,
    ) -> bool:
        """Send ``data`` (a message, or its ``Payload``) to one recipient; ``confirm``, when
        given, is asked last, on a ready connection just before the MAIL command, and False
        from it sends nothing (returns False). Raises ``ConnectionFailure`` when no
        connection could be opened, ``TemporaryFailure`` for a 4xx or a dropped connection
        and ``PermanentFailure`` for a 5xx."""
        payload = data if isinstance(data, Payload) else Payload.of(data)
        async with self._slots:
            session = await self._take()
            try:
                go = confirm is None or await confirm()
            except BaseException:
                self._idle.append(session)
                raise
            if not go:
                self._idle.append(session)
                return False
            try:
                errors: dict[str, aiosmtplib.SMTPResponse] = {}
                if isinstance(session, PipelinedSession):
                    await session.send(envelope_from, recipient, payload.wire)
                else:
                    errors = await send_prepared(session, envelope_from, recipient, payload)
            except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError) as exc:
                session.close()
                refused = classify(exc)
                if isinstance(refused, PermanentFailure):
                    raise MessageRejected(
                        "message refused: %(reply)s",
                        reply=_clip(str(refused), "message refused: "),
                    ) from None
                raise refused from None
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                # The connection is in an unknown state: close it without a polite QUIT.
                session.close()
                raise classify(exc) from None
            self._idle.append(session)
        if errors:
            address, (code, message) = next(iter(errors.items()))
            failure = PermanentFailure if 500 <= code < 600 else TemporaryFailure
            raise failure(
                "%(address)s: %(code)s %(reply)s",
                address=address,
                code=code,
                reply=_clip(message, f"{address}: {code} "),
            )
        return True

    async def _take(self) -> SMTPSession:
        while self._idle:
            session = self._idle.pop()
            if session.is_connected:
                return session
        client = make_client(self.relay)
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                await client.ehlo()
            session = (
                PipelinedSession(client) if client.supports_extension("pipelining") else client
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            failure = classify(exc)
            raise ConnectionFailure(failure.key, **failure.values) from None
        self.connections_opened += 1
        return session

    async def close(self) -> None:
        """QUIT every idle connection (errors ignored: we are leaving anyway)."""
        idle, self._idle = self._idle, []
        for session in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await session.quit()
            session.close()


class SendPacer:
    """At most ``rate`` acquisitions per second across every task of one event loop (0: no
    limit). Acquisitions are spaced evenly rather than allowed in bursts, which is what
    relays with a per-second quota expect."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def acquire(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        slot = max(self._next, now)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)
