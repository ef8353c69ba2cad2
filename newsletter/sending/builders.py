"""Each recipient's message bytes: the run's builder (``default_message_factory``: render
once, personalise per recipient) and building off the event loop (``BuildPool``).

Personalising a 90 KB digest costs tens of microseconds, but signing it with DKIM (hashing
the body, an RSA signature) costs about a millisecond of CPU, and on the event loop that
millisecond is stolen from every SMTP connection and, in ``serve``, from every web request.
A ``BuildPool`` runs the builder on worker threads, as many as the machine has CPUs: hashlib
and OpenSSL release the GIL while they work, so the signatures of several messages are
computed in parallel while the loop keeps the connections busy.

The sender asks for a few messages ahead (``ahead``): while one chunk goes out, the next one
is being built.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.returnpath import ReturnPurpose, return_address
from newsletter.sending.ledger import Claim
from newsletter.sending.wire import Payload

C = TypeVar("C")
R = TypeVar("R")

# A recipient's message, or (faster: see ``sending.wire``) its DATA payload.
BuildFn = Callable[[Claim, datetime], bytes | Payload]


@dataclass(frozen=True)
class RunMessage:
    """What a run sends, as stored on the ``send_run`` row."""

    run_id: int
    kind: str
    subject: str
    html: str
    text: str


class MessageFactory(Protocol):
    """Prepares a run's message once and returns the per-recipient wire-bytes builder."""

    def __call__(self, config: Config, message: RunMessage) -> BuildFn: ...


def default_message_factory(config: Config, message: RunMessage) -> BuildFn:
    """Build each recipient's payload with ``sending.message`` (render once, personalise the
    unsubscribe link per recipient)."""
    from newsletter.sending.message import MessageTemplate, Recipient
    from newsletter.sending.render import RenderedEmail
    from subscribers.tokens import make_unsubscribe_token

    rendered = RenderedEmail(subject=message.subject, html=message.html, text=message.text)
    template = MessageTemplate.prepare(config, rendered, list_mail=True)
    secret, base_url = config.secret_key, config.base_url

    def build(claim: Claim, now: datetime) -> Payload:
        token = make_unsubscribe_token(secret, claim.subscriber_id)
        # The mailto: unsubscribe is a signed return address (issue 10: the return path).
        mailto = return_address(
            config, ReturnPurpose.UNSUBSCRIBE, message.run_id, claim.subscriber_id
        )
        recipient = Recipient(claim.email, claim.name, f"{base_url}/u/{token}", mailto)
        return template.payload_for_recipient(recipient, now)

    return build


@dataclass(frozen=True)
class Outgoing:
    """One recipient's message, ready for the SMTP transaction."""

    envelope_from: str  # the signed bounce address (VERP) of this delivery
    payload: Payload


def outgoing_builder(
    config: Config, run_id: int, build: BuildFn
) -> Callable[[Claim, datetime], Outgoing]:
    """``build`` with the rest of the per-recipient work (the bounce address's HMAC, the
    payload of a builder that returns plain bytes) done on the build thread too."""

    def outgoing(claim: Claim, now: datetime) -> Outgoing:
        data = build(claim, now)
        payload = data if isinstance(data, Payload) else Payload.of(data)
        envelope = return_address(config, ReturnPurpose.BOUNCE, run_id, claim.subscriber_id)
        return Outgoing(envelope, payload)

    return outgoing


# A built message, or why this recipient's values could not make one.
Built = Outgoing | NewsletterError


def default_threads() -> int:
    """One build thread per CPU this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return max(os.cpu_count() or 1, 1)


class BuildPool:
    """Runs message builders on ``threads`` worker threads (default: one per CPU)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or default_threads()
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="build")

    async def build(
        self, build: Callable[[C, datetime], R], items: Sequence[C], now: datetime
    ) -> list[R | NewsletterError]:
        """``build(item, now)`` for each item, in order, on a worker thread; an item whose
        build raised ``NewsletterError`` gets that error in its place."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _build_each, build, items, now)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _build_each(
    build: Callable[[C, datetime], R], items: Sequence[C], now: datetime
) -> list[R | NewsletterError]:
    built: list[R | NewsletterError] = []
    for item in items:
        try:
            built.append(build(item, now))
        except NewsletterError as exc:
            built.append(exc)
    return built
