"""The store's two kinds of transaction, the web's SQLite writer thread, and publishing with
an issue rendered before the write transaction."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import make_engine, read_transaction, transaction, upgrade_database
from newsletter.errors import InvalidInputError
from newsletter.models import Issue, Link
from newsletter.sending import issue_to_render, publish_next_issue, render_issue
from newsletter.web.writer import WriteQueue

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Engine:
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    return engine


def _queue(session: Session, title: str) -> None:
    queue_link(
        session, url=f"https://example.org/{quote(title)}", title=title, source="Le Monde", now=NOW
    )


def test_a_read_transaction_does_not_wait_for_an_open_write(sqlite_engine: Engine) -> None:
    """While a write transaction holds SQLite's write lock, a read transaction in another
    thread reads the last committed state at once, and a write there fails loudly."""
    with transaction(sqlite_engine) as session:
        _queue(session, "committed")
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with transaction(sqlite_engine) as session:
            _queue(session, "uncommitted")
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        with read_transaction(sqlite_engine) as session:
            titles = list(session.scalars(select(Link.title)))
        assert titles == ["committed"]
        with pytest.raises(OperationalError), read_transaction(sqlite_engine) as session:
            _queue(session, "from a reader")
    finally:
        release.set()
        thread.join()
    with read_transaction(sqlite_engine) as session:
        assert session.scalar(select(func.count()).select_from(Link)) == 2
    with transaction(sqlite_engine) as session:  # the connection writes again after a read
        _queue(session, "after")


def test_read_transactions_read_on_every_backend(engine: Engine) -> None:
    """A read transaction sees what write transactions committed, on SQLite and PostgreSQL."""
    with transaction(engine) as session:
        _queue(session, "one")
    with read_transaction(engine) as session:
        assert list(session.scalars(select(Link.title))) == ["one"]


def test_the_write_queue_runs_writes_in_order_and_returns_results_and_errors(
    sqlite_engine: Engine,
) -> None:
    """Writes handed to the queue from the event loop commit in order; a failing write is
    rolled back and its exception raised to its caller, and the next write still runs."""
    queue = WriteQueue(sqlite_engine, idle_seconds=0.1)

    def failing(session: Session) -> None:
        _queue(session, "rolled back")
        raise InvalidInputError("refused")

    def count(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(Link)) or 0)

    async def scenario() -> list[object]:
        first = [queue.run(lambda s, i=i: _queue(s, f"link-{i}")) for i in range(20)]
        await asyncio.gather(*first)
        with pytest.raises(InvalidInputError):
            await queue.run(failing)
        results: list[object] = [await queue.run(count)]
        await asyncio.sleep(0.3)  # the idle thread ends; the next write starts another
        results.append(await queue.run(count))
        return results

    assert asyncio.run(scenario()) == [20, 20]
    with read_transaction(sqlite_engine) as session:
        titles = list(session.scalars(select(Link.title).order_by(Link.position, Link.id)))
    assert titles == [f"link-{i}" for i in range(20)]


def test_publishing_uses_the_issue_rendered_beforehand_only_when_it_is_the_same(
    engine: Engine, config: Config
) -> None:
    """An issue rendered before the write transaction is stored as is; when a link was queued
    in between, the issue is rendered again, so what is stored is what was assembled."""
    with transaction(engine) as session:
        _queue(session, "first")
    with read_transaction(engine) as session:
        prepared = render_issue(config, issue_to_render(session, config, NOW))
    marked = replace(prepared, rendered=replace(prepared.rendered, html="<p>beforehand</p>"))
    with transaction(engine) as session:
        published = publish_next_issue(session, config, NOW, prepared=marked)
        assert published.issue.html == "<p>beforehand</p>"

    with transaction(engine) as session:
        _queue(session, "second")
    with read_transaction(engine) as session:
        prepared = render_issue(config, issue_to_render(session, config, NOW))
    stale = replace(prepared, rendered=replace(prepared.rendered, html="<p>stale</p>"))
    with transaction(engine) as session:
        _queue(session, "third, queued meanwhile")
    with transaction(engine) as session:
        published = publish_next_issue(session, config, NOW, prepared=stale)
        assert "third, queued meanwhile" in published.issue.html
    with read_transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 2
