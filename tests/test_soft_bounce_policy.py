"""One soft-bounce policy, ``[bounces] soft_bounce_limit`` and ``soft_bounce_days``, for the
soft bounces the relay reports while sending and those DSNs report later; the old
``[subscribers] soft_bounce_limit`` still works, with a warning naming the new setting."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update

from newsletter.cli import main
from newsletter.config import DeprecatedName, load_config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.models import Delivery, DeliveryStatus
from newsletter.sending.service import run_sender
from newsletter.services.inbound import receive_message
from subscribers.models import ConsentEvent, Subscriber, SubscriberStatus
from tests.conftest import ConfigFactory
from tests.delivery_support import FaultHandler, add_subscribers, delivery_counts
from tests.harness import SMTPServer
from tests.inbound_support import T0, T1, sent_run, soft_dsn
from tests.test_faults import QUICK, start

OLD = "NEWSLETTER_SUBSCRIBERS_SOFT_BOUNCE_LIMIT"


@pytest.mark.parametrize("how", ["new", "deprecated"])
def test_the_sender_marks_bounced_at_the_bounces_limit(
    make_config: ConfigFactory, sqlite_url: str, how: str
) -> None:
    """A recipient the relay keeps refusing with 452 is marked bounced once its soft bounces
    reach ``[bounces] soft_bounce_limit`` (or the deprecated ``[subscribers]`` name)."""

    def rcpt(address: str, tries: int) -> str | None:
        return "452 4.2.2 mailbox full" if address == "reader3@example.net" else None

    with SMTPServer(FaultHandler(rcpt_reply=rcpt)) as server:
        limit = {"bounces__soft_bounce_limit": 1} if how == "new" else {}
        config = make_config(sqlite_url, smtp_port=server.port, smtp__max_attempts=1, **limit)
        if how == "deprecated":
            config = load_config(config.path, environ={OLD: "1"})
            assert config.get("bounces", "soft_bounce_limit") == 1
        engine = make_engine(sqlite_url)
        upgrade_database(engine)
        add_subscribers(engine, 20)
        run_id = start(engine)
        asyncio.run(run_sender(config, engine, options=QUICK))
        assert delivery_counts(engine, run_id) == {"sent": 19, "failed": 1}
        with transaction(engine) as session:
            bounced = list(
                session.scalars(
                    select(Subscriber.email).where(Subscriber.status == SubscriberStatus.BOUNCED)
                )
            )
            detail = session.scalar(
                select(ConsentEvent.detail).where(ConsentEvent.kind == "bounced")
            )
        assert bounced == ["reader3@example.net"]
        assert detail == "1 soft bounces in a row"
        engine.dispose()


def _soft_dsn(engine: Engine, config, run_id: int, person: int, at: timedelta, shape: str):
    raw = soft_dsn(config, run_id, person, "reader0@example.net", shape)
    return receive_message(engine, config, raw, source="lmtp", now=T1 + at)


def _relay_gave_up(engine: Engine, run_id: int, at: timedelta, attempts: int = 3) -> None:
    """The relay answered 4xx to this send's delivery until the sender gave up, at T0 + at."""
    with transaction(engine) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.run_id == run_id)
            .values(status=DeliveryStatus.FAILED, attempts=attempts, updated_at=T0 + at)
        )


def test_dsn_soft_bounces_and_relay_failures_count_towards_one_limit(
    make_config: ConfigFactory, db_url: str, engine: Engine
) -> None:
    """A send the relay gave up on and a later soft-bounce DSN for another send reach a limit
    of 2 within the window; an older failure or a message never built does not count."""
    config = make_config(db_url, bounces__soft_bounce_limit=2, bounces__soft_bounce_days=10)
    runs = [sent_run(engine, 1, key="issue:1")]
    runs += [sent_run(engine, 0, key=f"issue:{n}") for n in (2, 3, 4)]
    with transaction(engine) as session:
        person = session.scalars(select(Subscriber.id)).one()
    _relay_gave_up(engine, runs[0], -timedelta(days=20))  # outside the window
    _relay_gave_up(engine, runs[1], timedelta(), attempts=0)  # never built: not a bounce
    first = _soft_dsn(engine, config, runs[2], person, timedelta(), "postfix")
    assert (first.action, first.detail) == ("soft_counted", "1 soft bounce(s) within 10 days")
    _relay_gave_up(engine, runs[3], timedelta(days=1))
    # Another delay notice for the same send: still one bounce for it, plus the relay's.
    second = _soft_dsn(engine, config, runs[2], person, timedelta(days=2), "exim-dsn")
    assert (second.action, second.detail) == ("soft_limit", "2 soft bounce(s) within 10 days")
    with transaction(engine) as session:
        assert session.get(Subscriber, person).status == SubscriberStatus.BOUNCED


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_deprecated_name_is_read_with_a_note(tmp_path: Path) -> None:
    """``[subscribers] soft_bounce_limit`` in the file or the environment sets the new
    setting unless the new one is set, and is noted for a warning either way."""
    path = _write(tmp_path, "[subscribers]\nsoft_bounce_limit = 5\n")
    config = load_config(path, environ={})
    assert config.get("bounces", "soft_bounce_limit") == 5
    assert config.deprecated == (
        DeprecatedName(
            "[subscribers] soft_bounce_limit",
            "[bounces] soft_bounce_limit",
            f"{path} [subscribers] soft_bounce_limit",
            used=True,
        ),
    )
    from_env = load_config(path, environ={OLD: "4"})
    assert from_env.get("bounces", "soft_bounce_limit") == 4
    assert from_env.deprecated[0].source == f"environment variable {OLD}"
    both = load_config(path, environ={"NEWSLETTER_BOUNCES_SOFT_BOUNCE_LIMIT": "7"})
    assert both.get("bounces", "soft_bounce_limit") == 7 and not both.deprecated[0].used
    assert load_config(_write(tmp_path, ""), environ={}).deprecated == ()


def test_the_cli_warns_about_the_deprecated_name(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """A command run with the old name prints a warning naming the new setting, in the
    user's language, and still works."""
    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    engine.dispose()
    args = ["--config", str(config.path), "inbound", "list"]
    result = CliRunner().invoke(main, args, env={OLD: "2", "LANGUAGE": "en"})
    assert result.exit_code == 0, result.output
    assert "Warning: [subscribers] soft_bounce_limit" in result.output
    assert "rename it [bounces] soft_bounce_limit" in result.output
    french = CliRunner().invoke(main, args, env={OLD: "2", "LANGUAGE": "fr"})
    assert "[bounces] soft_bounce_limit" in french.output and "obsolète" in french.output
    bad = CliRunner().invoke(main, args, env={OLD: "beaucoup"})
    assert bad.exit_code == 2 and OLD in bad.output
