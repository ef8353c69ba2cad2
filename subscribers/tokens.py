"""Signed tokens for links in emails (design decision 7).

Tokens are HMAC-signed (itsdangerous) with the secret from the configuration and bound to a
purpose through the salt, so a confirmation token cannot be used to unsubscribe and vice versa.
Unsubscribe tokens never expire and stay valid after a resubscribe; confirmation tokens carry
their issue time and expire. The clock is a parameter.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from newsletter.errors import TokenError

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"


@functools.lru_cache(maxsize=16)
def _serializer(secret: str, purpose: str) -> URLSafeSerializer:
    """One serializer per secret and purpose (building one costs more than checking a
    token; they keep no state between calls)."""
    if not secret:
        raise TokenError("no secret key configured ([web] secret_key)")
    return URLSafeSerializer(secret, salt=f"newsletter.{purpose}")


def make_unsubscribe_token(secret: str, subscriber_id: int) -> str:
    """A token naming ``subscriber_id`` for unsubscribing; it never expires."""
    return str(_serializer(secret, UNSUBSCRIBE).dumps(subscriber_id))


def read_unsubscribe_token(secret: str, token: str) -> int:
    """The subscriber id in an unsubscribe token. Raises ``TokenError`` if it is not valid."""
    value = _loads(secret, UNSUBSCRIBE, token)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenError("this link is not valid")
    return value


def make_confirm_token(secret: str, subscriber_id: int, now: datetime) -> str:
    """A token confirming ``subscriber_id``'s subscription, stamped with ``now``."""
    return str(_serializer(secret, CONFIRM).dumps([subscriber_id, int(now.timestamp())]))


def read_confirm_token(secret: str, token: str, now: datetime, max_age: timedelta) -> int:
    """The subscriber id in a confirmation token.

    Raises ``TokenError`` if it is forged or malformed, and ``ExpiredTokenError`` (carrying the
    subscriber id, so a fresh link can be offered) when it is older than ``max_age``.
    """
    return read_confirm_claim(secret, token, now, max_age)[0]


def read_confirm_claim(
    secret: str, token: str, now: datetime, max_age: timedelta
) -> tuple[int, datetime]:
    """The subscriber id in a confirmation token and when the token was made (to the
    second, rounded down). Raises like ``read_confirm_token``."""
    value = _loads(secret, CONFIRM, token)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TokenError("this link is not valid")
    subscriber_id, issued = value
    try:
        made = datetime.fromtimestamp(issued, UTC)
    except (OverflowError, OSError, ValueError):
        raise TokenError("this link is not valid") from None
    if now - made > max_age:
        raise ExpiredTokenError(subscriber_id)
    return int(subscriber_id), made


class ExpiredTokenError(TokenError):
    """A genuine confirmation token that is too old."""

    def __init__(self, subscriber_id: int) -> None:
        super().__init__("this confirmation link has expired")
        self.subscriber_id = subscriber_id


def _loads(secret: str, purpose: str, token: str) -> object:
    try:
        return _serializer(secret, purpose).loads(token)
    except BadSignature:
        raise TokenError("this link is not valid") from None


# --- return-path tokens (VERP) ---------------------------------------------------------------
#
# A return token names one delivery (send run, subscriber) inside an address's local part:
# ``bounces+12-345-<mac>@domain``. Local parts are case-insensitive in practice (some MTAs
# lower-case them), so the MAC is base32 in lower case, not itsdangerous's base64. 26
# characters of base32 carry 130 bits of HMAC-SHA256, and the whole token stays far under
# the 64-character limit of a local part.

BOUNCE = "bounce"
MAILTO_UNSUBSCRIBE = "mailto-unsubscribe"
_MAC_CHARS = 26
_MAC_BYTES = -(-_MAC_CHARS // 8) * 5  # whole 5-byte groups covering _MAC_CHARS characters


def _return_mac(secret: str, purpose: str, run_id: int, subscriber_id: int) -> str:
    if not secret:
        raise TokenError("no secret key configured ([web] secret_key)")
    key = hashlib.sha256(f"newsletter.return.{purpose}:{secret}".encode()).digest()
    digest = hmac.new(key, f"{run_id}-{subscriber_id}".encode(), hashlib.sha256).digest()
    # Base32 turns each 5 bytes into 8 characters, so the first _MAC_CHARS characters come
    # from the first _MAC_BYTES bytes alone (base64.b32encode is pure Python: a third less).
    return base64.b32encode(digest[:_MAC_BYTES]).decode("ascii").lower()[:_MAC_CHARS]


def make_return_token(secret: str, purpose: str, run_id: int, subscriber_id: int) -> str:
    """A compact token naming the delivery (``run_id``, ``subscriber_id``) for ``purpose``
    (``BOUNCE`` or ``MAILTO_UNSUBSCRIBE``); it never expires."""
    return f"{run_id}-{subscriber_id}-{_return_mac(secret, purpose, run_id, subscriber_id)}"


def read_return_token(secret: str, purpose: str, token: str) -> tuple[int, int]:
    """The (run id, subscriber id) a return token names. Raises ``TokenError`` when it is
    forged, truncated, malformed or made for another purpose or another secret."""
    parts = token.strip().lower().split("-")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 18 for p in parts[:2]):
        raise TokenError("this link is not valid")
    run_id, subscriber_id = int(parts[0]), int(parts[1])
    expected = _return_mac(secret, purpose, run_id, subscriber_id)
    if not hmac.compare_digest(expected, parts[2]):
        raise TokenError("this link is not valid")
    return run_id, subscriber_id
