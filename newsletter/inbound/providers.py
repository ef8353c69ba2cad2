"""Provider webhooks: each provider's own proof that a request is theirs, and its JSON turned
into ``ProviderEvent``s. Pure: the clock and the secrets are parameters.

- Amazon SES, through SNS: the SNS signature (``newsletter.inbound.sns``), then the topic
  must be the configured one; the SES notification is the SNS ``Message``.
- Postmark: HTTP Basic credentials set on the webhook URL (Postmark signs nothing else).
- Mailgun: HMAC-SHA256 of ``timestamp + token`` with the webhook signing key, and a timestamp
  no further than ``MAILGUN_MAX_AGE`` from now (a replayed request is also recognised by its
  event id, recorded once).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from newsletter.errors import InvalidInputError
from newsletter.inbound.models import InboundKind
from newsletter.inbound.sns import SignatureError
from newsletter.inputs import load_json

MAILGUN_MAX_AGE = timedelta(minutes=15)


@dataclass(frozen=True)
class ProviderEvent:
    """A bounce or complaint a provider reported by webhook (already verified)."""

    source: str  # ses, postmark, mailgun
    event_id: str  # the provider's id of the event, for idempotency
    kind: InboundKind  # HARD_BOUNCE, SOFT_BOUNCE, COMPLAINT or UNCLASSIFIED
    recipient: str
    return_path: str = ""  # the envelope sender the provider saw (our VERP address), if any
    status_code: str = ""
    reason: str = ""
    subject: str = ""


def parse_json(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; ``InvalidInputError`` when it is not one."""
    try:
        data = load_json(body)  # bounded depth and size, no lone surrogates
    except InvalidInputError:
        raise InvalidInputError("the body is not JSON", "body") from None
    if not isinstance(data, dict):
        raise InvalidInputError("the body is not a JSON object", "body")
    return data


def _text(value: object, limit: int = 500) -> str:
    return str(value)[:limit] if value is not None else ""


# --- Amazon SES (through SNS) --------------------------------------------------------------


def ses_events(notification: Mapping[str, Any], message_id: str) -> list[ProviderEvent]:
    """The events of an SES notification (``notificationType``, or ``eventType`` for event
    publishing): one per bounced or complaining recipient."""
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    mail = notification.get("mail") or {}
    source = _text(mail.get("source"), 320)
    subject = _text((mail.get("commonHeaders") or {}).get("subject"))
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        bounce_type = str(bounce.get("bounceType", ""))
        verdict = {"Permanent": InboundKind.HARD_BOUNCE, "Transient": InboundKind.SOFT_BOUNCE}
        event_kind = verdict.get(bounce_type, InboundKind.UNCLASSIFIED)
        return [
            ProviderEvent(
                source="ses",
                event_id=f"{message_id}:{_text(r.get('emailAddress'), 320)}",
                kind=event_kind,
                recipient=_text(r.get("emailAddress"), 320),
                return_path=source,
                status_code=_text(r.get("status"), 20),
                reason=_text(r.get("diagnosticCode")) or f"{bounce_type} bounce",
                subject=subject,
            )
            for r in bounce.get("bouncedRecipients") or []
            if isinstance(r, dict)
        ]
    if kind == "Complaint":
        complaint = notification.get("complaint") or {}
        feedback = _text(complaint.get("complaintFeedbackType"), 100)
        return [
            ProviderEvent(
                source="ses",
                event_id=f"{message_id}:{_text(r.get('emailAddress'), 320)}",
                kind=InboundKind.COMPLAINT,
                recipient=_text(r.get("emailAddress"), 320),
                return_path=source,
                reason=f"Feedback-Type: {feedback}" if feedback else "complaint",
                subject=subject,
            )
            for r in complaint.get("complainedRecipients") or []
            if isinstance(r, dict)
        ]
    return []


# --- Postmark ------------------------------------------------------------------------------

_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unsubscribe"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "MailboxFull"}


