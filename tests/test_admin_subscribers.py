"""The subscribers page: counts per status, search and filter, the weekly SVG chart from the
consent log, and adding a person sends them the confirmation email."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from subscribers.models import ConsentKind, Subscriber, SubscriberStatus
from subscribers.store import ConsentContext, create_subscriber, record_consent
from tests.admin_support import Admin, open_site, signed_in
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer


@pytest.fixture
def site(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> tuple[Config, Engine]:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine, _ = open_site(config)
    now = utc_now()
    people = [
        ("ana@example.org", "Ana", SubscriberStatus.ACTIVE, ConsentKind.CONFIRMED),
        ("bea@example.org", "Béa", SubscriberStatus.ACTIVE, ConsentKind.CONFIRMED),
        ("carl@example.org", "Carl", SubscriberStatus.UNSUBSCRIBED, ConsentKind.UNSUBSCRIBED),
        ("dan@example.org", "Dan", SubscriberStatus.BOUNCED, ConsentKind.BOUNCED),
    ]
    with transaction(engine) as session:
        for email, name, status, kind in people:
            row = create_subscriber(
                session,
                email=email,
                name=name,
                status=status,
                source="test",
                language="fr",
                now=now - timedelta(days=20),
            )
            record_consent(
                session,
                config.secret_key,
                row,
                kind,
                now - timedelta(days=1),
                ConsentContext(source="test"),
            )
    return config, engine


@pytest.fixture
def admin(site: tuple[Config, Engine]) -> Admin:
    return signed_in(*site)


def test_counts_search_filter_and_chart(admin: Admin) -> None:
    """The page counts each status, finds by address or name, filters by status, and draws
    this week's joins, leaves and bounces."""
    page = admin.client.get("/admin/subscribers")
    assert page.status_code == 200
    assert "actif\u202f: 2</a>" in page.text  # two active
    assert page.text.count("<svg") == 1
    assert "arrivées\u202f: 2</title>" in page.text and "départs\u202f: 1</title>" in page.text
    assert "rebonds\u202f: 1</title>" in page.text
    numbers = page.text.split('id="chart-table"')[1]
    assert '<td class="num">2</td><td class="num">1</td><td class="num">1</td>' in numbers
    found = admin.client.get("/admin/subscribers", params={"q": "BÉA"})
    assert "bea@example.org" in found.text and "ana@example.org" not in found.text
    found = admin.client.get("/admin/subscribers", params={"status": "unsubscribed"})
    assert "carl@example.org" in found.text and "ana@example.org" not in found.text


def test_adding_a_subscriber_sends_the_confirmation(
    site: tuple[Config, Engine], admin: Admin, smtp_server: SMTPServer
) -> None:
    """An editor adds a person: a pending row and a confirmation email at the SMTP server."""
    _, engine = site
    response = admin.post("/admin/subscribers/add", {"email": "eve@example.org", "name": "Eve"})
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    (message,) = smtp_server.wait_for(1)
    assert message.rcpt_tos == ["eve@example.org"]
    with transaction(engine) as session:
        row = session.scalars(select(Subscriber).where(Subscriber.email == "eve@example.org")).one()
        assert row.status == SubscriberStatus.PENDING
    bad = admin.post("/admin/subscribers/add", {"email": "not-an-address"})
    assert bad.status_code == 422  # type: ignore[attr-defined]


def test_import_reports_like_the_cli_and_export_downloads(
    site: tuple[Config, Engine], admin: Admin
) -> None:
    """An uploaded list is imported with the CLI's report (bad rows by number, unsubscribed
    skipped); a dry run changes nothing; the export is the subscribers as CSV."""
    _, engine = site
    data = b"email,name\nzoe@example.org,Zoe\nnot-an-address,X\ncarl@example.org,Carl\n"
    dry = admin.post(
        "/admin/subscribers/import",
        {"format": "auto", "dry_run": "yes"},
        files={"file": ("liste.csv", data, "text/csv")},
    )
    assert dry.status_code == 200 and "Dry run" in dry.text  # type: ignore[attr-defined]
    with transaction(engine) as session:
        assert (
            session.scalars(select(Subscriber).where(Subscriber.email == "zoe@example.org")).first()
            is None
        )
    done = admin.post(
        "/admin/subscribers/import",
        {"format": "auto", "confirmed": "yes", "source": "salon 2026"},
        files={"file": ("liste.csv", data, "text/csv")},
    )
    text = done.text  # type: ignore[attr-defined]
    assert "added: 1" in text and "row 3:" in text and "skipped-unsubscribed: 1 (rows 4)" in text
    with transaction(engine) as session:
        zoe = session.scalars(select(Subscriber).where(Subscriber.email == "zoe@example.org")).one()
        assert zoe.status == SubscriberStatus.ACTIVE
    export = admin.client.get("/admin/subscribers/export.csv", params={"status": "active"})
    assert export.headers["content-type"].startswith("text/csv")
    assert "zoe@example.org" in export.text and "carl@example.org" not in export.text
    missing = admin.post("/admin/subscribers/import", {"format": "auto"})
    assert missing.status_code == 422  # type: ignore[attr-defined]
