"""The safe fetcher: GET a URL that a person gave the server, without letting it reach the
server's own network (SSRF), hang, or fill memory.

- http(s) only; the host is resolved once per hop and *every* address must be public (or in
  ``[intake] allow_networks``); the connection then goes to that checked address, with the
  original ``Host`` header and TLS server name, so the name is never resolved a second time
  (no DNS rebinding between the check and the connection);
- redirects are followed by hand, each hop checked the same way, at most ``max_redirects``;
- one deadline for the whole fetch (every hop, every read), and at most ``max_bytes`` read;
- environment proxies are ignored (they would connect somewhere we did not check).
"""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from charset_normalizer import from_bytes

from newsletter.config import Config
from newsletter.errors import FetchError
from newsletter.intake.addresses import (
    IPNetwork,
    Resolver,
    is_allowed,
    parse_networks,
    system_resolver,
)

USER_AGENT = "SundayNewsletter/0.1 (link intake: reads the pages an editor queues)"
HTML_TYPES = ("text/html", "application/xhtml+xml")
REDIRECTS = (301, 302, 303, 307, 308)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of one fetch; ``from_config`` reads them from ``[intake]``."""

    allow: tuple[IPNetwork, ...] = ()
    timeout: float = 10.0
    max_bytes: int = 2_000_000
    max_redirects: int = 5
    user_agent: str = USER_AGENT
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_config(cls, config: Config, resolver: Resolver = system_resolver) -> FetchPolicy:
        return cls(
            allow=parse_networks(str(config.get("intake", "allow_networks"))),
            timeout=float(config.get("intake", "timeout")),
            max_bytes=int(config.get("intake", "max_bytes")),
            max_redirects=int(config.get("intake", "max_redirects")),
            resolver=resolver,
        )


@dataclass(frozen=True)
class Fetched:
    """What a fetch brought back. ``status`` is 2xx, or 304 for a conditional GET."""

    url: str  # after redirects
    status: int
    media_type: str  # e.g. "text/html", lower case, without parameters
    charset: str | None  # declared in Content-Type
    body: bytes
    truncated: bool
    etag: str = ""
    last_modified: str = ""
    redirects: tuple[str, ...] = ()


def fetch(
    url: str,
    policy: FetchPolicy,
    *,
    accept: Sequence[str] | None = HTML_TYPES,
    headers: Mapping[str, str] | None = None,
) -> Fetched:
    """GET ``url`` under ``policy``. ``accept`` lists the media types taken (``None``: any);
    ``headers`` may carry ``If-None-Match``/``If-Modified-Since`` (a 304 is then returned).

    Raises ``FetchError`` for a blocked or unresolvable address, a timeout, too many
    redirects, an HTTP error status or a media type not in ``accept``.
    """
    deadline = time.monotonic() + policy.timeout
    current = _parse(url)
    hops: list[str] = []
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        for _ in range(policy.max_redirects + 1):
            with _get(client, current, policy, deadline, headers or {}) as response:
                location = _redirect_target(response, current)
                if location is None:
                    return _read(response, str(current), policy, deadline, accept, tuple(hops))
            hops.append(str(current))
            current = location
    raise FetchError("more than %(limit)s redirects", "url", limit=policy.max_redirects)


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise FetchError("not a valid link", "url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise FetchError("only http:// and https:// links can be fetched", "url")
    return parsed


def _pinned(url: httpx.URL, policy: FetchPolicy) -> tuple[httpx.URL, dict[str, str], Any]:
    """The URL rewritten to a checked address, the Host header and the TLS extensions."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = policy.resolver(url.host, port)
    except (OSError, UnicodeError, ValueError):
        addresses = []
    if not addresses:
        raise FetchError("the name %(host)s does not resolve", "url", host=url.host)
    for address in addresses:
        if not is_allowed(address, policy.allow) and url.host == str(address):
            raise FetchError("%(address)s is not a public address", "url", address=str(address))
        if not is_allowed(address, policy.allow):
            raise FetchError(
                "%(host)s leads to %(address)s, which is not a public address",
                "url",
                host=url.host,
                address=str(address),
            )
    pinned = url.copy_with(host=str(addresses[0]))
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return pinned, {"host": url.netloc.decode("ascii")}, extensions


