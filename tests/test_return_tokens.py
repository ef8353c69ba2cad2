"""Return-path tokens keep their format: addresses in mail already sent still verify."""

from __future__ import annotations

import base64
import hashlib
import hmac

from subscribers.tokens import BOUNCE, MAILTO_UNSUBSCRIBE, make_return_token, read_return_token


def test_return_token_mac_is_the_first_26_base32_characters_of_the_hmac() -> None:
    """The token is ``run-subscriber-MAC`` with the MAC the first 26 lower-case base32
    characters of HMAC-SHA256 (the format of every bounce address sent so far), and it reads
    back to its delivery."""
    secret = "s3cret-key"
    for purpose in (BOUNCE, MAILTO_UNSUBSCRIBE):
        key = hashlib.sha256(f"newsletter.return.{purpose}:{secret}".encode()).digest()
        for run_id, subscriber_id in ((1, 1), (7, 123456), (99, 987654321)):
            message = f"{run_id}-{subscriber_id}".encode()
            digest = hmac.new(key, message, hashlib.sha256).digest()
            mac = base64.b32encode(digest).decode().lower()[:26]
            token = make_return_token(secret, purpose, run_id, subscriber_id)
            assert token == f"{run_id}-{subscriber_id}-{mac}"
            assert read_return_token(secret, purpose, token) == (run_id, subscriber_id)
