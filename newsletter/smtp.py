"""SMTP: where mail goes (the relay or the embedded catcher) and how one message is sent.

The bulk sender's connection pool builds on the same ``RelaySettings`` and error classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from newsletter.config import Config
from newsletter.errors import DeliveryError


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
    text = f"{code} {getattr(exc, 'message', exc)}" if code else str(exc) or type(exc).__name__
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]
        return classify(first)
    if isinstance(code, int) and 500 <= code < 600:
        return PermanentFailure(text[:500])
    return TemporaryFailure(text[:500])


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
        raise failure(f"{address}: {code} {message}")
