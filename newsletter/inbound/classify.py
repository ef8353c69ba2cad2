"""Classification: what an inbound message is, and which delivery it answers. Pure: no
database, no clock.

In order: an RFC 5965 ARF report is a complaint; an RFC 3464 DSN (or a non-standard bounce
that flufl.bounce, Mailman's detector library, recognises) is a hard or soft bounce; an RFC 3834
auto-reply is ignored; a message to ``unsubscribe+TOKEN@`` is a mailto unsubscribe; anything
else is unclassified. A bounce or complaint is only acted on when a signed return token names
its delivery; without one it is kept as unclassified, with what was detected in the note.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from newsletter.config import Config
from newsletter.inbound.models import InboundKind
from newsletter.inbound.parsing import (
    addresses_in,
    decoded_header,
    embedded_originals,
    header_text,
    mailto_addresses,
    parse_message,
    text_payload,
    walk,
)
from newsletter.returnpath import DeliveryRef, ReturnPurpose, read_return_address

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response)|out of (the )?office|r[ée]ponse automatique|"
    r"absence|abwesenheit|automatische antwort|auto:)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Classification:
    """What a message is (``kind``), the delivery it names (``ref``) and why (``note``)."""

    kind: InboundKind
    ref: DeliveryRef | None = None
    status_code: str = ""
    reason: str = ""
    note: str = ""


@dataclass(frozen=True)
class Headline:
    """The few headers the inbound view shows."""

    header_from: str
    subject: str
    message_id: str


def headline(raw: bytes) -> Headline:
    msg = parse_message(raw)
    return Headline(
        header_from=decoded_header(msg, "From")[:500],
        subject=decoded_header(msg, "Subject")[:500],
        message_id=header_text(msg, "Message-ID")[:500],
    )


def classify(config: Config, raw: bytes, envelope_to: Sequence[str] = ()) -> Classification:
    """Classify ``raw`` (the message as received); ``envelope_to`` are the SMTP/LMTP
    recipients when known. Never raises on a malformed message."""
    msg = parse_message(raw)
    direct = [*envelope_to, *addresses_in(msg, "Delivered-To", "X-Original-To", "To")]
    if _is_arf(msg):
        return _complaint(config, msg, direct)
    bounce = _bounce(config, msg, direct)
    if bounce is not None:
        return bounce
    if _is_auto_reply(msg):
        return Classification(InboundKind.AUTO_REPLY, note="auto-reply (RFC 3834): ignored")
    ref, forged = _find_ref(config, direct, ReturnPurpose.UNSUBSCRIBE)
    if ref is not None:
        return Classification(InboundKind.UNSUBSCRIBE, ref, note="mailto unsubscribe")
    note = "unsubscribe address with a token that does not verify" if forged else ""
    return Classification(InboundKind.UNCLASSIFIED, note=note or "not a bounce or a complaint")


def _find_ref(
    config: Config, addresses: Sequence[str], purpose: ReturnPurpose
) -> tuple[DeliveryRef | None, bool]:
    """The first verified ``purpose`` reference in ``addresses``; and whether an address
    looked like one of ours but did not verify."""
    prefix = str(
        config.get(
            "bounces",
            "bounce_local_part" if purpose is ReturnPurpose.BOUNCE else "unsubscribe_local_part",
        )
    ).lower()
    forged = False
    for address in addresses:
        ref = read_return_address(config, address)
        if ref is not None and ref.purpose is purpose:
            return ref, False
        if address.lower().startswith(prefix + "+"):
            forged = True
    return None, forged


def _unverified(kind: InboundKind, forged: bool, status: str = "", reason: str = "") -> str:
    what = kind.value.replace("_", " ")
    detail = f" ({status})" if status else ""
    why = "its return token does not verify" if forged else "it carries no return token of ours"
    return f"{what}{detail} not acted on: {why}" + (f"; {reason}" if reason else "")


# --- complaints (RFC 5965) -----------------------------------------------------------------


def _is_arf(msg: Message) -> bool:
    if msg.get_content_type() == "multipart/report":
        report_type = str(msg.get_param("report-type", "") or "").lower()
        if report_type == "feedback-report":
            return True
    return any(part.get_content_type() == "message/feedback-report" for part in walk(msg))


def _complaint(config: Config, msg: Message, direct: list[str]) -> Classification:
    ref, forged = _find_ref(config, direct, ReturnPurpose.BOUNCE)
    if ref is None:
        # A feedback loop reports to a fixed address: the token is in the returned original,
        # in its Return-Path (bounce token) or its List-Unsubscribe (unsubscribe token).
        for original in embedded_originals(msg):
            ref, also = _find_ref(
                config, addresses_in(original, "Return-Path"), ReturnPurpose.BOUNCE
            )
            forged = forged or also
            if ref is None:
                ref, also = _find_ref(config, mailto_addresses(original), ReturnPurpose.UNSUBSCRIBE)
                forged = forged or also
            if ref is not None:
                break
    feedback = _feedback_type(msg)
    if ref is None:
        note = _unverified(InboundKind.COMPLAINT, forged, reason=feedback)
        return Classification(InboundKind.UNCLASSIFIED, note=note)
    return Classification(InboundKind.COMPLAINT, ref, reason=feedback, note="ARF complaint")


def _feedback_type(msg: Message) -> str:
    for part in walk(msg):
        if part.get_content_type() != "message/feedback-report":
            continue
        blocks = part.get_payload()
        if isinstance(blocks, list) and blocks and isinstance(blocks[0], Message):
            return "Feedback-Type: " + header_text(blocks[0], "Feedback-Type")
        match = re.search(r"feedback-type:\s*(\S+)", str(blocks), re.IGNORECASE)
        return "Feedback-Type: " + (match.group(1) if match else "")
    return ""


# --- bounces (RFC 3464 and what flufl.bounce recognises) -------------------------------------


@dataclass(frozen=True)
class _Verdict:
    permanent: bool
    status: str
    reason: str


def _bounce(config: Config, msg: Message, direct: list[str]) -> Classification | None:
    verdict = _bounce_verdict(msg)
    if verdict is None:
        return None
    if verdict.status == "delivered":
        return Classification(InboundKind.AUTO_REPLY, note="delivery notification: ignored")
    kind = InboundKind.HARD_BOUNCE if verdict.permanent else InboundKind.SOFT_BOUNCE
    ref, forged = _find_ref(config, direct, ReturnPurpose.BOUNCE)
    if ref is None:
        note = _unverified(kind, forged, verdict.status, verdict.reason[:200])
        return Classification(InboundKind.UNCLASSIFIED, status_code=verdict.status, note=note)
    return Classification(kind, ref, verdict.status, verdict.reason[:500], note="bounce")


def _bounce_verdict(msg: Message) -> _Verdict | None:
    """Permanent or temporary, from the DSN's status codes first, then flufl.bounce's
    detectors; None when the message is not a bounce; status ``delivered`` for a DSN that
    only reports success."""
    blocks = _dsn_blocks(msg)
    failed = [b for b in blocks if b[0].startswith(("fail", "error", "delayed"))]
    if failed:
        statuses = [status for _, status, _ in failed if status]
        if statuses:
            permanent = any(s.startswith("5") for s in statuses)
        else:
            permanent = any(action.startswith(("fail", "error")) for action, _, _ in failed)
        status = next((s for s in statuses if s[0] == ("5" if permanent else "4")), "")
        return _Verdict(permanent, status, failed[0][2])
    if blocks:
        return _Verdict(False, "delivered", "")
    return _flufl_verdict(msg)


def _dsn_blocks(msg: Message) -> list[tuple[str, str, str]]:
    """(action, status, diagnostic) of each per-recipient block of each delivery-status part."""
    found: list[tuple[str, str, str]] = []
    for part in walk(msg):
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if not isinstance(payload, list):
            continue
        for block in payload:
            if not isinstance(block, Message):
                continue
            action = header_text(block, "Action").lower()
            if not action:
                continue
            match = _STATUS.search(header_text(block, "Status"))
            status = ".".join(match.groups()) if match else ""
            diagnostic = header_text(block, "Diagnostic-Code") or header_text(block, "Status")
            found.append((action, status, diagnostic))
    return found


def _flufl_verdict(msg: Message) -> _Verdict | None:
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        return None
    if not temporary and not permanent:
        return None
    body = " ".join(_texts(msg))
    match = _STATUS.search(body)
    status = ".".join(match.groups()) if match else ""
    if status.startswith("4") or (not permanent and not status.startswith("5")):
        return _Verdict(False, status, "reported as a temporary failure")
    return _Verdict(True, status, "reported as a permanent failure")


def _texts(msg: Message) -> list[str]:
    return [text_payload(p)[:20000] for p in walk(msg) if p.get_content_type() == "text/plain"]


# --- auto-replies (RFC 3834) ---------------------------------------------------------------


def _is_auto_reply(msg: Message) -> bool:
    auto = header_text(msg, "Auto-Submitted").lower()
    if auto and not auto.startswith("no"):
        return True
    if any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Autoresponse")):
        return True
    if header_text(msg, "Precedence").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(decoded_header(msg, "Subject")))
