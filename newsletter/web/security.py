"""Web hardening shared by the public and admin pages.

- ``SecurityHeadersMiddleware``: CSP without inline scripts, X-Frame-Options, Referrer-Policy,
  nosniff, on every response that did not set its own.
- ``BodySizeLimitMiddleware``: request bodies over a limit get 413 before a handler reads them.
- ``CSRFMiddleware`` + ``csrf_token(request)`` + ``await check_csrf(request, form)``: a
  double-submit token. A random value lives in an HttpOnly cookie; forms carry its HMAC with the
  secret key, so a page on another site can neither read nor forge the field.
- ``RequestLimiter``: a per-key (per-IP) sliding window, in memory, for one process.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.config import Network, trusted_proxies
from newsletter.errors import NewsletterError

CSRF_COOKIE = "nl_csrf"
CSRF_FIELD = "csrf_token"
DEFAULT_BODY_LIMIT = 16 * 1024

DEFAULT_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "content-security-policy": DEFAULT_CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


class CSRFError(NewsletterError):
    """A form arrived without a valid CSRF token (the web edge answers 403)."""


class SecurityHeadersMiddleware:
    """Adds ``headers`` to every HTTP response unless the handler set that header itself
    (a page that must allow more, e.g. inline styles of an archived email, sets its own CSP)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answers 413 to a request whose body is over ``max_bytes``, whether it declares its
    length or streams it in chunks. ``prefix_limits`` gives other limits to path prefixes
    (e.g. ``{"/admin": 1_048_576}`` for editors' uploads)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = DEFAULT_BODY_LIMIT,
        prefix_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix_limits = dict(prefix_limits or {})

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.prefix_limits.items():
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(str(scope.get("path", "")))
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await _send_413(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_413(send)


async def _send_413(send: Send) -> None:
    body = b"Request body too large.\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CSRFMiddleware:
    """Puts the visitor's CSRF seed (from their cookie) in ``request.state.csrf_seed`` for
    ``csrf_token``; a visitor without one gets a new seed, and its cookie, only when a page
    renders a form (``csrf_token`` was called). Answers without a form, such as the
    one-click unsubscribes that mail providers POST by the thousand, set no cookie."""

    def __init__(self, app: ASGIApp, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.exempt_prefixes = exempt_prefixes  # paths that never get the cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        seed = Request(scope).cookies.get(CSRF_COOKIE, "")
        if len(seed) < 32 or len(seed) > 64 or not seed.replace("-", "").isalnum():
            seed = ""
        state = scope.setdefault("state", {})
        state["csrf_seed"] = seed

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.pop(_NEW_SEED, False):
                secure = "; Secure" if scope.get("scheme") == "https" else ""
                cookie = (
                    f"{CSRF_COOKIE}={state['csrf_seed']}; Path=/; HttpOnly; SameSite=Lax{secure}"
                )
                message["headers"] = [
                    *message.get("headers", []),
                    (b"set-cookie", cookie.encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


# ``request.state`` key: a seed was made for this request; the middleware sets its cookie.
_NEW_SEED = "csrf_new_seed"


def _secret(request: Request) -> str:
    secret = str(request.app.state.config.secret_key)
    if not secret:
        raise CSRFError("no secret key configured ([web] secret_key)")
    return secret


def csrf_token(request: Request) -> str:
    """The token to put in a form's hidden ``csrf_token`` field for this visitor (and, once
    ``bind_csrf`` named it, for this session only). A visitor without a seed gets one now,
    and its cookie with the response."""
    seed = str(getattr(request.state, "csrf_seed", ""))
    if not seed:
        seed = secrets.token_hex(16)
        request.state.csrf_seed = seed
        setattr(request.state, _NEW_SEED, True)
    binding = str(getattr(request.state, "csrf_binding", ""))
    message = f"{seed}|{binding}" if binding else seed
    return hmac.new(_secret(request).encode(), message.encode(), hashlib.sha256).hexdigest()


class FormToken:
    """``csrf_token(request)`` made when a template prints it, not before: a page without a
    form gives the visitor no seed and no cookie."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __str__(self) -> str:
        return csrf_token(self.request)

    def __html__(self) -> str:  # printed by an autoescaping template (hex: nothing to escape)
        return csrf_token(self.request)


def bind_csrf(request: Request, session_id: str) -> None:
    """Tie this request's CSRF token to a signed-in session: a token from another session
    (or from before sign-in) is refused."""
    request.state.csrf_binding = session_id


def rotate_csrf_seed(request: Request, response: Response) -> None:
    """Give the visitor a new CSRF seed with ``response`` (at sign-in): tokens seen before
    stop working."""
    seed = secrets.token_hex(16)
    request.state.csrf_seed = seed
    setattr(request.state, _NEW_SEED, False)  # the cookie is set here, not by the middleware
    secure = request.url.scheme == "https"
    response.set_cookie(CSRF_COOKIE, seed, path="/", httponly=True, samesite="lax", secure=secure)


def check_csrf(request: Request, form: FormData | Mapping[str, Any]) -> None:
    """Raises ``CSRFError`` unless ``form`` carries this visitor's CSRF token."""
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or CSRF_COOKIE not in request.cookies:
        raise CSRFError("the form expired or came from another site; please try again")
    if not hmac.compare_digest(sent, csrf_token(request)):
        raise CSRFError("the form expired or came from another site; please try again")


class RequestLimiter:
    """At most ``limit`` hits per key in any ``window`` seconds (one process, in memory)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count a hit for ``key``; False when it is over the limit (the hit is not counted)."""
        moment = time.monotonic() if now is None else now
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= moment - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(moment)
        if len(self._hits) > 10_000:  # forget idle keys so memory stays bounded
            self._forget_idle(moment)
        return True

    def _forget_idle(self, moment: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= moment - self.window]:
            del self._hits[key]


def _is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: Request) -> str:
    """The client's address: the peer's, unless the peer is one of ``[web] trusted_proxies``;
    then the nearest address in ``X-Forwarded-For`` that is not a trusted proxy (any client
    can write that header, so only a proxy we trust is believed)."""
    peer = request.client.host if request.client else ""
    networks = trusted_proxies(request.app.state.config)
    if not networks or not _is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted(hop, networks):
            return hop if _is_address(hop) else peer
    return peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class HideTokensFilter(logging.Filter):
    """For uvicorn's access log: the token of an unsubscribe or confirmation link in a
    logged path becomes ``…`` (whoever reads the log could otherwise use the link)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], _TOKEN_PATH.sub(r"\1…", args[2]), *args[3:])
        return True


_TOKEN_PATH = re.compile(r"^(/(?:u|confirm)/)[^/?#]+")
