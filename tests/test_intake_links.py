"""Link intake end to end: a URL alone becomes a filled card through the CLI, the dashboard
(with its suggest step and the share page) and the API, against a real loopback HTTP server."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from newsletter.cli import main
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.intake.fetcher import FetchPolicy
from newsletter.models import Issue, IssueStatus, Link
from newsletter.services import intake
from tests.admin_support import Admin, make_client, open_site, signed_in
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer
from tests.intake_support import HOST, PageServer, page_server

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CARD_PATHS = ["/og", "/jsonld", "/title-only", "/latin1", "/big"]


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with page_server() as server:
        yield server


@pytest.fixture
def site(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> tuple[Config, Engine, str]:
    config = make_config(
        sqlite_url,
        smtp_port=smtp_server.port,
        intake__allow_networks=f"{HOST}/32",
        intake__timeout=1.5,
    )
    engine, token = open_site(config)
    return config, engine, token


@pytest.fixture
def admin(site: tuple[Config, Engine, str]) -> Admin:
    config, engine, _ = site
    return signed_in(config, engine)


def queued(engine: Engine) -> list[Link]:
    with transaction(engine) as session:
        links = list(session.scalars(select(Link).order_by(Link.position)))
        session.expunge_all()
    return links


def test_editor_pastes_five_urls_and_gets_five_filled_cards(
    site: tuple[Config, Engine, str], admin: Admin, pages: PageServer
) -> None:
    """Five URLs posted with no title become five links with title, source and excerpt."""
    _, engine, _ = site
    for path in CARD_PATHS:
        response = admin.post("/admin/issue/links", {"url": pages.base + path})
        assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    links = queued(engine)
    assert [link.title for link in links] == [
        "Le vélo gagne du terrain dans les villes moyennes",
        "Open data : les communes publient enfin leurs budgets",
        "Pourquoi les budgets participatifs plafonnent",
        "Élections à Besançon : le débat numérique",
        "Un très long rapport",
    ]
    assert [link.source for link in links] == [
        "Le Journal des Villes",
        "Territoires Numériques",
        HOST,
        HOST,
        HOST,
    ]
    assert all(link.excerpt for link in links)
    page = admin.client.get("/admin/issue").text
    assert "Le vélo gagne du terrain dans les villes moyennes" in page


def test_suggest_step_shows_the_card_and_saves_nothing(
    site: tuple[Config, Engine, str], admin: Admin, pages: PageServer
) -> None:
    """The suggest button fills the form from the page; the queue stays empty until saved."""
    _, engine, _ = site
    response = admin.post("/admin/issue/links/suggest", {"url": pages.base + "/tracked"})
    assert response.status_code == 200  # type: ignore[attr-defined]
    page = html.unescape(response.text)  # type: ignore[attr-defined]
    assert 'value="Le vélo gagne du terrain dans les villes moyennes"' in page
    assert 'value="Le Journal des Villes"' in page
    assert f'value="{pages.base}/og"' in page  # canonical, without utm_* and fbclid
    assert queued(engine) == []


def test_typed_fields_win_over_the_page(
    site: tuple[Config, Engine, str], pages: PageServer
) -> None:
    """What the editor typed is kept; only the empty fields are filled."""
    config, engine, _ = site
    added = intake.add_link(
        engine,
        FetchPolicy.from_config(config),
        url=pages.base + "/og",
        title="",
        source="Ma source",
        now=NOW,
    )
    assert added.link.source == "Ma source"
    assert added.link.title == "Le vélo gagne du terrain dans les villes moyennes"


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/missing", "the page answered HTTP 404"),
        ("/pdf", "the link is not a web page but application/pdf"),
        ("/slow", "the site did not answer within 1.5 seconds"),
        ("/to-loopback", "127.0.0.1 is not a public address"),
    ],
)
def test_failed_fetch_leaves_the_link_queued_and_says_why(
    site: tuple[Config, Engine, str], admin: Admin, pages: PageServer, path: str, why: str
) -> None:
    """A page that cannot be read: the link is queued with what the editor typed (the URL as
    title) and the page says why, in French."""
    _, engine, _ = site
    response = admin.post("/admin/issue/links", {"url": pages.base + path, "tags": "x"})
    assert response.status_code == 200  # type: ignore[attr-defined]
    [link] = queued(engine)
    assert link.url == pages.base + path and link.title == pages.base + path
    assert link.tags == "x"
    text = html.unescape(response.text)  # type: ignore[attr-defined]
    assert "La page n’a pas pu être lue" in text
    english = intake.add_link(
        engine, FetchPolicy.from_config(site[0]), url=pages.base + path, now=NOW
    )
    assert english.problem is not None and why in str(english.problem)


def test_same_page_already_queued_or_sent_is_named(
    site: tuple[Config, Engine, str], pages: PageServer
) -> None:
    """A second link to the same canonical page warns, naming the queued link, then the
    past issue once the first was sent."""
    config, engine, _ = site
    policy = FetchPolicy.from_config(config)
    first = intake.add_link(engine, policy, url=pages.base + "/og", now=NOW)
    assert first.duplicate is None
    second = intake.add_link(engine, policy, url=pages.base + "/tracked", now=NOW)
    assert second.duplicate is not None and second.duplicate.link_id == first.link.id
    assert second.duplicate.render(str) == (
        "Already queued for the next issue: Le vélo gagne du terrain dans les villes moyennes"
    )
    with transaction(engine) as session:
        issue = Issue(number=7, subject="#7", status=IssueStatus.SENT, created_at=NOW)
        session.add(issue)
        session.flush()
        for link in session.scalars(select(Link)):
            link.issue_id = issue.id
    third = intake.suggest(engine, policy, pages.base + "/og?utm_campaign=x")
    assert third.duplicate is not None and third.duplicate.issue_number == 7
    assert "Already in issue #7" in third.duplicate.render(str)


def test_cli_links_add_without_title_fills_the_card(
    site: tuple[Config, Engine, str], pages: PageServer
) -> None:
    """`links add URL` alone queues the page's card."""
    config, engine, _ = site
    result = CliRunner().invoke(
        main, ["--config", str(config.path), "links", "add", pages.base + "/jsonld"], env={}
    )
    assert result.exit_code == 0, result.output
    assert "Open data : les communes publient enfin leurs budgets" in result.output
    [link] = queued(engine)
    assert link.source == "Territoires Numériques"
    failed = CliRunner().invoke(
        main, ["--config", str(config.path), "links", "add", pages.base + "/missing"], env={}
    )
    assert failed.exit_code == 0
    assert "the page answered HTTP 404" in failed.output


