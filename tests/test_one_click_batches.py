"""One-click unsubscribes written in batches (group commit), the CSRF cookie only where a
form needs it, and link tokens kept out of the access log."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from newsletter.config import Config
from newsletter.db import read_transaction, transaction
from newsletter.errors import TokenError
from newsletter.web.security import CSRF_COOKIE, HideTokensFilter
from newsletter.web.writer import WriteQueue
from subscribers import optin
from subscribers.models import ConsentEvent, Subscriber
from subscribers.store import ConsentContext, Departure, deactivate_many
from subscribers.tokens import make_unsubscribe_token
from tests.conftest import ConfigFactory
from tests.subscriber_helpers import client_for

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CONTEXT = ConsentContext(source="one-click", ip="203.0.113.9", user_agent="Gmail")


def add_people(engine: Engine, count: int, status: str = "active") -> list[int]:
    with transaction(engine) as session:
        people = [
            Subscriber(
                email=f"p{i}-{status}@example.org",
                email_key=f"p{i}-{status}@example.org",
                name="Zoé",
                status=status,
                source="test",
                language="fr",
                created_at=NOW,
                confirmed_at=NOW,
                soft_bounces=0,
            )
            for i in range(count)
        ]
        session.add_all(people)
        session.flush()
        return [p.id for p in people]


def statuses(engine: Engine) -> dict[int, str]:
    with read_transaction(engine) as session:
        return {
            int(i): str(s) for i, s in session.execute(select(Subscriber.id, Subscriber.status))
        }


def departures_logged(engine: Engine) -> list[tuple[int, str, datetime]]:
    with read_transaction(engine) as session:
        rows = session.execute(
            select(ConsentEvent.subscriber_id, ConsentEvent.kind, ConsentEvent.at).order_by(
                ConsentEvent.id
            )
        )
        return [(int(i), str(k), at) for i, k, at in rows]


def test_deactivate_many_changes_each_person_once_and_logs_each_departure(
    public_site: tuple[Config, Engine],
) -> None:
    """One batch with the subscribed, the already unsubscribed, an erased id and a person
    named twice: each subscribed person changes once, with one consent event at their own
    time, and nobody else is logged."""
    config, engine = public_site
    active = add_people(engine, 3)
    gone = add_people(engine, 1, status="unsubscribed")
    at = [NOW + timedelta(seconds=i) for i in range(6)]
    batch = [
        Departure(active[0], at[0], CONTEXT),
        Departure(gone[0], at[1], CONTEXT),
        Departure(active[1], at[2], CONTEXT),
        Departure(999_999, at[3], CONTEXT),  # erased
        Departure(active[0], at[4], CONTEXT),  # twice
        Departure(active[2], at[5], CONTEXT),
    ]
    with transaction(engine) as session:
        flags = deactivate_many(session, config.secret_key, batch)
    assert flags == [True, False, True, False, False, True]
    assert statuses(engine) == {
        active[0]: "unsubscribed",
        active[1]: "unsubscribed",
        active[2]: "unsubscribed",
        gone[0]: "unsubscribed",
    }
    assert departures_logged(engine) == [
        (active[0], "unsubscribed", at[0]),
        (active[1], "unsubscribed", at[2]),
        (active[2], "unsubscribed", at[5]),
    ]


def test_unsubscribe_many_returns_bad_tokens_and_keeps_the_others(
    public_site: tuple[Config, Engine],
) -> None:
    """A forged token in a batch comes back as its TokenError; the valid ones still count."""
    config, engine = public_site
    first, second = add_people(engine, 2)
    good = make_unsubscribe_token(config.secret_key, first)
    forged = make_unsubscribe_token("another-secret-entirely-0123456789", second)
    requests = [
        optin.Unsubscription(good, NOW, CONTEXT),
        optin.Unsubscription(forged, NOW, CONTEXT),
    ]
    with transaction(engine) as session:
        outcomes = optin.unsubscribe_many(session, config, requests)
    assert outcomes[0] is True and isinstance(outcomes[1], TokenError)
    assert statuses(engine) == {first: "unsubscribed", second: "active"}


def test_the_write_queue_commits_items_queued_together_in_one_batch(
    public_site: tuple[Config, Engine],
) -> None:
    """Items queued while the writer is busy are done by one call in one transaction; each
    caller gets its own result, and an item returned as an exception is raised to its
    caller alone."""
    _, engine = public_site
    people = add_people(engine, 40)
    queue = WriteQueue(engine, idle_seconds=0.1)
    calls: list[int] = []

    def batch(session: Session, items: Sequence[Any]) -> Sequence[Any]:
        calls.append(len(items))
        flags = deactivate_many(session, "secret", [Departure(i, NOW, CONTEXT) for i in items])
        return [
            flag if item != people[7] else TokenError("this link is not valid")
            for item, flag in zip(items, flags, strict=True)
        ]

    release = threading.Event()

    def hold(session: Session) -> None:
        release.wait(5)  # the writer is busy: the batch items queue up behind

    async def scenario() -> list[object]:
        busy = asyncio.ensure_future(queue.run(hold))
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(queue.run_batched(batch, i)) for i in people]
        await asyncio.sleep(0.05)
        release.set()
        await busy
        return list(await asyncio.gather(*waiting, return_exceptions=True))

    results = asyncio.run(scenario())
    assert calls == [40]
    assert isinstance(results[7], TokenError)
    assert results[:7] == [True] * 7 and results[8:] == [True] * 32
    assert set(statuses(engine).values()) == {"unsubscribed"}


def test_a_failing_batch_is_retried_item_by_item(public_site: tuple[Config, Engine]) -> None:
    """When the batch call raises, its transaction is rolled back and each item runs alone:
    only the item that fails gets the error, the others are committed."""
    _, engine = public_site
    people = add_people(engine, 5)
    queue = WriteQueue(engine, idle_seconds=0.1)

    def batch(session: Session, items: Sequence[Any]) -> Sequence[Any]:
        flags = deactivate_many(session, "secret", [Departure(i, NOW, CONTEXT) for i in items])
        if people[2] in items:
            raise RuntimeError("this one breaks the batch")
        return flags

    async def scenario() -> list[object]:
        jobs = [queue.run_batched(batch, i) for i in people]
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    results = asyncio.run(scenario())
    assert isinstance(results[2], RuntimeError)
    assert [r for i, r in enumerate(results) if i != 2] == [True] * 4
    found = statuses(engine)
    assert found[people[2]] == "active"
    assert [found[p] for i, p in enumerate(people) if i != 2] == ["unsubscribed"] * 4
    with read_transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 4


async def test_parallel_one_click_posts_all_count_and_set_no_cookie(
    make_config: ConfigFactory, engine: Engine, db_url: str
) -> None:
    """Fifty one-click POSTs at once (batched on SQLite, one transaction each on PostgreSQL):
    fifty 200s, fifty people unsubscribed with one consent event each, and not one CSRF
    cookie (no form was shown); the unsubscribe page (a form) still gets its cookie."""
    config = make_config(db_url)
    people = add_people(engine, 50)
    async with client_for(config, engine) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"/u/{make_unsubscribe_token(config.secret_key, p)}",
                    content=b"List-Unsubscribe=One-Click",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                for p in people
            )
        )
        page = await client.get(f"/u/{make_unsubscribe_token(config.secret_key, people[0])}")
    assert [r.status_code for r in responses] == [200] * 50
    assert not any("set-cookie" in r.headers for r in responses)
    assert CSRF_COOKIE in page.headers.get("set-cookie", "")
    assert set(statuses(engine).values()) == {"unsubscribed"}
    logged = departures_logged(engine)
    assert sorted(i for i, _, _ in logged) == sorted(people)
    with read_transaction(engine) as session:
        sources = set(session.scalars(select(ConsentEvent.source)))
    assert sources == {"one-click"}


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/u/eyJhIjoxfQ.c2lnbmF0dXJl", "/u/…"),
        ("/confirm/WzEsMl0.c2ln/renew", "/confirm/…/renew"),
        ("/archive/12?x=1", "/archive/12?x=1"),
    ],
)
def test_access_log_hides_link_tokens(path: str, shown: str) -> None:
    """uvicorn's access line for a link with a token shows the path without the token."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", path, "1.1", 200),
        None,
    )
    assert HideTokensFilter().filter(record)
    assert record.getMessage() == f'127.0.0.1:5000 - "POST {shown} HTTP/1.1" 200'
