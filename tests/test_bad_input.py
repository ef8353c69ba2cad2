"""Every bad input is refused with one line: the shared parsers (ids in ASCII digits within
64 bits, bounded dates, text without control characters, bounded JSON), and the command line
given a directory as its config, a port out of range, NaN, a database that is a directory,
garbage, unreachable or migrated by a newer version, a date at the calendar's end or an id
past 64 bits: exit 2, never a traceback. The Atom feed stays XML whatever was stored."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text, update

from newsletter.cli import main
from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.errors import InvalidInputError
from newsletter.inputs import check_text, load_json, parse_id
from newsletter.models import Issue, IssueStatus
from newsletter.services import sends
from tests.admin_support import NOW, add_readers, make_client, open_site
from tests.conftest import ConfigFactory


@pytest.mark.parametrize(
    "raw", ["²", "١", "99999999999999999999", "9223372036854775808", "0", "-1", "1e3", ""]
)
def test_parse_id_refuses_what_is_not_a_64_bit_id(raw: str) -> None:
    """Non-ASCII digits, zero, negatives and numbers past 2**63-1 are refused, naming the
    field."""
    with pytest.raises(InvalidInputError) as caught:
        parse_id(raw, "link_id")
    assert caught.value.where == "link_id"


def test_parse_id_accepts_ascii_ids_up_to_64_bits() -> None:
    """ "42" and 2**63-1 are ids."""
    assert parse_id(" 42 ") == 42 and parse_id(str(2**63 - 1)) == 2**63 - 1


@pytest.mark.parametrize("value", ["a\x00b", "\x1b[31m", "x\x0by", "c1\x85", "a\ud800b", "l\nb"])
def test_check_text_refuses_controls_and_surrogates(value: str) -> None:
    """C0/C1 controls, lone surrogates, and (on one line) line breaks are refused."""
    with pytest.raises(InvalidInputError):
        check_text(value, "title")


def test_check_text_keeps_tab_and_multiline_breaks() -> None:
    """Tab is fine everywhere; newlines where the field is multi-line."""
    assert check_text("a\tb", "title") == "a\tb"
    assert check_text("a\r\nb\n", "intro", multiline=True) == "a\r\nb\n"


@pytest.mark.parametrize(
    "raw", [b"[" * 100_000, b'{"a":' * 50_000, b'"a\\ud800b"', b"1e999", b"NaN", b"x" * 2_000_000]
)
def test_load_json_refuses_deep_huge_and_invalid_text(raw: bytes) -> None:
    """Deep nesting, lone surrogates, infinities and oversized bodies are refused."""
    with pytest.raises(InvalidInputError):
        load_json(raw)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def one_line_exit_2(result: Result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_cli_refuses_bad_values_in_one_line(config: Config, tmp_path: Path) -> None:
    """A config that is a directory, a port past 65535, NaN for grace_hours, a pause until
    9999-12-31 and an id past 64 bits are each one line and exit 2."""
    engine, _ = open_site(config)
    cfg = ["--config", str(config.path)]
    assert "cannot read" in one_line_exit_2(invoke("--config", str(tmp_path), "links", "list"))
    assert "65535" in one_line_exit_2(invoke(*cfg, "serve", "--port", "99999"))
    nan = invoke(*cfg, "links", "list", env={"NEWSLETTER_SCHEDULE_GRACE_HOURS": "nan"})
    assert "grace_hours" in one_line_exit_2(nan)
    pause = invoke(*cfg, "schedule", "pause", "--until", "9999-12-31", "--reason", "été")
    assert "2999-12-31" in one_line_exit_2(pause)
    assert "LINK_ID" in one_line_exit_2(invoke(*cfg, "links", "move", "99999999999999999999", "1"))
    assert "--run" in one_line_exit_2(invoke(*cfg, "send", "status", "--run", "²"))
    engine.dispose()


@pytest.mark.parametrize("kind", ["directory", "garbage", "unreachable"])
def test_cli_refuses_an_unusable_database_in_one_line(
    make_config: ConfigFactory, tmp_path: Path, kind: str
) -> None:
    """A database URL naming a directory, a file that is not SQLite or a server that does not
    answer gives one line and exit 2."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    url = {
        "directory": f"sqlite:///{tmp_path}",
        "garbage": f"sqlite:///{garbage}",
        "unreachable": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    }[kind]
    config = make_config(url)
    line = one_line_exit_2(invoke("--config", str(config.path), "links", "list"))
    assert "cannot open the database" in line


def test_a_database_migrated_by_a_newer_version_is_detected(config: Config) -> None:
    """Commands and `db upgrade` both refuse a schema revision this version does not know."""
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    cfg = ["--config", str(config.path)]
    assert "newer version" in one_line_exit_2(invoke(*cfg, "links", "list"))
    assert "newer version" in one_line_exit_2(invoke(*cfg, "db", "upgrade"))


def test_feed_stays_xml_when_an_old_row_holds_control_characters(config: Config) -> None:
    """A sent issue whose subject and intro were stored with control characters (before the
    checks) still gives a feed that parses as XML, without those characters."""
    engine, _ = open_site(config)
    add_readers(engine, ["ana@example.org"])
    with transaction(engine) as session:
        queue_link(session, url="https://example.org/a", title="Un", source="", now=NOW)
        sends.publish_now(session, config, NOW)
        session.execute(
            update(Issue).values(
                subject="Num\x0béro 1", intro="\x1bbonjour", status=IssueStatus.SENT, sent_at=NOW
            )
        )
    feed = make_client(config, engine).get("/feed.xml")
    root = ElementTree.fromstring(feed.content)
    titles = [e.text for e in root.iter("{http://www.w3.org/2005/Atom}title")]
    assert "Numéro 1" in titles
