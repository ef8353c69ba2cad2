"""`newsletter subscribers …` end to end on a SQLite file, with the real SMTP server."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.config import Config
from newsletter.db import make_engine, upgrade_database
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer
from tests.subscriber_helpers import plain_text


@pytest.fixture
def cli_config(make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer) -> Config:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    engine.dispose()
    return config


def run(config: Config, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(
        main, ["--config", str(config.path), "subscribers", *args], input=input
    )


def test_add_sends_confirmation_and_confirmed_needs_source(
    cli_config: Config, smtp_server: SMTPServer
) -> None:
    """`add` sends a confirmation email; `add --confirmed` needs a consent source."""
    result = run(cli_config, "add", "Ada@Example.org", "--name", "Ada")
    assert result.exit_code == 0, result.output
    [message] = smtp_server.wait_for(1)
    assert "https://liens.example.org/confirm/" in plain_text(message)
    refused = run(cli_config, "add", "bob@example.org", "--confirmed")
    assert refused.exit_code == 2 and "--source" in refused.output
    assert (
        run(cli_config, "add", "bob@example.org", "--confirmed", "--source", "salon").exit_code == 0
    )
    duplicate = run(cli_config, "add", "ADA@example.org")
    assert duplicate.exit_code == 2 and "already known" in duplicate.output
    listing = run(cli_config, "list").output.splitlines()
    assert listing == ["Ada@example.org\tpending\tAda", "bob@example.org\tactive\t"]
    assert run(cli_config, "list", "--status", "active").output == "bob@example.org\tactive\t\n"
    stats = run(cli_config, "stats").output
    assert "pending: 1" in stats and "active: 1" in stats and "total: 2" in stats


def test_import_reports_rows_dry_run_and_unreadable_file(
    cli_config: Config, tmp_path: Path
) -> None:
    """A Mailchimp export imports with a per-row report; --dry-run changes nothing; a file that
    is not UTF-8 imports nothing and says why."""
    export = tmp_path / "members.csv"
    export.write_text(
        "Email Address,First Name,Last Name,MEMBER_RATING\n"
        "lea@example.org,Léa,Martin,2\n"
        "broken-address,X,Y,1\n"
        "sam@example.org,Sam,,3\n",
        encoding="utf-8",
    )
    dry = run(
        cli_config, "import", str(export), "--confirmed", "--source", "mailchimp", "--dry-run"
    )
    assert dry.exit_code == 0, dry.output
    assert "added: 2" in dry.output and "row 3:" in dry.output
    assert run(cli_config, "list").output == ""
    missing_source = run(cli_config, "import", str(export), "--confirmed")
    assert missing_source.exit_code == 2
    done = run(cli_config, "import", str(export), "--confirmed", "--source", "mailchimp")
    assert "added: 2" in done.output and "invalid: 1" in done.output
    assert "Léa Martin" in run(cli_config, "list").output
    binary = tmp_path / "latin1.csv"
    binary.write_bytes("email\nzoé@example.org\n".encode("latin-1"))
    bad = run(cli_config, "import", str(binary), "--confirmed", "--source", "x")
    assert bad.exit_code == 2 and "not UTF-8" in bad.output
    assert run(cli_config, "stats").output.count("active: 2") == 1


def test_export_remove_erase_and_person_export(cli_config: Config) -> None:
    """Exports list everyone; `export EMAIL` holds the consent log; `remove` unsubscribes;
    `erase` leaves nothing readable and blocks a later import."""
    run(cli_config, "add", "ada@example.org", "--confirmed", "--source", "salon")
    run(cli_config, "add", "bob@example.org", "--confirmed", "--source", "salon")
    rows = list(csv.DictReader(io.StringIO(run(cli_config, "export").output)))
    assert [r["email"] for r in rows] == ["ada@example.org", "bob@example.org"]
    as_json = json.loads(run(cli_config, "export", "--format", "json").output)
    assert {r["status"] for r in as_json} == {"active"}
    assert run(cli_config, "remove", "bob@example.org").exit_code == 0
    person = json.loads(run(cli_config, "export", "bob@example.org").output)
    assert person["subscriber"]["status"] == "unsubscribed"
    assert [e["kind"] for e in person["consent_log"]] == ["confirmed", "unsubscribed"]
    assert person["consent_log"][0]["source"] == "salon"
    assert run(cli_config, "erase", "ada@example.org", "--yes").exit_code == 0
    assert "ada@" not in run(cli_config, "export").output
    gone = run(cli_config, "show", "ada@example.org")
    assert gone.exit_code == 2
    path = cli_config.base_dir / "again.txt"
    path.write_text("ada@example.org\nbob@example.org\n", encoding="utf-8")
    again = run(cli_config, "import", str(path), "--confirmed", "--source", "old list")
    assert "skipped-erased: 1 (rows 1)" in again.output
    assert "skipped-unsubscribed: 1 (rows 2)" in again.output
    assert "added: 0" in again.output
    db_file = Path(cli_config.database_url.removeprefix("sqlite:///"))
    for path in (db_file, db_file.with_name(db_file.name + "-wal")):
        if path.exists():
            assert b"ada@example.org" not in path.read_bytes().lower(), path