def check_basic_auth(header: str, username: str, password: str) -> None:
    """Raise ``SignatureError`` unless ``header`` is ``Basic`` with these credentials (and
    they are configured)."""
    if not username or not password:
        raise SignatureError("this webhook is not configured")
    scheme, _, encoded = header.partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise SignatureError("missing or malformed credentials") from None
    expected = f"{username}:{password}"
    if scheme.lower() != "basic" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureError("wrong credentials")


def postmark_events(payload: Mapping[str, Any]) -> list[ProviderEvent]:
    """The event of a Postmark bounce or spam-complaint webhook."""
    record = str(payload.get("RecordType", ""))
    bounce_type = str(payload.get("Type", ""))
    if record == "SpamComplaint" or bounce_type == "SpamComplaint":
        kind = InboundKind.COMPLAINT
    elif record == "Bounce" and bounce_type in _POSTMARK_HARD:
        kind = InboundKind.HARD_BOUNCE
    elif record == "Bounce" and bounce_type in _POSTMARK_SOFT:
        kind = InboundKind.SOFT_BOUNCE
    elif record == "Bounce":
        kind = InboundKind.UNCLASSIFIED  # e.g. AutoResponder, Blocked, Challenge
    else:
        return []
    return [
        ProviderEvent(
            source="postmark",
            event_id=f"{record}:{_text(payload.get('ID'), 100)}",
            kind=kind,
            recipient=_text(payload.get("Email"), 320),
            reason=" ".join(
                _text(payload.get(k)) for k in ("Type", "Description", "Details") if payload.get(k)
            )[:500],
            subject=_text(payload.get("Subject")),
        )
    ]


# --- Mailgun -------------------------------------------------------------------------------


def check_mailgun_signature(payload: Mapping[str, Any], key: str, now: datetime) -> None:
    """Raise ``SignatureError`` unless the payload's ``signature`` is Mailgun's HMAC of its
    timestamp and token with ``key``, made within ``MAILGUN_MAX_AGE`` of ``now``."""
    if not key:
        raise SignatureError("this webhook is not configured")
    signature = payload.get("signature")
    if not isinstance(signature, dict):
        raise SignatureError("unsigned request")
    timestamp = str(signature.get("timestamp", ""))
    token = str(signature.get("token", ""))
    given = str(signature.get("signature", ""))
    if not timestamp.isdigit() or not token or not given:
        raise SignatureError("unsigned request")
    if abs(now.timestamp() - int(timestamp)) > MAILGUN_MAX_AGE.total_seconds():
        raise SignatureError("stale signature")
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise SignatureError("wrong signature")


def mailgun_events(payload: Mapping[str, Any]) -> list[ProviderEvent]:
    """The event of a Mailgun ``failed`` (permanent or temporary) or ``complained`` webhook."""
    data = payload.get("event-data")
    if not isinstance(data, dict):
        return []
    event = str(data.get("event", ""))
    if event == "failed":
        permanent = data.get("severity") == "permanent"
        kind = InboundKind.HARD_BOUNCE if permanent else InboundKind.SOFT_BOUNCE
    elif event == "complained":
        kind = InboundKind.COMPLAINT
    else:
        return []
    status = data.get("delivery-status") or {}
    headers = (data.get("message") or {}).get("headers") or {}
    code = _text(status.get("enhanced-code") or status.get("code"), 20)
    reason = " ".join(
        _text(status.get(k)) for k in ("message", "description") if status.get(k)
    ) or _text(data.get("reason"))
    return [
        ProviderEvent(
            source="mailgun",
            event_id=_text(data.get("id"), 200) or _text(data.get("timestamp"), 50),
            kind=kind,
            recipient=_text(data.get("recipient"), 320),
            return_path=_text((data.get("envelope") or {}).get("sender"), 320),
            status_code=code,
            reason=reason[:500],
            subject=_text(headers.get("subject")),
        )
    ]
