"""Every hostile input to the public pages, the admin forms and the API gets a 4xx or a page,
never a 500: a fixed corpus of values known to break parsers (non-ASCII digits, integers past
64 bits, dates at the calendar's ends, control characters, lone surrogates, deep JSON) is sent
in every form field, query string, path id and JSON field, on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import transaction
from newsletter.sending.publish import publish_next_issue
from newsletter.web.app import create_app
from subscribers.models import SubscriberStatus
from subscribers.store import create_subscriber
from tests.admin_support import NOW, Admin, open_site, sign_in
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer

# Values sent as text in forms, query strings and path segments.
HOSTILE = [
    "²",
    "١٢",
    "99999999999999999999",
    "-1",
    "0",
    "",
    " ",
    "1e999",
    "nan",
    "0001-01-01 00:00",
    "0001-01-01",
    "9999-12-31",
    "9999-12-31 23:59",
    "2026-02-30 10:00",
    "a\x00b",
    "\x1b[31mred",
    "tab\x0bvt",
    "c1\x85next",
    "line\r\nBcc: x@example.org",
    '=HYPERLINK("http://x")',
    "x" * 5000,
    "[" * 2000,
    "https://example.org/\x00",
    "javascript:alert(1)",
    "%ED%A0%80",
]
# The same, as raw URL-encoded bytes that are not UTF-8 (a lone surrogate, encoded).
RAW_FORM_VALUES = ["a%ED%A0%80b", "%FF%FE", "%C0%80"]
# JSON texts: deep nesting, lone surrogates, huge numbers.
HOSTILE_JSON = [
    "[" * 100_000,
    '{"a":' * 50_000,
    '"a\\ud800b"',
    "1" * 5000,
    "1e999",
    "NaN",
]

ADMIN_FORMS: dict[str, list[str]] = {
    "/admin/issue/links": ["url", "title", "source", "excerpt", "tags"],
    "/admin/issue/links/{link}": ["url", "title", "source", "excerpt", "tags"],
    "/admin/issue/links/{link}/move": ["position"],
    "/admin/issue/draft": ["subject", "intro"],
    "/admin/issue/test": ["email"],
    "/admin/sends/{run}/pause": ["reason"],
    "/admin/subscribers/add": ["email", "name"],
    "/admin/schedule/pause": ["until", "reason", "notify"],
    "/admin/schedule/delay": ["send_at"],
    "/admin/schedule/skip": ["confirm"],
}
ADMIN_PAGES = [
    "/admin/sends/{id}",
    "/admin/sends/{id}/progress.json",
    "/admin/sends/{id}/report.csv",
    "/admin/subscribers?offset={id}",
    "/admin/subscribers?q={id}&status={id}",
    "/admin/subscribers/export.csv?status={id}",
    "/admin/issue/preview.txt?intro={id}",
    "/admin/issue?done={id}",
    "/admin/inbound/{id}",
]
PUBLIC_PAGES = [
    "/archive/{id}",
    "/confirm/{id}",
    "/u/{id}",
    "/outbox/{id}",
    "/archive?offset={id}",
    "/r/{id}/{id}",
    "/r/1/{id}",
]
API_PATHS = [
    ("GET", "/api/links/{id}"),
    ("GET", "/api/sends/{id}"),
    ("GET", "/api/sends/{id}/report"),
    ("DELETE", "/api/links/{id}"),
    ("GET", "/api/subscribers?offset={id}&limit={id}&status={id}"),
]
API_BODIES: dict[str, list[str]] = {
    "PUT /api/issue/draft": ["subject", "intro"],
    "POST /api/links": ["url", "title", "source", "excerpt"],
    "POST /api/schedule/pause": ["until", "reason"],
    "POST /api/schedule/delay": ["send_at"],
    "POST /api/subscribers": ["email", "name"],
}


@dataclass
class Site:
    config: Config
    engine: Engine
    admin: Admin
    token: str
    link: int
    run: int


@pytest.fixture
def site(make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer) -> Iterator[Site]:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine, token = open_site(config)
    with transaction(engine) as session:
        create_subscriber(
            session,
            email="ana@example.org",
            name="Ana",
            status=SubscriberStatus.ACTIVE,
            source="test",
            language="fr",
            now=NOW,
        )
        queue_link(session, url="https://example.org/0", title="Zéro", source="", now=NOW)
        run = publish_next_issue(session, config, NOW).run.id
        link = queue_link(session, url="https://example.org/1", title="Un", source="", now=NOW)
        link_id = link.id
    admin = sign_in(make_client(config, engine))
    yield Site(config, engine, admin, token, link_id, run)
    engine.dispose()


def make_client(config: Config, engine: Engine) -> TestClient:
    """A client that sees a 500 as a response rather than the server's exception."""
    app = create_app(config, engine)
    return TestClient(
        app, base_url=config.base_url, follow_redirects=False, raise_server_exceptions=False
    )


