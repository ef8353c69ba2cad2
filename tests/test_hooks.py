"""Provider webhooks: payloads shaped as Amazon SES (through SNS), Postmark and Mailgun
document them, with valid, invalid and missing signatures. Only verified events act; anything
else is refused with 401 and changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.inbound.models import InboundMessage
from newsletter.inbound.sns import SNSVerifier, string_to_sign
from newsletter.web.app import create_app
from subscribers.models import Subscriber
from tests.conftest import ConfigFactory
from tests.inbound_support import bounce_address, sent_run

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
MAILGUN_KEY = "key-mailgun-signing-0123456789"


class LocalCertificates:
    """An injectable fetcher serving a certificate made here; it records every URL asked."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        self.asked: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        return self.pem if url.endswith(".pem") else b"confirmed"

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signed = dict(message, SignatureVersion=version, SigningCertURL=CERT_URL)
        signature = self.key.sign(string_to_sign(signed), padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed


@pytest.fixture
def certificates() -> LocalCertificates:
    return LocalCertificates()


@pytest.fixture
def hooks_config(make_config: ConfigFactory, sqlite_url: str) -> Config:
    return make_config(
        sqlite_url,
        bounces__ses_topic_arn=TOPIC,
        bounces__postmark_username="postmark",
        bounces__postmark_password="pm-secret-password",
        bounces__mailgun_signing_key=MAILGUN_KEY,
    )


@pytest.fixture
def site(
    hooks_config: Config, certificates: LocalCertificates
) -> Iterator[tuple[TestClient, Engine]]:
    from newsletter.db import make_engine, upgrade_database

    engine = make_engine(hooks_config.database_url)
    upgrade_database(engine)
    app = create_app(hooks_config, engine, sns_verifier=SNSVerifier(certificates))
    with TestClient(app) as client:
        yield client, engine
    engine.dispose()


def _people(engine: Engine) -> list[tuple[int, str]]:
    with transaction(engine) as session:
        return [
            (p.id, p.status) for p in session.scalars(select(Subscriber).order_by(Subscriber.id))
        ]


def _recorded(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


# --- Amazon SES through SNS ----------------------------------------------------------------


def ses_bounce(source: str, recipient: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    """An SES bounce notification, as documented (notification contents, Bounce type)."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-11-29T07:00:05.000Z",
            "feedbackId": "0100017fabcdef-1234-feedback",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": {
            "timestamp": "2026-11-29T07:00:00.000Z",
            "source": source,
            "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/example.org",
            "sendingAccountId": "123456789012",
            "messageId": "0100017f-ses-message-id",
            "destination": [recipient],
            "commonHeaders": {"subject": "Les liens CivicTech #1"},
        },
    }


def ses_complaint(source: str, recipient: str) -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": "2026-11-29T09:00:00.000Z",
            "feedbackId": "0100017f-complaint",
            "complaintFeedbackType": "abuse",
        },
        "mail": {"source": source, "messageId": "0100017f-ses-2", "destination": [recipient]},
    }


def sns_envelope(notification: dict[str, Any], message_id: str = "sns-1") -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": json.dumps(notification),
        "Timestamp": "2026-11-29T07:00:06.000Z",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_with_a_valid_signature_acts(
    site: tuple[TestClient, Engine],
    hooks_config: Config,
    certificates: LocalCertificates,
    version: str,
) -> None:
    """A signed SES permanent bounce (SNS signature versions 1 and 2) marks the delivery its
    VERP source names bounced; a second notification uses the cached certificate."""
    client, engine = site
    run_id = sent_run(engine, 2)
    (first, _), (second, _) = _people(engine)
    verp = bounce_address(hooks_config, run_id, first)
    body = certificates.sign(sns_envelope(ses_bounce(verp, "reader0@example.net")), version)
    response = client.post("/hooks/ses", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["recorded"][0]["action"] == "bounced"
    complaint = ses_complaint(bounce_address(hooks_config, run_id, second), "reader1@example.net")
    response = client.post("/hooks/ses", json=certificates.sign(sns_envelope(complaint, "sns-2")))
    assert response.json()["recorded"][0]["action"] == "complained"
    assert _people(engine) == [(first, "bounced"), (second, "unsubscribed")]
    assert certificates.asked == [CERT_URL]


def _tampered(certificates: LocalCertificates, body: dict[str, Any]) -> dict[str, Any]:
    signed = certificates.sign(body)
    return dict(signed, Message=signed["Message"].replace("Permanent", "Transient"))


@pytest.mark.parametrize(
    "case", ["tampered", "unsigned", "garbage signature", "http cert", "foreign cert", "topic"]
)
def test_ses_refuses_what_sns_did_not_sign(
    site: tuple[TestClient, Engine],
    hooks_config: Config,
    certificates: LocalCertificates,
    case: str,
) -> None:
    """A tampered, unsigned or garbage-signed message, a certificate from anywhere but an
    https SNS host, or another topic is refused with 401 and changes nothing."""
    client, engine = site
    run_id = sent_run(engine, 1)
    ((person, _),) = _people(engine)
    body = sns_envelope(ses_bounce(bounce_address(hooks_config, run_id, person), "r@x.net"))
    signed = certificates.sign(body)
    forged = {
        "tampered": _tampered(certificates, body),
        "unsigned": {k: v for k, v in signed.items() if k != "Signature"},
        "garbage signature": dict(signed, Signature="bm90IGEgc2lnbmF0dXJl"),
        "http cert": dict(signed, SigningCertURL=CERT_URL.replace("https", "http")),
        "foreign cert": dict(
            signed, SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.test/c.pem"
        ),
        "topic": certificates.sign(dict(body, TopicArn=TOPIC + "-other")),
    }[case]
    response = client.post("/hooks/ses", json=forged)
    assert response.status_code == 401
    assert _people(engine) == [(person, "active")] and _recorded(engine) == 0
    assert all(url == CERT_URL for url in certificates.asked)


def test_ses_subscription_is_confirmed_through_the_checked_url(
    site: tuple[TestClient, Engine], certificates: LocalCertificates
) -> None:
    """A signed SubscriptionConfirmation is confirmed by fetching its SubscribeURL (an SNS
    host); one pointing elsewhere is refused."""
    client, _ = site
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    body = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "sns-sub-1",
        "Token": "abc",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": subscribe,
        "Timestamp": "2026-11-29T07:00:00.000Z",
    }
    assert client.post("/hooks/ses", json=certificates.sign(body)).json() == {"confirmed": True}
    assert certificates.asked[-1] == subscribe
    evil = certificates.sign(dict(body, SubscribeURL="https://evil.test/confirm"))
    assert client.post("/hooks/ses", json=evil).status_code == 401


# --- Postmark ------------------------------------------------------------------------------


def postmark_bounce(email: str, kind: str = "HardBounce") -> dict[str, Any]:
    """Postmark's bounce webhook body, as documented."""
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "digest",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "liens@example.org",
        "BouncedAt": "2026-11-29T07:00:05.9070259Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Les liens CivicTech #1",
    }


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_postmark_hard_bounce_and_complaint_with_credentials(
    site: tuple[TestClient, Engine],
) -> None:
    """With the configured Basic credentials, a Postmark hard bounce bounces the latest
    delivery to that address and a spam complaint unsubscribes."""
    client, engine = site
    sent_run(engine, 2)
    (first, _), (second, _) = _people(engine)
    auth = _basic("postmark", "pm-secret-password")
    response = client.post(
        "/hooks/postmark", json=postmark_bounce("reader0@example.net"), headers=auth
    )
    assert response.status_code == 200 and response.json()["recorded"][0]["action"] == "bounced"
    complaint = dict(
        postmark_bounce("reader1@example.net", "SpamComplaint"), RecordType="SpamComplaint", ID=9
    )
    response = client.post("/hooks/postmark", json=complaint, headers=auth)
    assert response.json()["recorded"][0]["action"] == "complained"
    assert _people(engine) == [(first, "bounced"), (second, "unsubscribed")]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _basic("postmark", "wrong"),
        _basic("other", "pm-secret-password"),
        {"Authorization": "Basic !!"},
    ],
    ids=["missing", "wrong password", "wrong user", "malformed"],
)
def test_postmark_refuses_without_the_credentials(
    site: tuple[TestClient, Engine], headers: dict[str, str]
) -> None:
    """Missing, wrong or malformed credentials: 401 with a Basic challenge, nothing done."""
    client, engine = site
    sent_run(engine, 1)
    response = client.post(
        "/hooks/postmark", json=postmark_bounce("reader0@example.net"), headers=headers
    )
    assert response.status_code == 401 and "Basic" in response.headers["www-authenticate"]
    assert _people(engine)[0][1] == "active" and _recorded(engine) == 0


