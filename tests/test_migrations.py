"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, text

from newsletter.cli import main
from newsletter.db import current_revision, head_revision, make_engine, upgrade_database
from newsletter.schema import metadata
from tests.conftest import ConfigFactory


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    before = current_revision(engine)
    upgrade_database(engine)
    assert current_revision(engine) == before is not None


def test_a_database_made_at_0001_upgrades_with_its_rows(
    make_config: ConfigFactory, db_url: str
) -> None:
    """A database at the first schema, with a subscriber and an inbound message in it, is
    refused by every command with a clear message until `db upgrade`, which brings it to the
    models' schema and keeps its rows (the new column empty)."""
    engine = make_engine(db_url)
    upgrade_database(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO inbound_message (received_at, source, digest, envelope_from, "
                "envelope_to, header_from, subject, message_id, size, raw, kind, action, "
                "status_code, detail) VALUES (:at, 'lmtp', 'd1', '', '', '', 'Rebond', '', 3, "
                ":raw, 'hard_bounce', 'bounced', '5.1.1', '')"
            ),
            {"at": datetime(2026, 11, 1, tzinfo=UTC), "raw": b"abc"},
        )
    config = make_config(db_url)
    refused = CliRunner().invoke(main, ["--config", str(config.path), "subscribers", "stats"])
    assert refused.exit_code == 2
    assert "older version (schema 0001)" in refused.output and "db upgrade" in refused.output
    upgraded = CliRunner().invoke(main, ["--config", str(config.path), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert current_revision(engine) == head_revision(engine) != "0001"
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT raw, raw_removed_at FROM inbound_message")).all()
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        assert compare_metadata(context, metadata) == []
    assert [(bytes(raw), removed) for raw, removed in rows] == [(b"abc", None)]
    stats = CliRunner().invoke(main, ["--config", str(config.path), "subscribers", "stats"])
    assert stats.exit_code == 0, stats.output
    engine.dispose()
