"""Signed tokens for links in emails (design decision 7).

Tokens are HMAC-signed (itsdangerous) with the secret from the configuration and bound to a
purpose through the salt, so a confirmation token cannot be used to unsubscribe and vice versa.
Unsubscribe tokens never expire and stay valid after a resubscribe; confirmation tokens carry
their issue time and expire. The clock is a parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

from newsletter.errors import TokenError

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"


def _serializer(secret: str, purpose: str) -> URLSafeSerializer:
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
