"""Editor accounts: argon2 password hashes and bearer tokens for the JSON API.

Only a token's SHA-256 is stored, so a copy of the database does not let anyone call the API.
Sign-in answers the same way for an unknown address and a wrong password, and spends the same
argon2 work on both, so it cannot tell who has an account.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import ConflictError, InvalidInputError, NotFoundError
from newsletter.models import ApiToken, Editor

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "nlt_"

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the address is unknown, so both paths cost one argon2
    verification. Made on first use: argon2 takes 64 MiB, which a sender process never needs."""
    return _hasher.hash(secrets.token_urlsafe(16))


def normalise_editor_email(email: str) -> str:
    """The address in its canonical lower-case form; raises ``InvalidInputError``."""
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInputError("%(error)s", where="email", error=str(exc)) from None
    return str(result.normalized).lower()


def check_password(password: str) -> None:
    """Raise ``InvalidInputError`` when ``password`` is too short to protect an account."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            "must have at least %(limit)s characters", where="password", limit=MIN_PASSWORD_LENGTH
        )


def add_editor(session: Session, *, email: str, password: str, now: datetime) -> Editor:
    """Create an editor account.

    Raises ``InvalidInputError`` for a bad address or short password and ``ConflictError`` when
    the address already has an account.
    """
    key = normalise_editor_email(email)
    check_password(password)
    if find_editor(session, key) is not None:
        raise ConflictError("an editor account for %(email)s already exists", email=key)
    editor = Editor(email=key, password_hash=_hasher.hash(password), created_at=now)
    session.add(editor)
    session.flush()
    return editor


def set_password(session: Session, editor: Editor, password: str) -> None:
    """Replace an editor's password; raises ``InvalidInputError`` when it is too short."""
    check_password(password)
    editor.password_hash = _hasher.hash(password)
    session.flush()


def find_editor(session: Session, email: str) -> Editor | None:
    """The editor with this address (case-insensitive), or None."""
    key = email.strip().lower()
    return session.scalars(select(Editor).where(Editor.email == key)).first()


def get_editor(session: Session, editor_id: int) -> Editor | None:
    return session.get(Editor, editor_id)


def require_editor(session: Session, email: str) -> Editor:
    """The editor with this address; raises ``NotFoundError``."""
    editor = find_editor(session, email)
    if editor is None:
        raise NotFoundError("no editor account for %(email)s", email=email.strip())
    return editor


def list_editors(session: Session) -> list[Editor]:
    return list(session.scalars(select(Editor).order_by(Editor.email)))


def authenticate(session: Session, email: str, password: str, now: datetime) -> Editor | None:
    """The editor when ``password`` matches, else None (same cost either way).

    Records the sign-in time and upgrades an outdated hash on success.
    """
    editor = find_editor(session, email)
    stored = editor.password_hash if editor is not None else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if editor is None:
        return None
    if _hasher.check_needs_rehash(editor.password_hash):
        editor.password_hash = _hasher.hash(password)
    editor.last_login_at = now
    session.flush()
    return editor


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_api_token(session: Session, editor: Editor, *, name: str, now: datetime) -> str:
    """Create a bearer token for ``editor`` and return it; only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        editor_id=editor.id, token_hash=hash_token(token), name=name[:100], created_at=now
    )
    session.add(row)
    session.flush()
    return token


def editor_for_token(session: Session, token: str, now: datetime) -> Editor | None:
    """The editor a bearer token belongs to, or None; records when the token was last used."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if row is None:
        return None
    row.last_used_at = now
    return session.get(Editor, row.editor_id)


def list_api_tokens(session: Session, editor: Editor) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.editor_id == editor.id).order_by(ApiToken.id)
    return list(session.scalars(query))


def revoke_api_token(session: Session, editor: Editor, token_id: int) -> None:
    """Delete one of ``editor``'s tokens; raises ``NotFoundError``."""
    row = session.get(ApiToken, token_id)
    if row is None or row.editor_id != editor.id:
        raise NotFoundError("no API token %(token_id)s", token_id=token_id)
    session.delete(row)
    session.flush()