def _server_errors(responses: Iterator[tuple[str, Any]]) -> list[str]:
    return [f"{what} -> {r.status_code}" for what, r in responses if r.status_code >= 500]


def _form_posts(site: Site) -> Iterator[tuple[str, Any]]:
    for template, fields in ADMIN_FORMS.items():
        path = template.format(link=site.link, run=site.run)
        for name in fields:
            for value in HOSTILE:
                yield f"POST {path} {name}={value[:20]!r}", site.admin.post(path, {name: value})
            for raw in RAW_FORM_VALUES:
                body = f"csrf_token={site.admin.csrf}&{name}={raw}"
                headers = {"content-type": "application/x-www-form-urlencoded"}
                response = site.admin.client.post(path, content=body, headers=headers)
                yield f"POST {path} {name}={raw}", response


def _pages(site: Site, templates: list[str], client: Any) -> Iterator[tuple[str, Any]]:
    for template in templates:
        for value in [*HOSTILE, *RAW_FORM_VALUES]:
            encoded = value if value in RAW_FORM_VALUES else quote(value, safe="")
            path = template.format(id=encoded)
            yield f"GET {path[:80]}", client.get(path)


def _public_forms(site: Site) -> Iterator[tuple[str, Any]]:
    client = make_client(site.config, site.engine)
    page = client.get("/")
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    for name in ("email", "name"):
        for value in HOSTILE:
            data = {"csrf_token": csrf, "email": "bob@example.org", name: value}
            yield f"POST /subscribe {name}={value[:20]!r}", client.post("/subscribe", data=data)
        for raw in RAW_FORM_VALUES:
            body = f"csrf_token={csrf}&email=bob%40example.org&{name}={raw}"
            headers = {"content-type": "application/x-www-form-urlencoded"}
            yield (
                f"POST /subscribe {name}={raw}",
                client.post("/subscribe", content=body, headers=headers),
            )


def _api(site: Site) -> Iterator[tuple[str, Any]]:
    client = make_client(site.config, site.engine)
    auth = {"authorization": f"Bearer {site.token}", "content-type": "application/json"}
    for method, template in API_PATHS:
        for value in [*HOSTILE, *RAW_FORM_VALUES]:
            encoded = value if value in RAW_FORM_VALUES else quote(value, safe="")
            path = template.format(id=encoded)
            yield f"{method} {path[:80]}", client.request(method, path, headers=auth)
    for operation, fields in API_BODIES.items():
        method, path = operation.split(" ")
        for text in HOSTILE_JSON:
            yield (
                f"{operation} {text[:20]}",
                client.request(method, path, content=text, headers=auth),
            )
        for name in fields:
            for value in HOSTILE:
                body = json.dumps({name: value})
                yield (
                    f"{operation} {name}={value[:20]!r}",
                    client.request(method, path, content=body, headers=auth),
                )
            body = '{"' + name + '": "a\\ud800b"}'
            yield (
                f"{operation} {name}=surrogate",
                client.request(method, path, content=body, headers=auth),
            )


def test_admin_forms_never_answer_500(site: Site) -> None:
    """Hostile values in every admin form field and query string get a 4xx or a page."""
    found = _server_errors(_form_posts(site))
    found += _server_errors(_pages(site, ADMIN_PAGES, site.admin.client))
    assert not found, f"{len(found)} server errors:\n" + "\n".join(found)


def _hooks(site: Site) -> Iterator[tuple[str, Any]]:
    client = make_client(site.config, site.engine)
    headers = {"content-type": "application/json"}
    for path in ("/hooks/ses", "/hooks/postmark", "/hooks/mailgun"):
        for text in HOSTILE_JSON:
            yield f"POST {path} {text[:20]}", client.post(path, content=text, headers=headers)


def test_public_pages_never_answer_500(site: Site) -> None:
    """Hostile path ids, query strings, subscribe-form values and webhook bodies get a 4xx
    or a page."""
    client = make_client(site.config, site.engine)
    found = _server_errors(_pages(site, PUBLIC_PAGES, client))
    found += _server_errors(_public_forms(site))
    found += _server_errors(_hooks(site))
    assert not found, f"{len(found)} server errors:\n" + "\n".join(found)


def test_api_never_answers_500(site: Site) -> None:
    """Hostile path ids, query strings and JSON bodies get a 4xx from the API."""
    found = _server_errors(_api(site))
    assert not found, f"{len(found)} server errors:\n" + "\n".join(found)