# --- Mailgun -------------------------------------------------------------------------------


def mailgun_failed(
    sender: str,
    recipient: str,
    *,
    stamp: int | None = None,
    key: str = MAILGUN_KEY,
    severity: str = "permanent",
) -> dict[str, Any]:
    """Mailgun's ``failed`` webhook body, as documented, signed with ``key``."""
    timestamp = str(stamp if stamp is not None else int(time.time()))
    token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": 1521233195.375624,
            "event": "failed",
            "severity": severity,
            "reason": "bounce",
            "recipient": recipient,
            "envelope": {"sender": sender, "transport": "smtp", "targets": recipient},
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "",
                "attempt-no": 1,
            },
            "message": {
                "headers": {
                    "to": recipient,
                    "message-id": "20130503192659.13651.20287@example.org",
                    "from": "liens@example.org",
                    "subject": "Les liens CivicTech #1",
                }
            },
        },
    }


def test_mailgun_signed_failure_bounces_the_verp_delivery(
    site: tuple[TestClient, Engine], hooks_config: Config
) -> None:
    """A Mailgun permanent failure signed with the key bounces the delivery its envelope
    sender (our VERP address) names; the same event again changes nothing."""
    client, engine = site
    run_id = sent_run(engine, 2)
    (first, _), (second, _) = _people(engine)
    body = mailgun_failed(bounce_address(hooks_config, run_id, second), "elsewhere@example.net")
    response = client.post("/hooks/mailgun", json=body)
    assert response.status_code == 200 and response.json()["recorded"][0]["action"] == "bounced"
    assert client.post("/hooks/mailgun", json=body).json()["recorded"][0]["action"] == "duplicate"
    assert _people(engine) == [(first, "active"), (second, "bounced")]


