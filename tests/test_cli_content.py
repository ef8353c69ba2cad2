"""The editor's content commands: links add|list|remove|move, issue intro|import|preview."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from newsletter.cli import main
from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.models import Link
from subscribers.tokens import read_unsubscribe_token
from tests.conftest import TEST_SECRET, ConfigFactory
from tests.harness import SMTPServer
from tests.test_issuefile import GOOD


@pytest.fixture
def cfg(make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer) -> Config:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    engine.dispose()
    return config


def run(cfg: Config, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(cfg.path), *args], env={})


def link_count(cfg: Config) -> int:
    engine = make_engine(cfg.database_url)
    with transaction(engine) as session:
        count = session.scalar(select(func.count()).select_from(Link)) or 0
    engine.dispose()
    return count


def add_links(cfg: Config, count: int) -> None:
    for i in range(count):
        result = run(
            cfg,
            "links",
            "add",
            f"https://www.slate.fr/story/{i}?utm=x&y=1",
            "--title",
            f"Démocratie et citoyenneté : le community organizing n°{i}",
            "--source",
            "Slate",
            "--excerpt",
            "Partir des demandes des habitants plutôt que d’une cause fixée d’avance, "
            "et former des responsables de quartier pour les porter. " * 3,
            "--tag",
            "quartiers",
        )
        assert result.exit_code == 0, result.output


def test_links_add_list_move_remove(cfg: Config) -> None:
    """Links added from the CLI are listed in order, can be moved and removed."""
    add_links(cfg, 3)
    listing = run(cfg, "links", "list")
    assert listing.exit_code == 0
    assert "Issue #1: 3 link(s)" in listing.output
    assert "[1] Démocratie et citoyenneté : le community organizing n°0 — Slate" in listing.output
    assert run(cfg, "links", "move", "3", "1").exit_code == 0
    first = run(cfg, "links", "list").output.splitlines()[1]
    assert "[3]" in first
    assert run(cfg, "links", "remove", "2").exit_code == 0
    assert link_count(cfg) == 2
    missing = run(cfg, "links", "remove", "2")
    assert missing.exit_code == 2 and "no link with id 2" in missing.output


def test_links_add_bad_url_is_refused_without_traceback(cfg: Config) -> None:
    """A non-http(s) URL gives a one-line error and exit 2; nothing is stored."""
    result = run(cfg, "links", "add", "javascript:alert(1)", "--title", "T")
    assert result.exit_code == 2
    assert "Error: url: must be an http:// or https:// link" in result.output
    assert "Traceback" not in result.output
    assert link_count(cfg) == 0


def test_issue_intro_from_text_and_file(cfg: Config, tmp_path: Path) -> None:
    """The intro can be given inline or from a file and shows in the preview."""
    assert run(cfg, "issue", "intro", "Bonjour à tous").exit_code == 0
    add_links(cfg, 1)
    assert "Bonjour à tous" in run(cfg, "issue", "preview", "--format", "text").output
    intro = tmp_path / "intro.txt"
    intro.write_text("Un été bien rempli.\n\nÀ bientôt.", encoding="utf-8")
    assert run(cfg, "issue", "intro", "--file", str(intro)).exit_code == 0
    text = run(cfg, "issue", "preview", "--format", "text").output
    assert "Un été bien rempli." in text and "Bonjour à tous" not in text
    assert run(cfg, "issue", "intro").exit_code == 2


def test_issue_import_good_and_bad_files(cfg: Config, tmp_path: Path) -> None:
    """A good file queues its links; a bad one names FILE:LINE, exits 2 and queues nothing."""
    bad = tmp_path / "bad.md"
    bad.write_text(GOOD.replace("https://www.numerama.com/b", "mailto:x@example.org"), "utf-8")
    result = run(cfg, "issue", "import", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:18" in result.output and "Traceback" not in result.output
    assert link_count(cfg) == 0
    good = tmp_path / "good.md"
    good.write_text(GOOD, "utf-8")
    result = run(cfg, "issue", "import", str(good))
    assert result.exit_code == 0, result.output
    assert "Queued 2 link(s)" in result.output
    assert link_count(cfg) == 2
    preview = run(cfg, "issue", "preview", "--format", "text").output
    assert preview.startswith("Les liens CivicTech de la semaine #24")


def test_preview_eml_acceptance(cfg: Config, tmp_path: Path) -> None:
    """`issue preview --format eml` for a 40-link issue parses without defects, has the list
    headers, text part first, inline style= attributes, HTML under 102 KB, and a working
    personal unsubscribe link in both parts after decoding."""
    add_links(cfg, 40)
    out = tmp_path / "preview.eml"
    result = run(cfg, "issue", "preview", "--format", "eml", "--output", str(out))
    assert result.exit_code == 0, result.output
    msg = message_from_bytes(out.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert not any(part.defects for part in msg.walk())
    for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
        assert msg[header], header
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text_part, html_part = msg.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    html = html_part.get_content()
    assert 'style="' in html
    assert len(html.encode("utf-8")) < 102 * 1024
    url = re.search(r"<(https://liens\.example\.org/u/[^>]+)>", msg["List-Unsubscribe"])
    assert url is not None
    token = url.group(1).rsplit("/", 1)[1]
    assert read_unsubscribe_token(TEST_SECRET, token) == 0
    assert url.group(1) in text_part.get_content()
    assert f'href="{url.group(1)}"' in html
    assert "https://www.slate.fr/story/39?utm=x&amp;y=1" in html


def test_preview_html_to_stdout(cfg: Config) -> None:
    """`--format html` prints the personalised HTML; nothing is assembled."""
    add_links(cfg, 2)
    result = run(cfg, "issue", "preview", "--format", "html")
    assert result.output.startswith("<!DOCTYPE html>")
    assert "@@" not in result.output and "/u/" in result.output
    assert "Issue #1: 2 link(s)" in run(cfg, "links", "list").output


def test_preview_to_sends_marked_message(cfg: Config, smtp_server: SMTPServer) -> None:
    """`--to EMAIL` sends the preview to that address with the subject marked as a preview."""
    add_links(cfg, 2)
    result = run(cfg, "issue", "preview", "--to", "redaction@example.org")
    assert result.exit_code == 0, result.output
    received = smtp_server.wait_for(1)[0]
    assert received.rcpt_tos == ["redaction@example.org"]
    assert received.parsed()["Subject"] == "[Aperçu] Les liens de la semaine #1"


def test_command_before_init_says_run_init(tmp_path: Path) -> None:
    """Without a config file, a command says to run `newsletter init` and exits 2."""
    missing = tmp_path / "nowhere" / "newsletter.toml"
    result = CliRunner().invoke(main, ["--config", str(missing), "links", "list"], env={})
    assert result.exit_code == 2
    assert "run `newsletter init`" in result.output
    assert "Traceback" not in result.output


def test_command_before_migration_says_run_init(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """With a config but an empty database, a command says to run init and exits 2."""
    config = make_config(sqlite_url)
    result = run(config, "issue", "preview")
    assert result.exit_code == 2 and "run `newsletter init`" in result.output


def test_preview_warns_when_html_would_be_clipped(cfg: Config) -> None:
    """A digest whose HTML passes Gmail's 102 KB clipping limit gets a warning on stderr."""
    add_links(cfg, 120)
    result = CliRunner().invoke(
        main, ["--config", str(cfg.path), "issue", "preview", "--format", "html"], env={}
    )
    assert result.exit_code == 0
    assert "Gmail clips messages over 102 KB" in result.stderr
    assert "Gmail clips" not in result.stdout
