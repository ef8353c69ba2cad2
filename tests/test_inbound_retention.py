"""Retention of raw inbound messages on both backends: after ``[bounces] keep_raw_days`` the
raw bytes of handled messages are removed while their rows, figures and de-duplication stay;
unclassified ones are kept longer; the CLI, the dashboard and the schedule's job run it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from newsletter.cli import main
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.inbound.models import InboundMessage
from newsletter.inbound.policy import RawRetention
from newsletter.inbound.retention import purge_raw
from newsletter.services.inbound import (
    deliverability,
    get_inbound,
    purge_raw_messages,
    raw_retention,
    receive_message,
)
from scheduler import RETENTION_JOB, build_scheduler, run_retention
from subscribers.models import Subscriber
from tests.admin_support import make_editor, signed_in
from tests.conftest import ConfigFactory
from tests.inbound_support import T1, arf, dsn, sent_run

HUMAN = b"From: Ada <ada@example.net>\r\nSubject: Merci\r\n\r\nBravo pour la lettre !\r\n"
DAY = timedelta(days=1)


def _people(engine: Engine) -> list[int]:
    with transaction(engine) as session:
        return list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))


def _returned(engine: Engine, config: Config) -> tuple[int, list[bytes]]:
    """A send of 4; two hard bounces and a complaint at T1, a hard bounce at T1 + 80 days and
    a person's reply (unclassified) at T1. Returns the run id and the raw messages in order."""
    run_id = sent_run(engine, 4)
    people = _people(engine)
    raws = [
        dsn(config, run_id, people[0], "reader0@example.net"),
        dsn(config, run_id, people[1], "reader1@example.net"),
        arf(config, run_id, people[2], "reader2@example.net"),
        HUMAN,
        dsn(config, run_id, people[3], "reader3@example.net"),
    ]
    for n, raw in enumerate(raws):
        receive_message(
            engine, config, raw, source="lmtp", now=T1 + (80 * DAY if n == 4 else timedelta())
        )
    return run_id, raws


def _rows(engine: Engine) -> list[tuple[str, str, str, int, bool, str]]:
    """(kind, action, status code, length of raw, removed, digest) of every row, in order."""
    with transaction(engine) as session:
        return [
            (r.kind, r.action, r.status_code, int(r.length), r.raw_removed_at is not None, r.digest)
            for r in session.execute(
                select(
                    InboundMessage.kind,
                    InboundMessage.action,
                    InboundMessage.status_code,
                    func.length(InboundMessage.raw).label("length"),
                    InboundMessage.raw_removed_at,
                    InboundMessage.digest,
                ).order_by(InboundMessage.id)
            )
        ]


def test_purge_empties_old_handled_messages_and_keeps_their_rows(
    config: Config, engine: Engine
) -> None:
    """After 90 days the raw bytes of handled messages are removed; rows, figures and the
    de-duplication stay, and the recent message and the unclassified one keep their bytes."""
    run_id, raws = _returned(engine, config)
    before = _rows(engine)
    with transaction(engine) as session:
        figures = deliverability(session, run_id).as_dict()
    report = purge_raw_messages(engine, RawRetention(90, 365), now=T1 + 91 * DAY)
    assert (report.messages, report.bytes, report.waiting) == (3, sum(map(len, raws[:3])), 1)
    after = _rows(engine)
    assert [r[3] for r in after] == [0, 0, 0, len(raws[3]), len(raws[4])]
    assert [r[4] for r in after] == [True, True, True, False, False]
    assert [(r[0], r[1], r[2], r[5]) for r in after] == [(r[0], r[1], r[2], r[5]) for r in before]
    with transaction(engine) as session:
        assert deliverability(session, run_id).as_dict() == figures
        shown = get_inbound(session, 1)
    assert shown.text == "" and shown.kept_days == 91
    again = receive_message(engine, config, raws[0], source="lmtp", now=T1 + 92 * DAY)
    assert again.duplicate and again.id == 1


def test_unclassified_messages_are_kept_for_the_longer_bound(
    config: Config, engine: Engine
) -> None:
    """An unclassified message keeps its bytes until ``keep_unclassified_days``; a second run
    removes nothing more until then, and 0 keeps it forever."""
    _, raws = _returned(engine, config)
    purge_raw_messages(engine, RawRetention(90, 365), now=T1 + 91 * DAY)
    assert purge_raw_messages(engine, RawRetention(90, 365), now=T1 + 364 * DAY).messages == 1
    assert [r[3] for r in _rows(engine)] == [0, 0, 0, len(raws[3]), 0]
    assert purge_raw_messages(engine, RawRetention(90, 0), now=T1 + 900 * DAY).messages == 0
    report = purge_raw_messages(engine, RawRetention(90, 365), now=T1 + 366 * DAY)
    assert (report.messages, report.bytes, report.waiting) == (1, len(HUMAN), 0)
    assert [r[3] for r in _rows(engine)] == [0, 0, 0, 0, 0]


