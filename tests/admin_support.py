"""Helpers for the admin and API tests: an app on a migrated database, an editor, readers, a
signed-in client that knows its CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from starlette.testclient import TestClient

from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.editors import add_editor, issue_api_token
from newsletter.web.app import create_app
from subscribers.models import SubscriberStatus
from subscribers.store import create_subscriber

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
EMAIL = "alice@example.org"
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Admin:
    client: TestClient
    csrf: str

    def post(self, path: str, data: dict[str, str] | None = None, **kw: object) -> object:
        return self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kw)  # type: ignore[arg-type]


def make_editor(engine: Engine, email: str = EMAIL) -> str:
    """Create an editor account and return an API token for it."""
    with transaction(engine) as session:
        editor = add_editor(session, email=email, password=PASSWORD, now=NOW)
        return issue_api_token(session, editor, name="test", now=NOW)


def open_site(config: Config) -> tuple[Engine, str]:
    """Migrate the database ``config`` names, add the editor; the engine and the editor's API
    token."""
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    return engine, make_editor(engine)


def add_readers(
    engine: Engine,
    emails: Iterable[str],
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    source: str = "test",
) -> None:
    """Store one French subscriber per address, without a name, created at ``NOW``."""
    with transaction(engine) as session:
        for email in emails:
            create_subscriber(
                session,
                email=email,
                name="",
                status=status,
                source=source,
                language="fr",
                now=NOW,
            )


def make_client(config: Config, engine: Engine) -> TestClient:
    return TestClient(create_app(config, engine), base_url=config.base_url, follow_redirects=False)


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> Admin:
    page = client.get("/admin/login")
    csrf = csrf_from(page.text)
    response = client.post(
        "/admin/login", data={"csrf_token": csrf, "email": email, "password": password}
    )
    assert response.status_code == 303, response.text
    # The CSRF token is rotated at sign-in and bound to the new session: read it afresh.
    return Admin(client, csrf_from(client.get("/admin/issue").text))


def signed_in(config: Config, engine: Engine) -> Admin:
    """A client of the app on ``engine``, signed in as the editor ``open_site`` added."""
    return sign_in(make_client(config, engine))
