"""Signing editors in and out: a signed session cookie, login rate limiting and the guard
every admin page goes through (session + CSRF on every unsafe method).

The cookie holds the editor's id, signed with ``[web] secret_key`` (itsdangerous,
timestamped). It is HttpOnly, SameSite=Lax, and Secure when ``base_url`` is https. It also
carries a fingerprint of the password hash, so changing a password signs out every session.
Signing out raises the editor's session version, so a copied cookie stops working at once
(on every device: sign-out ends all of that editor's sessions). CSRF is the shared
double-submit token of ``newsletter.web.security``, bound to the session's random nonce, and
its seed is rotated at sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any
from urllib.parse import unquote, urlencode

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import read_transaction, transaction
from newsletter.editors import authenticate, get_editor
from newsletter.models import Editor
from newsletter.web.security import CSRFError, bind_csrf, check_csrf, client_ip

COOKIE_NAME = "newsletter_admin"
SESSION_MAX_AGE = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Endpoint = Callable[[Request], Awaitable[Response]]


def _serializer(config: Config) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config.secret_key, salt="newsletter.admin.session")


def _fingerprint(editor: Editor) -> str:
    return hashlib.sha256(editor.password_hash.encode()).hexdigest()[:16]


@dataclass
class SessionData:
    editor_id: int
    email: str
    nonce: str  # this session's random id: the CSRF token is bound to it


def session_cookie_value(config: Config, editor: Editor) -> str:
    """A new session for ``editor``: its id, a fingerprint of the password hash, the
    editor's session version (signing out raises it) and a random nonce."""
    payload = {
        "e": editor.id,
        "f": _fingerprint(editor),
        "v": editor.session_version,
        "n": secrets.token_hex(16),
    }
    return _serializer(config).dumps(payload)


def set_session_cookie(response: Response, config: Config, editor: Editor) -> None:
    response.set_cookie(
        COOKIE_NAME,
        session_cookie_value(config, editor),
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=config.base_url.startswith("https://"),
    )


def clear_session_cookie(response: Response, config: Config) -> None:
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="lax",
        secure=config.base_url.startswith("https://"),
    )


def _load_session(request: Request) -> SessionData | None:
    config: Config = request.app.state.config
    raw = request.cookies.get(COOKIE_NAME)
    if not raw:
        return None
    try:
        payload = _serializer(config).loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), int):
        return None
    with read_transaction(request.app.state.engine) as session:
        editor = get_editor(session, payload["e"])
        if editor is None or not hmac.compare_digest(_fingerprint(editor), str(payload.get("f"))):
            return None
        if payload.get("v") != editor.session_version:
            return None  # signed out since
        return SessionData(editor_id=editor.id, email=editor.email, nonce=str(payload.get("n")))


def end_sessions(request: Request, editor_id: int) -> None:
    """Sign the editor out on the server: every session cookie issued so far stops working
    (runs in a thread)."""
    with transaction(request.app.state.engine) as session:
        editor = get_editor(session, editor_id)
        if editor is not None:
            editor.session_version += 1


ADMIN_HOME = "/admin/"
MAX_NEXT_LENGTH = 2000


def login_url(request: Request) -> str:
    """The sign-in page, told to come back here afterwards (the bookmarklet's and the share
    sheet's page keep the link they carry)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if safe_next(here) == ADMIN_HOME:
        return "/admin/login"
    return f"/admin/login?{urlencode({'next': here})}"


def safe_next(value: str) -> str:
    """Where to go after signing in: ``value`` when it is a path of the dashboard on this
    site, else the dashboard's home (never another site: no scheme, no ``//host``, no
    backslash, no control character, no way out of ``/admin/``)."""
    if (
        not value.startswith(ADMIN_HOME)
        or len(value) > MAX_NEXT_LENGTH
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return ADMIN_HOME
    path = value.split("?", 1)[0]
    if any(part in (".", "..") for part in unquote(path).split("/")):
        return ADMIN_HOME
    return value


async def csrf_ok(request: Request) -> bool:
    """Whether the posted form carries this visitor's CSRF token."""
    try:
        check_csrf(request, await request.form())
    except CSRFError:
        return False
    return True


def editor_required(endpoint: Endpoint) -> Endpoint:
    """Guard an admin endpoint: a valid session, and the session's CSRF token on every
    unsafe method. Anonymous GETs go to the sign-in page; anything else gets 403."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        data = await run_in_threadpool(_load_session, request)
        if data is None:
            if request.method in SAFE_METHODS:
                return RedirectResponse(login_url(request), status_code=303)
            return PlainTextResponse("Sign-in required", status_code=403)
        bind_csrf(request, data.nonce)
        if request.method not in SAFE_METHODS and not await csrf_ok(request):
            return PlainTextResponse("CSRF token missing or wrong", status_code=403)
        request.state.editor_id = data.editor_id
        request.state.editor_email = data.email
        return await endpoint(request)

    return guarded


# --- login rate limiting ---------------------------------------------------------------------


@dataclass
class LoginLimiter:
    """At most ``limit`` failed sign-ins per key (client address, and account) per window.

    In memory, per process: it slows down guessing from one place; the argon2 cost does the
    rest.
    """

    limit: int = 5
    window: float = 15 * 60
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures.setdefault(key, deque())
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        return stamps

    def blocked(self, *keys: str) -> bool:
        with self._lock:
            now = self.clock()
            return any(len(self._recent(key, now)) >= self.limit for key in keys)

    def begin_attempt(self, *keys: str) -> bool:
        """Check and count one sign-in attempt for ``keys`` in one step, before the password
        is verified: False (nothing counted) when any key is at its limit. Counting first
        means parallel attempts cannot all pass the check while the slow hash runs; a
        successful attempt is forgiven with ``forgive``."""
        with self._lock:
            now = self.clock()
            stamps = [self._recent(key, now) for key in keys]
            if any(len(found) >= self.limit for found in stamps):
                return False
            for found in stamps:
                found.append(now)
            return True

    def forgive(self, *keys: str) -> None:
        """Take back the latest attempt counted for ``keys`` (it succeeded)."""
        with self._lock:
            for key in keys:
                found = self._failures.get(key)
                if found:
                    found.pop()

    def record_failure(self, *keys: str) -> None:
        with self._lock:
            now = self.clock()
            for key in keys:
                self._recent(key, now).append(now)

    def reset(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def login_limiter(request: Request) -> LoginLimiter:
    state = request.app.state
    limiter = getattr(state, "login_limiter", None)
    if limiter is None:
        limiter = LoginLimiter()
        state.login_limiter = limiter
    return limiter


def client_key(request: Request) -> str:
    return "ip:" + client_ip(request)


def sign_in(request: Request, email: str, password: str) -> Editor | None:
    """Check the credentials in one transaction (runs in a thread)."""
    with transaction(request.app.state.engine) as session:
        return authenticate(session, email, password, utc_now())


def login_keys(request: Request, email: str) -> tuple[str, str]:
    return client_key(request), "account:" + email.strip().lower()


def form_text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
