"""Print an RFC 3464 hard-bounce DSN for the first delivered message of the latest send, as a
relay would return it to the signed envelope sender. For trying the return path by hand:

    .venv/bin/python tools/sample_bounce.py | .venv/bin/newsletter inbound deliver

Reads ``newsletter.toml`` (or ``$NEWSLETTER_CONFIG``); writes nothing.
"""

from __future__ import annotations

import sys

from sqlalchemy import select

from newsletter.config import load_config
from newsletter.db import make_engine, transaction
from newsletter.models import Delivery, SendRun
from newsletter.returnpath import ReturnPurpose, return_address


def main() -> int:
    config = load_config()
    with transaction(make_engine(config.database_url)) as session:
        run_id = session.scalar(select(SendRun.id).order_by(SendRun.id.desc()).limit(1))
        delivery = session.scalars(
            select(Delivery)
            .where(Delivery.run_id == run_id, Delivery.sent_at.is_not(None))
            .order_by(Delivery.id)
            .limit(1)
        ).first()
    if delivery is None or delivery.subscriber_id is None:
        print(
            "No delivered message yet: send an issue first (newsletter send now).", file=sys.stderr
        )
        return 1
    verp = return_address(config, ReturnPurpose.BOUNCE, delivery.run_id, delivery.subscriber_id)
    rcpt = delivery.email
    sys.stdout.write(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: {verp}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\n"
        f"<{rcpt}>: host mx.example.net said: 550 5.1.1 User unknown\r\n\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: User unknown\r\n\r\n"
        "--b--\r\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
