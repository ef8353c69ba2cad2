"""Helpers for the return-path tests: a send whose messages went out, and inbound mail built
to the RFCs (RFC 3464 DSNs in the shapes real MTAs use, RFC 5965 ARF reports, RFC 3834
auto-replies, mailto unsubscribes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, update

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Delivery, DeliveryStatus
from newsletter.returnpath import ReturnPurpose, return_address
from newsletter.sending.runs import start_send_run
from tests.delivery_support import add_subscribers

T0 = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=2)


def sent_run(engine: Engine, count: int, *, key: str = "issue:1", start: int = 0) -> int:
    """A send run to ``count`` new subscribers ``reader{i}@example.net`` whose messages were
    all accepted by the relay at ``T0``; returns the run id."""
    add_subscribers(engine, count, start=start)
    with transaction(engine) as session:
        run = start_send_run(
            session,
            key=key,
            kind="digest",
            subject="Les liens CivicTech #1",
            html="<p>x</p>",
            text="x",
            issue_id=None,
            now=T0,
        )
        session.execute(
            update(Delivery)
            .where(Delivery.run_id == run.id)
            .values(status=DeliveryStatus.SENT, sent_at=T0, attempts=1)
        )
        return run.id


def bounce_address(config: Config, run_id: int, subscriber_id: int) -> str:
    return return_address(config, ReturnPurpose.BOUNCE, run_id, subscriber_id)


def unsubscribe_address(config: Config, run_id: int, subscriber_id: int) -> str:
    return return_address(config, ReturnPurpose.UNSUBSCRIBE, run_id, subscriber_id)


def original_headers(config: Config, run_id: int, subscriber_id: int, rcpt: str) -> str:
    """The headers of the digest as the recipient's server saw it."""
    return (
        f"Return-Path: <{bounce_address(config, run_id, subscriber_id)}>\r\n"
        "From: Les liens CivicTech <liens@example.org>\r\n"
        f"To: {rcpt}\r\n"
        "Subject: Les liens CivicTech #1\r\n"
        "Message-ID: <abc123@liens.example.org>\r\n"
        "List-Id: Les liens CivicTech <les-liens-civictech.liens.example.org>\r\n"
        "List-Unsubscribe: <https://liens.example.org/u/tok>,\r\n"
        f" <mailto:{unsubscribe_address(config, run_id, subscriber_id)}?subject=unsubscribe>\r\n"
    )


SHAPES = ("postfix", "exchange", "gmail", "yahoo-dsn", "exim-dsn")

_SHAPE_HEADERS = {
    "postfix": (
        "MAILER-DAEMON@mx.example.org (Mail Delivery System)",
        "Undelivered Mail Returned to Sender",
        "dns; mx.example.org",
        "This is the mail system at host mx.example.org.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n",
    ),
    "exchange": (
        "postmaster@outlook.com",
        "Undeliverable: Les liens CivicTech #1",
        "dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com",
        "Delivery has failed to these recipients or groups:\r\n",
    ),
    "gmail": (
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "Delivery Status Notification (Failure)",
        "dns; googlemail.com",
        "Address not found\r\n\r\nYour message wasn't delivered.\r\n",
    ),
    "yahoo-dsn": (
        "MAILER-DAEMON@yahoo.com",
        "Failure Notice",
        "dns; mta1.mail.yahoo.com",
        "Sorry, we were unable to deliver your message to the following address.\r\n",
    ),
    "exim-dsn": (
        "Mail Delivery System <Mailer-Daemon@mail.example.net>",
        "Mail delivery failed: returning message to sender",
        "dns; mail.example.net",
        "This message was created automatically by mail delivery software.\r\n",
    ),
}


