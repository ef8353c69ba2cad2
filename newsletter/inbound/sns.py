"""Amazon SNS message signatures, verified the way AWS documents it (SES notifications come
through SNS).

The signing certificate is fetched only from an ``https://sns.<region>.amazonaws.com/….pem``
URL, and cached by URL. The fetcher is injectable: tests hand in one that serves a certificate
made locally, so nothing leaves the machine.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from newsletter.errors import NewsletterError

_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
MAX_CERTIFICATE_BYTES = 64 * 1024

# The fields signed, in order, per message type (absent optional fields are left out).
_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")

Fetcher = Callable[[str], bytes]


class SignatureError(NewsletterError):
    """A webhook's signature is missing, malformed or wrong (the web edge answers 401)."""


def check_sns_url(url: str) -> str:
    """``url`` if it is an https URL on ``sns.<region>.amazonaws.com``; else ``SignatureError``."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not _SNS_HOST.match(parts.hostname or "") or parts.port:
        raise SignatureError("not an Amazon SNS URL: %(url)s", url=url[:200])
    return url


def fetch_https(url: str) -> bytes:
    """The body at an SNS URL (checked first), at most ``MAX_CERTIFICATE_BYTES``."""
    check_sns_url(url)
    with urllib.request.urlopen(url, timeout=10) as response:  # https and an SNS host: checked
        return bytes(response.read(MAX_CERTIFICATE_BYTES))


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical text SNS signs for ``message`` (a Notification or a subscription
    message)."""
    kind = message.get("Type")
    fields = _NOTIFICATION if kind == "Notification" else _SUBSCRIPTION
    lines: list[str] = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise SignatureError("SNS message without %(field)s", field=name)
        lines += [name, str(value)]
    return ("\n".join(lines) + "\n").encode("utf-8")


class SNSVerifier:
    """Verifies SNS messages; certificates are fetched once per URL and kept."""

    def __init__(self, fetcher: Fetcher = fetch_https) -> None:
        self.fetcher = fetcher
        self._cache: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        check_sns_url(url)
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        try:
            certificate = x509.load_pem_x509_certificate(self.fetcher(url))
        except (ValueError, OSError) as exc:
            raise SignatureError("unusable SNS certificate: %(error)s", error=str(exc)) from None
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureError("the SNS certificate holds no RSA key")
        with self._lock:
            self._cache[url] = key
        return key

    def verify(self, message: Mapping[str, Any]) -> None:
        """Raise ``SignatureError`` unless ``message`` carries a valid SNS signature."""
        version = str(message.get("SignatureVersion", ""))
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # SNS SignatureVersion 1 is SHA1withRSA
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise SignatureError("unknown SNS signature version %(version)s", version=version[:10])
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except ValueError:
            raise SignatureError("malformed SNS signature") from None
        if not signature:
            raise SignatureError("unsigned SNS message")
        key = self.public_key(str(message.get("SigningCertURL") or message.get("SigningCertUrl")))
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm)
        except InvalidSignature:
            raise SignatureError("wrong SNS signature") from None
