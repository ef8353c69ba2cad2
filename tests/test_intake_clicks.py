"""Readers' clicks: signed /r/ISSUE/LINK redirects that count per link and nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select

from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.intake.clicks import click_signature, click_url, record_click
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, Link, SendRun
from newsletter.sending.publish import publish_next_issue
from newsletter.web.app import create_app
from tests.admin_support import make_client
from tests.conftest import ConfigFactory
from tests.harness import free_port
from tests.web_support import ServerThread

NOW = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def site(make_config: ConfigFactory, db_url: str) -> Iterator[tuple[Config, Engine]]:
    config = make_config(db_url, tracking__clicks=True)
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    yield config, engine
    engine.dispose()


def published(config: Config, engine: Engine) -> tuple[Issue, list[Link]]:
    """Issue #1 with two links, published (rendered and its send run started)."""
    with transaction(engine) as session:
        for n in (1, 2):
            queue_link(
                session, url=f"https://example.org/{n}", title=f"Lien {n}", source="S", now=NOW
            )
        issue = publish_next_issue(session, config, NOW).issue
        links = list(session.scalars(select(Link).where(Link.issue_id == issue.id)))
        session.expunge_all()
    return issue, links


def counts(engine: Engine, link_id: int) -> tuple[int, int]:
    with transaction(engine) as session:
        link = session.get_one(Link, link_id)
        return link.clicks, link.bot_clicks


def test_digest_links_go_through_signed_redirects_and_archive_stays_direct(
    site: tuple[Config, Engine],
) -> None:
    """With clicks on, the digest links are /r/ISSUE/LINK?s=…, its footer says clicks are
    counted anonymously; the archive keeps the direct links."""
    config, engine = site
    issue, links = published(config, engine)
    for link in links:
        tracked = click_url(config.base_url, config.secret_key, issue.number, link.id)
        assert tracked.replace("&", "&amp;") in issue.html or tracked in issue.html
        assert tracked in issue.text
        assert f'href="{link.url}"' not in issue.html
    assert "Les clics sur les liens sont comptés anonymement" in issue.text
    if config.database_url.startswith("sqlite"):
        with transaction(engine) as session:
            sent = session.get_one(Issue, issue.id)
            sent.status, sent.sent_at = IssueStatus.SENT, NOW
        archive = make_client(config, engine).get(f"/archive/{issue.number}").text
        assert 'href="https://example.org/1"' in archive and "/r/" not in archive


def test_redirect_counts_and_cannot_be_pointed_elsewhere(site: tuple[Config, Engine]) -> None:
    """A signed hit counts and redirects to the stored URL; a forged signature, another
    link's signature, or an extra target parameter change nothing."""
    config, engine = site
    issue, (first, second) = published(config, engine)
    client = make_client(config, engine)
    client.headers["user-agent"] = BROWSER
    good = f"/r/{issue.number}/{first.id}?s={click_signature(config.secret_key, 1, first.id)}"
    response = client.get(good + "&url=https://evil.example/")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.org/1"
    assert "set-cookie" not in response.headers
    assert counts(engine, first.id) == (1, 0)
    forged = client.get(f"/r/{issue.number}/{first.id}?s=AAAAAAAAAAAAAAAAAAAAAA")
    assert forged.status_code == 400 and "location" not in forged.headers
    swapped = client.get(f"/r/{issue.number}/{second.id}?s={good.rsplit('=', 1)[1]}")
    assert swapped.status_code == 400
    assert client.get(f"/r/{issue.number}/{first.id}").status_code == 400
    other_issue = client.get(f"/r/2/{first.id}?s={click_signature(config.secret_key, 2, first.id)}")
    assert other_issue.status_code == 404
    assert counts(engine, first.id) == (1, 0) and counts(engine, second.id) == (0, 0)


def test_scanners_are_counted_apart(site: tuple[Config, Engine]) -> None:
    """HEAD requests, scanner user agents and hits within a second of a delivery count as
    bots, not clicks."""
    config, engine = site
    issue, (first, _) = published(config, engine)
    client = make_client(config, engine)
    path = f"/r/1/{first.id}?s={click_signature(config.secret_key, 1, first.id)}"
    assert client.head(path, headers={"user-agent": BROWSER}).status_code == 302
    client.get(path, headers={"user-agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"})
    client.get(path, headers={"user-agent": "python-requests/2.32"})
    assert counts(engine, first.id) == (0, 3)
    with transaction(engine) as session:
        run = session.scalars(select(SendRun).where(SendRun.issue_id == issue.id)).one()
        session.add(
            Delivery(run_id=run.id, email="a@example.org", status=DeliveryStatus.SENT, sent_at=NOW)
        )
    with transaction(engine) as session:
        for offset in (timedelta(milliseconds=400), timedelta(seconds=5)):
            record_click(session, 1, first.id, method="GET", user_agent=BROWSER, now=NOW + offset)
    assert counts(engine, first.id) == (1, 4)


def test_counts_are_exact_under_200_concurrent_hits(site: tuple[Config, Engine]) -> None:
    """200 hits at once through a real server give a count of exactly 200."""
    config, engine = site
    _, (first, _) = published(config, engine)
    port = free_port()
    path = f"/r/1/{first.id}?s={click_signature(config.secret_key, 1, first.id)}"

    async def hit_all() -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            limits=limits,
            timeout=60,
            headers={"user-agent": BROWSER},
        ) as client:
            responses = await asyncio.gather(*(client.get(path) for _ in range(200)))
        return [response.status_code for response in responses]

    with ServerThread(create_app(config, engine), port):
        statuses = asyncio.run(hit_all())
    assert statuses == [302] * 200
    assert counts(engine, first.id) == (200, 0)
