"""Feeds in: RSS, Atom and JSON Feed items are queued once, de-duplicated by canonical URL,
with conditional GETs; a broken feed keeps its state and shows its error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from newsletter.cli import main
from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.intake.fetcher import FetchPolicy
from newsletter.models import Feed, Link
from newsletter.services import feeds as feed_service
from tests.admin_support import make_client, make_editor, signed_in
from tests.conftest import ConfigFactory
from tests.feeds_support import atom, json_feed, rss
from tests.intake_support import HOST, PageServer, Reply, page_server

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
RECENT = "Wed, 25 Nov 2026 10:00:00 GMT"
OLD = "Thu, 01 Oct 2026 10:00:00 GMT"


@pytest.fixture
def pages() -> Iterator[PageServer]:
    with page_server() as server:
        yield server


@pytest.fixture
def site(make_config: ConfigFactory, db_url: str) -> Iterator[tuple[Config, Engine]]:
    config = make_config(db_url, intake__allow_networks=f"{HOST}/32", intake__timeout=2.0)
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    yield config, engine
    engine.dispose()


def register(engine: Engine, url: str) -> int:
    with transaction(engine) as session:
        return feed_service.add_feed(session, url, NOW).id


def poll(config: Config, engine: Engine, feed_id: int, now: datetime = NOW):  # type: ignore[no-untyped-def]
    return feed_service.poll_feed(engine, FetchPolicy.from_config(config), feed_id, now)


def links(engine: Engine) -> list[tuple[str, str, str, str]]:
    with transaction(engine) as session:
        rows = session.scalars(select(Link).order_by(Link.position))
        return [(link.url, link.title, link.source, link.excerpt) for link in rows]


def test_rss_items_are_queued_once_and_old_ones_skipped_on_first_poll(
    site: tuple[Config, Engine], pages: PageServer
) -> None:
    """RSS 2.0: recent items are queued with title, source and a plain-text excerpt; items
    older than a week on the first poll are only marked seen; a second poll queues only
    the new item."""
    config, engine = site
    items = [
        ("g2", "https://communs.example/b?utm_source=rss", "Deuxième billet", RECENT),
        ("g1", "https://presse.example/a", "Premier article", RECENT),
        ("g0", "https://communs.example/old", "Vieux billet", OLD),
    ]
    pages.page("/rss", rss(items), "application/rss+xml")
    feed_id = register(engine, pages.base + "/rss")
    assert poll(config, engine, feed_id).queued == 2
    assert links(engine) == [
        (
            "https://presse.example/a",
            "Premier article",
            "presse.example",
            "Résumé de Premier article.",
        ),
        (
            "https://communs.example/b?utm_source=rss",
            "Deuxième billet",
            "Le blog des communs",
            "Résumé de Deuxième billet.",
        ),
    ]
    newer = ("g3", "https://communs.example/c", "Troisième billet", RECENT)
    pages.page("/rss", rss([newer, *items]), "application/rss+xml")
    result = poll(config, engine, feed_id, NOW + timedelta(hours=1))
    assert result.queued == 1 and len(links(engine)) == 3


def test_atom_and_json_feed_items_are_queued(
    site: tuple[Config, Engine], pages: PageServer
) -> None:
    """Atom entries and JSON Feed items become links too."""
    config, engine = site
    pages.page(
        "/atom",
        atom([("urn:1", "https://a.example/x", "Un favori", "2026-11-26T08:00:00Z")]),
        "application/atom+xml",
    )
    pages.page(
        "/json",
        json_feed([("9", "https://b.example/y", "Une note", "2026-11-26T09:00:00Z")]),
        "application/feed+json",
    )
    assert poll(config, engine, register(engine, pages.base + "/atom")).queued == 1
    assert poll(config, engine, register(engine, pages.base + "/json")).queued == 1
    assert [(url, title, excerpt) for url, title, _, excerpt in links(engine)] == [
        ("https://a.example/x", "Un favori", "Pourquoi Un favori compte."),
        ("https://b.example/y", "Une note", "Note sur Une note."),
    ]


def test_changing_item_ids_do_not_queue_the_same_page_twice(
    site: tuple[Config, Engine], pages: PageServer
) -> None:
    """A feed that gives its items new ids on every fetch: the canonical URL catches them."""
    config, engine = site
    counter = iter(range(100))
    pages.routes["/unstable"] = lambda _h: Reply(
        content_type="application/rss+xml",
        body=rss([(f"id-{next(counter)}", "https://c.example/p?fbclid=1", "Toujours lui", RECENT)]),
    )
    feed_id = register(engine, pages.base + "/unstable")
    assert poll(config, engine, feed_id).queued == 1
    assert poll(config, engine, feed_id, NOW + timedelta(hours=1)).queued == 0
    assert len(links(engine)) == 1


def test_conditional_get_answered_304_changes_nothing(
    site: tuple[Config, Engine], pages: PageServer
) -> None:
    """The ETag is kept and sent back; a 304 queues nothing and is no error."""
    config, engine = site
    body = rss([("g1", "https://d.example/1", "Un lien", RECENT)])
    pages.routes["/etag"] = lambda _h: Reply(
        content_type="application/rss+xml", body=body, etag='"v1"'
    )
    feed_id = register(engine, pages.base + "/etag")
    assert poll(config, engine, feed_id).queued == 1
    second = poll(config, engine, feed_id, NOW + timedelta(hours=1))
    assert second.not_modified and second.queued == 0 and second.error is None
    _, _, headers = pages.requests[-1]
    assert headers["if-none-match"] == '"v1"'
    with transaction(engine) as session:
        feed = session.get_one(Feed, feed_id)
        assert feed.etag == '"v1"' and feed.ok_at == NOW + timedelta(hours=1)


def test_malformed_feed_keeps_its_state_and_shows_its_error(
    site: tuple[Config, Engine], pages: PageServer
) -> None:
    """A feed that turns into garbage keeps its validators and items; its error is stored
    (French on the dashboard) and the other feeds are still read."""
    config, engine = site
    pages.page("/good", rss([("g1", "https://e.example/1", "Bon", RECENT)]), "application/rss+xml")
    pages.page("/bad", b"<html><body>Pas un flux</body></html>", "text/html")
    bad, good = register(engine, pages.base + "/bad"), register(engine, pages.base + "/good")
    results = feed_service.poll_all_feeds(engine, FetchPolicy.from_config(config), NOW)
    assert [r.feed_id for r in results] == [bad, good]
    assert results[0].error is not None
    assert results[0].error.reason == "the address does not serve a readable feed"
    assert results[1].queued == 1
    if config.database_url.startswith("sqlite"):
        make_editor(engine)
        page = signed_in(config, engine).client.get("/admin/feeds").text
        assert "l’adresse ne sert pas de flux lisible" in page


def test_cli_and_api_manage_feeds(site: tuple[Config, Engine], pages: PageServer) -> None:
    """`feeds add|list|poll|remove` and the same through the API."""
    config, engine = site
    pages.page(
        "/rss", rss([("g1", "https://f.example/1", "Via la CLI", RECENT)]), "application/rss+xml"
    )
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(main, ["--config", str(config.path), "feeds", *args], env={})
        assert result.exit_code == 0, result.output
        return result.output

    assert "1 link(s) queued" in cli("add", pages.base + "/rss")
    assert "Le blog des communs" in cli("list")
    assert "not modified" in cli("poll") or "0 link(s) queued" in cli("poll")
    cli("remove", "1")
    assert "No feed registered." in cli("list")
    if not config.database_url.startswith("sqlite"):
        return
    token = make_editor(engine)
    client = make_client(config, engine)
    client.headers["authorization"] = f"Bearer {token}"
    created = client.post("/api/feeds", json={"url": pages.base + "/rss"})
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "Le blog des communs"
    assert client.post("/api/feeds", json={"url": pages.base + "/rss"}).status_code == 409
    listed = client.get("/api/feeds").json()["feeds"]
    assert [feed["url"] for feed in listed] == [pages.base + "/rss"]
    polled = client.post("/api/feeds/poll").json()["results"]
    assert polled[0]["error"] == ""
    assert client.delete(f"/api/feeds/{listed[0]['id']}").status_code == 204
    assert client.get("/api/feeds").json()["feeds"] == []


async def test_feed_job_runs_before_the_slot_and_queues_new_items(
    site: tuple[Config, Engine], pages: PageServer
) -> None:
    """The scheduler holds a feeds job 15 minutes before the weekly slot (and an hourly one);
    running it queues the feed's new items."""
    from scheduler import FEEDS_JOB, FEEDS_LEAD_JOB, build_scheduler, run_feed_poll

    config, engine = site
    scheduler = build_scheduler(config, engine, now_fn=lambda: NOW)
    lead = scheduler.get_job(FEEDS_LEAD_JOB)
    assert scheduler.get_job(FEEDS_JOB) is not None and lead is not None
    fields = {field.name: str(field) for field in lead.trigger.fields}
    assert (fields["day_of_week"], fields["hour"], fields["minute"]) == ("sun", "7", "45")
    pages.page(
        "/rss",
        rss([("g1", "https://g.example/1", "Avant dimanche", RECENT)]),
        "application/rss+xml",
    )
    register(engine, pages.base + "/rss")
    await run_feed_poll(config, engine, lambda: NOW)
    assert [title for _, title, _, _ in links(engine)] == ["Avant dimanche"]