def test_purge_works_in_batches_and_a_dry_run_changes_nothing(
    config: Config, engine: Engine
) -> None:
    """A dry run reports what a purge would remove and changes no row; the purge then removes
    exactly that, two rows per batch, in one transaction."""
    _, raws = _returned(engine, config)
    before = _rows(engine)
    retention = RawRetention(30, 30)
    dry = purge_raw_messages(engine, retention, now=T1 + 200 * DAY, dry_run=True)
    assert (dry.messages, dry.bytes) == (5, sum(map(len, raws)))
    assert _rows(engine) == before
    with transaction(engine) as session:
        done = purge_raw(session, retention, T1 + 200 * DAY, batch=2)
    assert done == dry
    assert all(r[3] == 0 and r[4] for r in _rows(engine))


def test_zero_days_keeps_everything_forever() -> None:
    """``keep_raw_days = 0`` turns retention off, for unclassified messages too."""
    assert RawRetention(0, 365).handled_cutoff(T1) is None
    assert RawRetention(0, 365).unclassified_cutoff(T1) is None
    assert RawRetention(90, 30).unclassified_cutoff(T1) == T1 - 90 * DAY


def test_settings_choose_the_retention(make_config: ConfigFactory, sqlite_url: str) -> None:
    """The defaults are 90 days for handled messages and 365 for unclassified ones."""
    assert raw_retention(make_config(sqlite_url)) == RawRetention(90, 365)
    config = make_config(sqlite_url, bounces__keep_raw_days=7)
    assert raw_retention(config) == RawRetention(7, 365)
    assert raw_retention(config, handled_days=3) == RawRetention(3, 365)


def _cli(config: Config, *args: str, language: str = "en"):
    return CliRunner().invoke(
        main, ["--config", str(config.path), "inbound", *args], env={"LANGUAGE": language}
    )


def test_cli_purge_dry_run_then_purge_then_show(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """``inbound purge --dry-run`` says what it would remove, ``inbound purge`` removes it,
    and ``inbound show`` then says the raw message was removed instead of failing."""
    from newsletter.db import make_engine, upgrade_database

    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    run_id = sent_run(engine, 1)
    raw = dsn(config, run_id, _people(engine)[0], "reader0@example.net")
    receive_message(engine, config, raw, source="stdin", now=utc_now() - 100 * DAY)
    receive_message(engine, config, HUMAN, source="stdin", now=utc_now() - 100 * DAY)
    dry = _cli(config, "purge", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"Would remove the raw bytes of 1 message(s) older than 90 days ({len(raw)}" in (
        dry.output
    )
    assert "1 unclassified message(s) kept longer" in dry.output
    assert _rows(engine)[0][3] == len(raw)
    done = _cli(config, "purge", language="fr")
    assert done.exit_code == 0, done.output
    assert "Contenu brut de 1 message(s) de plus de 90 jours supprimé" in done.output
    assert _rows(engine)[0][3] == 0
    shown = _cli(config, "show", "1")
    assert shown.exit_code == 0, shown.output
    assert "The raw message was removed on" in shown.output and "100 days after" in shown.output
    assert "Reporting-MTA" not in shown.output
    assert "Bravo pour la lettre" in _cli(config, "show", "2").output
    engine.dispose()


@pytest.mark.parametrize("days", ["0", "abc", "-3"])
def test_cli_purge_refuses_bad_days(config: Config, engine: Engine, days: str) -> None:
    """``inbound purge --days`` takes a whole number of at least 1; anything else exits 2."""
    result = _cli(config, "purge", "--days", days)
    assert result.exit_code == 2 and "--days" in result.output


def test_dashboard_says_the_raw_message_was_removed(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """The dashboard's message page says the raw message was removed, in French."""
    from newsletter.db import make_engine, upgrade_database

    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    run_id = sent_run(engine, 1)
    receive_message(
        engine,
        config,
        dsn(config, run_id, _people(engine)[0], "r@example.net"),
        source="lmtp",
        now=T1,
    )
    purge_raw_messages(engine, RawRetention(90, 365), now=T1 + 95 * DAY)
    make_editor(engine)
    page = signed_in(config, engine).client.get("/admin/inbound/1")
    assert page.status_code == 200
    assert 'id="raw-removed"' in page.text and "95 jours" in page.text
    assert "Reporting-MTA" not in page.text
    engine.dispose()


async def test_schedule_runs_the_retention_job(
    make_config: ConfigFactory, config: Config, engine: Engine
) -> None:
    """The schedule holds the daily retention job, which purges with its clock; with
    ``keep_raw_days = 0`` there is no such job."""
    _returned(engine, config)
    scheduler = build_scheduler(config, engine, now_fn=lambda: T1 + 91 * DAY)
    job = scheduler.get_job(RETENTION_JOB)
    assert job is not None and job.trigger.interval == DAY
    await run_retention(config, engine, lambda: T1 + 91 * DAY)
    assert [r[4] for r in _rows(engine)] == [True, True, True, False, False]
    off = make_config(str(config.database_url), bounces__keep_raw_days=0)
    assert build_scheduler(off, engine).get_job(RETENTION_JOB) is None