@contextmanager
def _get(
    client: httpx.Client,
    url: httpx.URL,
    policy: FetchPolicy,
    deadline: float,
    headers: Mapping[str, str],
) -> Iterator[httpx.Response]:
    pinned, host, extensions = _pinned(url, policy)
    request = client.build_request(
        "GET",
        pinned,
        headers={
            **headers,
            **host,
            "user-agent": policy.user_agent,
            "accept": "text/html,application/xhtml+xml,*/*;q=0.5",
        },
        timeout=httpx.Timeout(_remaining(deadline, policy)),
        extensions=extensions,
    )
    try:
        response = client.send(request, stream=True)
    except httpx.TimeoutException:
        raise _timeout(policy) from None
    except httpx.HTTPError:
        raise FetchError("the site %(host)s could not be reached", "url", host=url.host) from None
    try:
        yield response
    finally:
        response.close()


def _remaining(deadline: float, policy: FetchPolicy) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timeout(policy)
    return left


def _timeout(policy: FetchPolicy) -> FetchError:
    return FetchError(
        "the site did not answer within %(seconds)s seconds",
        "url",
        seconds=format(policy.timeout, "g"),
    )


def _redirect_target(response: httpx.Response, current: httpx.URL) -> httpx.URL | None:
    if response.status_code not in REDIRECTS or "location" not in response.headers:
        return None
    try:
        return _parse(str(current.join(response.headers["location"])))
    except httpx.InvalidURL:
        raise FetchError("a redirect leads to an invalid link", "url") from None


def _read(
    response: httpx.Response,
    url: str,
    policy: FetchPolicy,
    deadline: float,
    accept: Sequence[str] | None,
    hops: tuple[str, ...],
) -> Fetched:
    status = response.status_code
    media_type, charset = parse_content_type(response.headers.get("content-type", ""))
    if status != 304 and not 200 <= status < 300:
        raise FetchError("the page answered HTTP %(status)s", "url", status=status)
    body, truncated = b"", False
    if status != 304:
        body, truncated = _read_body(response, policy, deadline)
        if not media_type and body.lstrip()[:100].lower().startswith((b"<!doctype html", b"<html")):
            media_type = "text/html"
        if accept is not None and media_type not in accept:
            raise FetchError(
                "the link is not a web page but %(type)s", "url", type=media_type or "?"
            )
    return Fetched(
        url=url,
        status=status,
        media_type=media_type,
        charset=charset,
        body=body,
        truncated=truncated,
        etag=response.headers.get("etag", ""),
        last_modified=response.headers.get("last-modified", ""),
        redirects=hops,
    )


def _read_body(
    response: httpx.Response, policy: FetchPolicy, deadline: float
) -> tuple[bytes, bool]:
    """At most ``max_bytes`` of the body; ``True`` when there was more (it is not read)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            _remaining(deadline, policy)
            chunks.append(chunk)
            size += len(chunk)
            if size > policy.max_bytes:
                return b"".join(chunks)[: policy.max_bytes], True
    except httpx.TimeoutException:
        raise _timeout(policy) from None
    except httpx.HTTPError:
        raise FetchError("the connection broke while reading the page", "url") from None
    return b"".join(chunks), False


def parse_content_type(header: str) -> tuple[str, str | None]:
    """``"text/html; charset=ISO-8859-1"`` → ``("text/html", "iso-8859-1")``."""
    media_type, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'").lower()
    return media_type.strip().lower(), charset


def decode_html(body: bytes, declared: str | None) -> str:
    """The page as text: the charset declared in Content-Type, else in a ``<meta>``, else
    UTF-8 when it decodes cleanly, else the one ``charset_normalizer`` detects."""
    for candidate in (declared, _meta_charset(body)):
        codec = _codec(candidate)
        if codec:
            return body.decode(codec, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    codec = _codec(_detected_charset(body[:200_000])) or "cp1252"
    return body.decode(codec, errors="replace")


def _detected_charset(body: bytes) -> str | None:
    """The charset ``charset_normalizer`` finds; among equally good guesses, windows-1252
    (the web's most common legacy charset: short Latin-1 pages are otherwise a coin toss)."""
    matches = list(from_bytes(body))
    if not matches:
        return None
    best = matches[0]
    for match in matches:
        same = (match.chaos, match.coherence) == (best.chaos, best.coherence)
        if same and "cp1252" in match.could_be_from_charset:
            return "cp1252"
    return str(best.encoding)


def _meta_charset(body: bytes) -> str | None:
    found = _META_CHARSET.search(body[:4096])
    return found.group(1).decode("ascii", errors="ignore") if found else None


def _codec(name: str | None) -> str | None:
    """A Python codec for a charset label; Latin-1 means windows-1252 on the web (WHATWG)."""
    if not name:
        return None

    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return "cp1252" if codec in ("latin-1", "iso8859-1", "ascii") else codec