@pytest.mark.parametrize("case", ["wrong key", "unsigned", "stale", "tampered"])
def test_mailgun_refuses_bad_signatures(
    site: tuple[TestClient, Engine], hooks_config: Config, case: str
) -> None:
    """A wrong key, no signature, a signature older than 15 minutes or a tampered token is
    refused with 401 and changes nothing."""
    client, engine = site
    run_id = sent_run(engine, 1)
    ((person, _),) = _people(engine)
    verp = bounce_address(hooks_config, run_id, person)
    body = {
        "wrong key": mailgun_failed(verp, "r@x.net", key="key-other"),
        "unsigned": {"event-data": mailgun_failed(verp, "r@x.net")["event-data"]},
        "stale": mailgun_failed(verp, "r@x.net", stamp=int(time.time()) - 3600),
        "tampered": mailgun_failed(verp, "r@x.net"),
    }[case]
    if case == "tampered":
        body["signature"]["token"] = "b" + body["signature"]["token"][1:]
    assert client.post("/hooks/mailgun", json=body).status_code == 401
    assert _people(engine) == [(person, "active")] and _recorded(engine) == 0


def test_hook_bodies_are_size_limited(site: tuple[TestClient, Engine]) -> None:
    """A body over the webhook limit is refused with 413 before any parsing."""
    client, engine = site
    response = client.post(
        "/hooks/mailgun",
        content=b"{" + b" " * (300 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413 and _recorded(engine) == 0


def test_not_json_is_400(site: tuple[TestClient, Engine]) -> None:
    """A body that is not JSON is a 400, not a crash."""
    client, _ = site
    response = client.post("/hooks/ses", content=b"\xff\xfe not json")
    assert response.status_code == 400
