"""Helpers shared by the subscriber and public-web tests: an app client, a sent issue, and
reading links out of the emails that arrived at the test SMTP server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine, select

from newsletter.config import Config
from newsletter.content import assemble_issue, issue_view, queue_link
from newsletter.db import make_engine, transaction
from newsletter.models import IssueStatus
from newsletter.sending.render import render_digest
from newsletter.web.app import create_app
from subscribers.models import Subscriber
from tests.harness import ReceivedMessage

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def client_for(config: Config, engine: Engine, **state: object) -> httpx.AsyncClient:
    app = create_app(config, engine, **state)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
        base_url=config.base_url,
        headers={"user-agent": "pytest-browser/1.0"},
    )


async def csrf_from(client: httpx.AsyncClient, path: str = "/") -> str:
    page = await client.get(path)
    found = CSRF.search(page.text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def send_issue(engine: Engine, config: Config, *, sent_at: datetime = T0) -> int:
    """Assemble, render and mark as sent one issue (what publishing does); its number."""
    with transaction(engine) as session:
        queue_link(
            session,
            url="https://www.lemonde.fr/civic-tech-applis",
            title="« Civic Tech » : des applis pour doper la démocratie en ville",
            source="Le Monde",
            excerpt="Des start-ups veulent rapprocher les habitants de leur mairie.",
            now=sent_at - timedelta(days=2),
        )
        issue = assemble_issue(session, config, sent_at, intro="Trois semaines de liens.")
        rendered = render_digest(config, issue_view(session, issue))
        issue.html, issue.text = rendered.html, rendered.text
        issue.status, issue.sent_at = IssueStatus.SENT.value, sent_at
        return issue.number


def plain_text(message: ReceivedMessage) -> str:
    parsed: EmailMessage = message.parsed()
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def html_text(message: ReceivedMessage) -> str:
    body = message.parsed().get_body(("html",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def link_in(text: str, base_url: str, prefix: str) -> str:
    """The path of the first ``base_url + prefix…`` link in ``text``."""
    found = re.search(re.escape(base_url + prefix) + r"[A-Za-z0-9_.\-]+", text)
    assert found, f"no {prefix} link in:\n{text}"
    return found.group(0)[len(base_url) :]


def list_unsubscribe_path(message: ReceivedMessage, base_url: str) -> str:
    header = str(message.parsed()["List-Unsubscribe"])
    return link_in(header, base_url, "/u/")


def status_of(config: Config, email: str) -> str:
    engine = make_engine(config.database_url)
    try:
        with transaction(engine) as session:
            row = session.scalars(select(Subscriber).where(Subscriber.email_key == email)).one()
            return row.status
    finally:
        engine.dispose()