def dsn(
    config: Config,
    run_id: int,
    subscriber_id: int,
    rcpt: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    shape: str = "postfix",
    to: str | None = None,
    diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
) -> bytes:
    """An RFC 3464 DSN (multipart/report) addressed to the delivery's VERP address (or
    ``to``), in the header shape of ``shape``, returning the original's headers."""
    sender, subject, mta, human = _SHAPE_HEADERS[shape]
    address = to if to is not None else bounce_address(config, run_id, subscriber_id)
    boundary = f"=_dsn_{shape}"
    return (
        f"From: {sender}\r\n"
        f"To: {address}\r\n"
        f"Subject: {subject}\r\n"
        "Date: Sun, 29 Nov 2026 08:00:05 +0100\r\n"
        f"Message-ID: <{shape}.{run_id}.{subscriber_id}.{status}@mx.example.org>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"{human}\r\n<{rcpt}>: {diagnostic.format(rcpt=rcpt)}\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: {mta}\r\n"
        "Arrival-Date: Sun, 29 Nov 2026 08:00:01 +0100\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.example.net\r\n"
        f"Diagnostic-Code: {diagnostic.format(rcpt=rcpt)}\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{original_headers(config, run_id, subscriber_id, rcpt)}\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def exim_plain_bounce(config: Config, run_id: int, subscriber_id: int, rcpt: str) -> bytes:
    """Exim's classic (non-RFC 3464) bounce: plain text with X-Failed-Recipients."""
    return (
        "From: Mail Delivery System <Mailer-Daemon@mail.example.net>\r\n"
        f"To: {bounce_address(config, run_id, subscriber_id)}\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        f"X-Failed-Recipients: {rcpt}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Message-Id: <E1abc-0001@mail.example.net>\r\n"
        "\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        f"  {rcpt}\r\n"
        f"    SMTP error from remote mail server after RCPT TO:<{rcpt}>:\r\n"
        "    550 5.1.1 No such user here\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        f"{original_headers(config, run_id, subscriber_id, rcpt)}\r\nx\r\n"
    ).encode()


def arf(
    config: Config,
    run_id: int,
    subscriber_id: int,
    rcpt: str,
    *,
    original: str | None = None,
    to: str = "fbl@example.org",
) -> bytes:
    """An RFC 5965 abuse report (as Yahoo's or Microsoft's feedback loops send) returning the
    original message, whose Return-Path and List-Unsubscribe carry our tokens."""
    headers = (
        original if original is not None else original_headers(config, run_id, subscriber_id, rcpt)
    )
    return (
        "From: feedbackloop@comcast.net\r\n"
        f"To: {to}\r\n"
        "Subject: FW: Les liens CivicTech #1\r\n"
        "Message-ID: <arf.1@fbl.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n'
        "\r\n"
        "--arf\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is an email abuse report for an email message received.\r\n\r\n"
        "--arf\r\n"
        "Content-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\n"
        "User-Agent: SomeGenerator/1.0\r\n"
        "Version: 1\r\n"
        "Original-Mail-From: <bounces@example.org>\r\n"
        f"Original-Rcpt-To: <{rcpt}>\r\n"
        "Arrival-Date: Sun, 29 Nov 2026 08:00:01 +0100\r\n\r\n"
        "--arf\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        f"{headers}\r\nLe contenu de la lettre.\r\n\r\n"
        "--arf--\r\n"
    ).encode()


def mailto_unsubscribe(to: str, sender: str = "reader0@example.net") -> bytes:
    """What a mail client sends when the reader presses its unsubscribe button (mailto:)."""
    return (
        f"From: <{sender}>\r\nTo: {to}\r\nSubject: unsubscribe\r\n"
        "Message-ID: <unsub.1@example.net>\r\n\r\n"
        "This message was automatically generated by Gmail.\r\n"
    ).encode()


def auto_reply(to: str) -> bytes:
    """An RFC 3834 out-of-office reply."""
    return (
        f"From: <reader0@example.net>\r\nTo: {to}\r\n"
        "Subject: Réponse automatique : Les liens CivicTech #1\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Message-ID: <ooo.1@example.net>\r\n\r\n"
        "Je suis absente jusqu'au 6 septembre.\r\n"
    ).encode()


def soft_dsn(
    config: Config, run_id: int, subscriber_id: int, rcpt: str, shape: str = "postfix"
) -> bytes:
    """A DSN saying the delivery is delayed by a full mailbox (4.2.2): a soft bounce."""
    return dsn(config, run_id, subscriber_id, rcpt, status="4.2.2", action="delayed", shape=shape)
