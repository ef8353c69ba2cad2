"""The LMTP intake: the operator's MTA (Postfix, Exim) hands it the bounce domain's mail.

It answers 250 for a message only after the message is recorded; if recording fails it answers
451, so the MTA keeps the message and tries again later: nothing is lost on our side. One
status line per recipient, as LMTP requires (RFC 2033).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from newsletter.errors import NotYetError
from newsletter.mailserver import LoopServer

log = logging.getLogger(__name__)

# Records one message: (raw bytes, envelope sender, envelope recipients). Synchronous: it is
# run in a thread. Raises when the message could not be recorded.
Recorder = Callable[[bytes, str, Sequence[str]], object]


class IntakeHandler:
    """aiosmtpd handler: record each message, then answer for each recipient."""

    def __init__(self, record: Recorder) -> None:
        self.record = record

    async def handle_DATA(self, server: LMTP, session: Session, envelope: Envelope) -> str:
        data = bytes(envelope.original_content or b"")
        recipients = [str(r) for r in envelope.rcpt_tos]
        try:
            await asyncio.to_thread(self.record, data, str(envelope.mail_from or ""), recipients)
        except NotYetError as exc:
            log.info("inbound message deferred: %s", exc)
            status = "451 4.3.0 Not yet, try again later"
        except Exception:  # any failure to record means "try again later"
            log.exception("inbound message not recorded; answering 451 so the MTA retries")
            status = "451 4.3.0 Not recorded, try again later"
        else:
            status = "250 2.0.0 Recorded"
        return "\r\n".join(status for _ in recipients)


class LMTPIntake(LoopServer):
    """An LMTP server (aiosmtpd) on ``host``:``port`` in the running asyncio loop."""

    def __init__(self, record: Recorder, host: str, port: int, max_bytes: int) -> None:
        super().__init__(host, port)
        self.handler, self.max_bytes = IntakeHandler(record), max_bytes

    def make_protocol(self, loop: asyncio.AbstractEventLoop) -> LMTP:
        return LMTP(
            self.handler,
            hostname="newsletter-inbound",
            data_size_limit=self.max_bytes,
            decode_data=False,
            loop=loop,
        )