def test_api_post_links_without_title_fills_the_card(
    site: tuple[Config, Engine, str], pages: PageServer
) -> None:
    """POST /api/links with only a URL answers 201 with the filled card, or the reason."""
    config, engine, token = site
    client = make_client(config, engine)
    client.headers["authorization"] = f"Bearer {token}"
    response = client.post("/api/links", json={"url": pages.base + "/og"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["title"] == "Le vélo gagne du terrain dans les villes moyennes"
    assert body["source"] == "Le Journal des Villes"
    again = client.post("/api/links", json={"url": pages.base + "/pdf"}).json()
    assert again["fetch_error"] == "the link is not a web page but application/pdf"
    dup = client.post("/api/links", json={"url": pages.base + "/og?fbclid=1"}).json()
    assert dup["duplicate"]["link_id"] == body["id"]


def test_share_page_prefills_from_bookmarklet_and_share_sheet(
    site: tuple[Config, Engine, str], admin: Admin, pages: PageServer
) -> None:
    """The confirm page takes the URL (also from a shared text), the selection as excerpt,
    and stores nothing until posted."""
    _, engine, _ = site
    response = admin.client.get(
        "/admin/intake/share",
        params={"text": f"À lire {pages.base}/og", "title": "Titre du partage"},
    )
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert f'value="{pages.base}/og"' in page
    assert 'value="Le vélo gagne du terrain dans les villes moyennes"' in page
    assert "À lire" in page  # the shared text, without the URL, is the excerpt
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "<script>" not in response.text
    assert queued(engine) == []


def test_manifest_declares_the_share_target(site: tuple[Config, Engine, str]) -> None:
    """The Web Share Target manifest is served and allowed by the dashboard's CSP."""
    config, engine, _ = site
    client = make_client(config, engine)
    manifest = client.get("/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.json()["share_target"]["action"] == "/admin/intake/share"
    login = client.get("/admin/login")
    assert "manifest-src 'self'" in login.headers["content-security-policy"]
