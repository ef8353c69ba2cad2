"""Reading inbound mail defensively: parse any bytes, find the parts a classifier needs.

Inbound mail is hostile input: truncated MIME, unknown charsets, deep nesting. Nothing here
raises on a malformed message; it returns what it can read and leaves the rest.
"""

from __future__ import annotations

import email
import email.header
import re
from collections.abc import Iterator
from email.message import Message
from email.policy import Compat32
from email.utils import getaddresses
from typing import Any

# A message/rfc822 nested deeper than this is not looked into (the 50-deep case is hostile).
MAX_DEPTH = 12
_MAILTO = re.compile(r"<mailto:([^>?\s]+)", re.IGNORECASE)


class _Forgiving(Compat32):
    """compat32 (the most forgiving parser), except that raw 8-bit header bytes read as UTF-8
    (what senders mean nearly always) instead of being replaced."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if any("\udc80" <= c <= "\udcff" for c in value):
            raw = value.encode("ascii", "surrogateescape")
            return raw.decode("utf-8", errors="replace")
        return super().header_fetch_parse(name, value)


FORGIVING = _Forgiving()


def parse_message(raw: bytes) -> Message:
    """The message as the email package reads it, never raising on malformed input."""
    return email.message_from_bytes(raw, policy=FORGIVING)


def header_text(msg: Message, name: str) -> str:
    """A header's value as one line of text ("" when absent or unreadable)."""
    value = msg.get(name)
    if value is None:
        return ""
    text = str(value) if not isinstance(value, str) else value
    return " ".join(text.split())


def decoded_header(msg: Message, name: str) -> str:
    """A header's value with RFC 2047 words decoded, bad charsets replaced."""
    raw = header_text(msg, name)
    try:
        parts = email.header.decode_header(raw)
    except (ValueError, LookupError, UnicodeError):
        return raw
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            out.append(_decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return "".join(out)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "ascii", errors="replace")
    except LookupError:
        return data.decode("latin-1")


def text_payload(part: Message) -> str:
    """A part's body as text, whatever its transfer encoding and (possibly wrong) charset."""
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return _decode_bytes(payload, part.get_content_charset())
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def walk(msg: Message, depth: int = 0) -> Iterator[Message]:
    """Every part of ``msg``, depth first, not deeper than ``MAX_DEPTH`` nested messages."""
    yield msg
    if depth >= MAX_DEPTH or not msg.is_multipart():
        return
    payload = msg.get_payload()
    if not isinstance(payload, list):
        return
    nested = depth + (1 if msg.get_content_type() == "message/rfc822" else 0)
    for part in payload:
        if isinstance(part, Message):
            yield from walk(part, nested)


def addresses_in(msg: Message, *names: str) -> list[str]:
    """The bare addresses in the headers ``names`` of ``msg``, in order."""
    found: list[str] = []
    for name in names:
        values = [str(v) for v in (msg.get_all(name) or [])]
        found += [address for _, address in getaddresses(values) if address]
    return found


def mailto_addresses(msg: Message) -> list[str]:
    """The mailto: addresses in a List-Unsubscribe header."""
    return _MAILTO.findall(header_text(msg, "List-Unsubscribe"))


def embedded_originals(msg: Message) -> list[Message]:
    """The returned original messages (or their headers) inside a DSN or an ARF report."""
    originals: list[Message] = []
    for part in walk(msg):
        kind = part.get_content_type()
        if kind == "message/rfc822" and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                originals.append(inner)
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            originals.append(email.message_from_string(text_payload(part), policy=FORGIVING))
    return originals
