"""DKIM signatures (RFC 6376) of the messages we build: rsa-sha256, c=relaxed/simple, over
the list headers RFC 8058 needs signed. The RSA signature is computed by OpenSSL
(``cryptography``), which releases the GIL while it works, so several messages are signed
at once on the build threads."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.config import Config
from newsletter.errors import ConfigError
from newsletter.sending.wire import CRLF

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

# Headers DKIM signs: RFC 8058 needs List-Unsubscribe-Post signed (dkimpy's default omits it).
DKIM_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
)


def dkim_signer(config: Config) -> DKIMSigner | None:
    """The signer that returns the DKIM-Signature header line for a message, when
    ``[smtp] dkim_key_file`` is set. Raises ``ConfigError`` for an unusable key or selector."""
    key_file = str(config.get("smtp", "dkim_key_file"))
    if not key_file:
        return None
    path = config.resolve_path(key_file)
    selector = str(config.get("smtp", "dkim_selector"))
    if not selector:
        raise ConfigError(
            "[smtp] dkim_selector in %(path)s: required with dkim_key_file", path=str(config.path)
        )
    from_address = str(config.get("list", "from_address"))
    domain = str(config.get("smtp", "dkim_domain")) or from_address.rpartition("@")[2]
    return DKIMSigner(load_dkim_key(path, config), selector, domain)


def load_dkim_key(path: Path, config: Config) -> RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    places = {"path": str(config.path), "key_file": str(path)}
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(
            "[smtp] dkim_key_file in %(path)s: cannot read %(key_file)s: %(error)s",
            error=str(exc),
            **places,
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "[smtp] dkim_key_file in %(path)s: %(key_file)s is not an unencrypted PEM private "
            "key: %(error)s",
            error=str(exc),
            **places,
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(
            "[smtp] dkim_key_file in %(path)s: %(key_file)s must hold an RSA key", **places
        )
    return key


_WSP = re.compile(rb"[ \t]+")


@functools.lru_cache(maxsize=256)
def _relaxed_header(name: bytes, value: bytes) -> bytes:
    # Cached: From, Subject, List-Id and List-Unsubscribe-Post are the same in every message
    # of a run (the values that change push out only each other).
    # RFC 6376 3.4.2: lower-case name, unfold, collapse whitespace, trim.
    unfolded = value.replace(b"\r\n", b"")
    return name.strip().lower() + b":" + _WSP.sub(b" ", unfolded).strip()


class DKIMSigner:
    """rsa-sha256, c=relaxed/simple, over ``DKIM_HEADERS`` (those present). The RSA signature
    is computed by OpenSSL (``cryptography``): about a millisecond per message, where a
    pure-Python RSA (dkimpy's) costs tens of milliseconds, too slow for a 50,000-recipient run.
    ``tests/test_message.py`` verifies the result with dkimpy."""

    def __init__(self, key: RSAPrivateKey, selector: str, domain: str) -> None:
        self.key, self.selector, self.domain = key, selector, domain

    def sign(self, message: bytes) -> bytes:
        """The DKIM-Signature header line (with its CRLF) for ``message``."""
        head, _, body = message.partition(CRLF + CRLF)
        return self.sign_parts(head + CRLF + CRLF, [body])

    def sign_parts(
        self, head: bytes, body: Sequence[bytes], shared: SharedBody | None = None
    ) -> bytes:
        """``sign`` for the message ``head`` (the header block with its blank line) followed
        by the concatenation of ``body``, hashed part by part: no copy of the body is made
        (the parts of ``MessageTemplate``'s messages are shared by every recipient).
        ``shared``, when given, is the hash of the body's first parts, which every recipient
        has in common: hashing goes on from its copy."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        fields = _header_fields(head[: -len(CRLF + CRLF)])
        names = [name for name in DKIM_HEADERS if name.lower() in fields]
        tags = (
            f"v=1; a=rsa-sha256; c=relaxed/simple; d={self.domain}; s={self.selector};\r\n"
            f"\th={':'.join(n.decode() for n in names)};\r\n"
            f"\tbh={base64.b64encode(_simple_body_hash(body, shared)).decode()};\r\n\tb="
        ).encode("ascii")
        signed = b"".join(_relaxed_header(n, fields[n.lower()]) + CRLF for n in names)
        signed += _relaxed_header(b"DKIM-Signature", b" " + tags)
        signature = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return b"DKIM-Signature: " + tags + base64.b64encode(signature) + CRLF


@dataclass(frozen=True)
class SharedBody:
    """The SHA-256 state after the first ``parts`` parts of a body (never updated: copied)."""

    parts: int
    digest: Any

    @classmethod
    def of(cls, parts: Sequence[bytes]) -> SharedBody:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        return cls(len(parts), digest)


def _simple_body_hash(body: Sequence[bytes], shared: SharedBody | None = None) -> bytes:
    """SHA-256 of the body in the "simple" canonical form (RFC 6376 3.4.3): trailing empty
    lines removed, one CRLF at the end (an empty body is one CRLF)."""
    last = next((part for part in reversed(body) if part), b"")
    if not (len(last) > 2 and last.endswith(CRLF) and last[-3:-2] not in (b"\r", b"\n")):
        # Not already canonical (rare for our messages): canonicalise a joined copy.
        whole = b"".join(body)
        return hashlib.sha256(whole.rstrip(CRLF) + CRLF if whole.strip(CRLF) else CRLF).digest()
    digest, start = (shared.digest.copy(), shared.parts) if shared else (hashlib.sha256(), 0)
    for part in body[start:]:
        digest.update(part)
    result: bytes = digest.digest()
    return result


def _header_fields(head: bytes) -> dict[bytes, bytes]:
    """Header name (lower case) -> raw value, folding kept; the last one of a name wins."""
    fields: dict[bytes, bytes] = {}
    name = b""
    for line in head.split(CRLF):
        if line[:1] in (b" ", b"\t") and name:
            fields[name] += CRLF + line
        else:
            raw_name, _, value = line.partition(b":")
            name = raw_name.strip().lower()
            fields[name] = value
    return fields
