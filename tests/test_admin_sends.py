"""Sending from the dashboard: the confirmation shows the recipient count, the send reaches the
SMTP server, progress is reported, a send can be paused and resumed, and its delivery report
downloads as CSV. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import Engine, select

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Issue, IssueStatus, SendRun
from newsletter.sending.sender import run_sender
from subscribers.models import SubscriberStatus
from tests.admin_support import Admin, add_readers, open_site, signed_in
from tests.conftest import ConfigFactory
from tests.delivery_support import FaultHandler
from tests.harness import SMTPServer

READERS = ["ana@example.org", "=cmd@example.org", "bea@example.org"]


@pytest.fixture
def site(make_config: ConfigFactory, db_url: str, smtp_server: SMTPServer) -> tuple[Config, Engine]:
    config = make_config(db_url, smtp_port=smtp_server.port)
    engine, _ = open_site(config)
    add_readers(engine, READERS)
    add_readers(engine, ["gone@example.org"], SubscriberStatus.UNSUBSCRIBED)
    return config, engine


@pytest.fixture
def admin(site: tuple[Config, Engine]) -> Admin:
    admin = signed_in(*site)
    admin.post(
        "/admin/issue/links",
        {"url": "https://example.org/a", "title": "Un lien", "source": "Mediapart"},
    )
    return admin


def _start(admin: Admin) -> int:
    confirm = admin.client.get("/admin/issue/send")
    assert confirm.status_code == 200
    assert '<strong id="recipient-count">3</strong>' in confirm.text
    response = admin.post("/admin/issue/send", {"confirm": "yes"})
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    location = response.headers["location"]  # type: ignore[attr-defined]
    return int(location.rsplit("/", 1)[1])


async def test_send_now_reaches_every_active_subscriber(
    site: tuple[Config, Engine], admin: Admin, smtp_server: SMTPServer
) -> None:
    """After confirmation the issue goes to the 3 active subscribers; progress and the CSV
    report show it done."""
    config, engine = site
    run_id = _start(admin)
    page = admin.client.get(f"/admin/sends/{run_id}")
    assert page.status_code == 200 and 'http-equiv="refresh"' in page.text
    await run_sender(config, engine, stop_when_idle=True)
    assert sorted(smtp_server.handler.recipients()) == sorted(READERS)
    progress = admin.client.get(f"/admin/sends/{run_id}/progress.json").json()
    assert progress["status"] == "done" and progress["sent"] == 3 and progress["pending"] == 0
    page = admin.client.get(f"/admin/sends/{run_id}")
    assert 'http-equiv="refresh"' not in page.text and '<dd id="count-sent">3</dd>' in page.text
    report = admin.client.get(f"/admin/sends/{run_id}/report.csv")
    assert report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert sorted(r["email"] for r in rows) == sorted(
        ["ana@example.org", "'=cmd@example.org", "bea@example.org"]
    )
    assert {r["status"] for r in rows} == {"sent"}
    with transaction(engine) as session:
        assert session.scalars(select(Issue.status)).one() == IssueStatus.SENT
    listing = admin.client.get("/admin/sends")
    assert f"/admin/sends/{run_id}/report.csv" in listing.text


async def test_paused_send_sends_nothing_until_resumed(
    site: tuple[Config, Engine], admin: Admin, smtp_server: SMTPServer
) -> None:
    """A paused send delivers nothing; after resume it finishes."""
    config, engine = site
    run_id = _start(admin)
    assert admin.post(f"/admin/sends/{run_id}/pause", {"reason": "oups"}).status_code == 303  # type: ignore[attr-defined]
    await run_sender(config, engine, stop_when_idle=True)
    assert smtp_server.received() == []
    with transaction(engine) as session:
        run = session.scalars(select(SendRun)).one()
        assert run.status == "paused" and run.pause_reason == "oups"
    assert admin.post(f"/admin/sends/{run_id}/resume").status_code == 303  # type: ignore[attr-defined]
    await run_sender(config, engine, stop_when_idle=True)
    assert len(smtp_server.handler.recipients()) == 3


def test_send_without_links_is_refused(site: tuple[Config, Engine]) -> None:
    """With nothing queued, "send now" explains why and starts no send."""
    config, engine = site
    admin = signed_in(config, engine)
    response = admin.post("/admin/issue/send", {"confirm": "yes"})
    assert response.status_code == 422  # type: ignore[attr-defined]
    with transaction(engine) as session:
        assert session.scalars(select(SendRun)).all() == []


async def test_bounces_show_as_failed_with_the_latest_errors(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """A 550 for one recipient counts as failed; the send page lists its error and the CSV
    report marks that recipient bounced."""
    handler = FaultHandler(
        rcpt_reply=lambda address, tries: (
            "550 5.1.1 no such user" if address.startswith("bea") else None
        )
    )
    with SMTPServer(handler) as server:
        config = make_config(sqlite_url, smtp_port=server.port)
        engine, _ = open_site(config)
        add_readers(engine, ["ana@example.org", "bea@example.org"])
        admin = signed_in(config, engine)
        admin.post("/admin/issue/links", {"url": "https://example.org/a", "title": "Un lien"})
        response = admin.post("/admin/issue/send", {"confirm": "yes"})
        run_id = int(response.headers["location"].rsplit("/", 1)[1])  # type: ignore[attr-defined]
        await run_sender(config, engine, stop_when_idle=True)
    progress = admin.client.get(f"/admin/sends/{run_id}/progress.json").json()
    assert progress["sent"] == 1 and progress["failed"] == 1
    assert progress["last_errors"][0]["email"] == "bea@example.org"
    page = admin.client.get(f"/admin/sends/{run_id}")
    assert "no such user" in page.text and '<dd id="count-failed">1</dd>' in page.text
    report = admin.client.get(f"/admin/sends/{run_id}/report.csv").text
    assert "bea@example.org,bounced" in report and "ana@example.org,sent" in report


def test_send_page_and_status_name_a_sender_that_stopped(
    site: tuple[Config, Engine], admin: Admin
) -> None:
    """Rows held by a sender whose process is gone: the send page says so in French, with its
    pid and host, and `send status` says so too."""
    import subprocess
    import sys

    from click.testing import CliRunner
    from sqlalchemy import update

    from newsletter.cli import main
    from newsletter.models import Delivery
    from newsletter.sending.ledger import Owner

    config, engine = site
    run_id = _start(admin)
    host = Owner.this_process().host
    gone_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_pid.wait()
    with transaction(engine) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.run_id == run_id)
            .values(status="sending", claim_host=host, claim_pid=gone_pid.pid, claim_token="t")
        )
    page = admin.client.get(f"/admin/sends/{run_id}")
    held = f"3 messages détenus par un expéditeur arrêté (pid {gone_pid.pid} sur {host})"
    assert held in page.text and "à reprendre à" in page.text
    result = CliRunner().invoke(main, ["--config", str(config.path), "send", "status"])
    assert result.exit_code == 0, result.output
    assert f"3 messages held by a sender that stopped (pid {gone_pid.pid} on {host})" in (
        result.output
    )
