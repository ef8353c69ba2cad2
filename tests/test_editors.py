"""Editor accounts and API tokens, in the core and through the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from newsletter.cli import main
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.editors import (
    add_editor,
    authenticate,
    editor_for_token,
    hash_token,
    issue_api_token,
    revoke_api_token,
)
from newsletter.errors import ConflictError, InvalidInputError
from newsletter.models import ApiToken, Editor
from tests.conftest import ConfigFactory

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


def test_password_is_stored_as_argon2_and_checked(engine: Engine) -> None:
    """An account keeps only an argon2 hash and signs in with the right password only."""
    with transaction(engine) as session:
        add_editor(session, email="Alice@Example.org", password=PASSWORD, now=NOW)
    with transaction(engine) as session:
        row = session.scalars(select(Editor)).one()
        assert row.email == "alice@example.org"
        assert row.password_hash.startswith("$argon2")
        assert PASSWORD not in row.password_hash
        assert authenticate(session, "alice@example.org", "wrong password!", NOW) is None
        assert authenticate(session, "nobody@example.org", PASSWORD, NOW) is None
        editor = authenticate(session, "ALICE@example.org", PASSWORD, NOW)
        assert editor is not None and editor.last_login_at == NOW


def test_bad_accounts_are_refused(sqlite_url: str) -> None:
    """A bad address, a short password or a duplicate address is refused with a clear error."""
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    with transaction(engine) as session:
        add_editor(session, email="alice@example.org", password=PASSWORD, now=NOW)
    with pytest.raises(InvalidInputError, match="email"), transaction(engine) as session:
        add_editor(session, email="not an address", password=PASSWORD, now=NOW)
    with pytest.raises(InvalidInputError, match="password"), transaction(engine) as session:
        add_editor(session, email="bob@example.org", password="short", now=NOW)
    with pytest.raises(ConflictError), transaction(engine) as session:
        add_editor(session, email="ALICE@example.org", password=PASSWORD, now=NOW)
    with transaction(engine) as session:
        assert session.scalars(select(Editor.email)).all() == ["alice@example.org"]


def test_api_token_is_stored_as_sha256_and_revocable(sqlite_url: str) -> None:
    """A token is shown once, stored as its SHA-256, finds its editor, and stops after revoke."""
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    with transaction(engine) as session:
        editor = add_editor(session, email="alice@example.org", password=PASSWORD, now=NOW)
        token = issue_api_token(session, editor, name="ci", now=NOW)
    with transaction(engine) as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hash_token(token) and token not in row.token_hash
        found = editor_for_token(session, token, NOW)
        assert found is not None and found.email == "alice@example.org"
        assert editor_for_token(session, token + "x", NOW) is None
        assert editor_for_token(session, "", NOW) is None
        revoke_api_token(session, found, row.id)
    with transaction(engine) as session:
        assert editor_for_token(session, token, NOW) is None


def test_cli_adds_lists_and_issues_tokens(make_config: ConfigFactory, sqlite_url: str) -> None:
    """`editors add --password-stdin`, `editors list` and `editors token` work end to end."""
    config = make_config(sqlite_url)
    upgrade_database(make_engine(config.database_url))
    runner = CliRunner()
    args = ["--config", str(config.path), "editors"]
    result = runner.invoke(
        main, [*args, "add", "alice@example.org", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, [*args, "add", "alice@example.org", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 2 and "already exists" in result.output
    result = runner.invoke(main, [*args, "list"])
    assert "alice@example.org" in result.output and "never" in result.output
    result = runner.invoke(main, [*args, "token", "alice@example.org"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    with transaction(make_engine(config.database_url)) as session:
        assert editor_for_token(session, token, NOW) is not None
    result = runner.invoke(main, [*args, "token", "bob@example.org"])
    assert result.exit_code == 2 and "no editor account" in result.output


def test_cli_prompts_for_the_password_twice(make_config: ConfigFactory, tmp_path: Path) -> None:
    """Without --password-stdin the password is prompted for, with a confirmation."""
    config = make_config(f"sqlite:///{tmp_path / 'p.db'}")
    upgrade_database(make_engine(config.database_url))
    result = CliRunner().invoke(
        main,
        ["--config", str(config.path), "editors", "add", "bob@example.org"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    with transaction(make_engine(config.database_url)) as session:
        assert authenticate(session, "bob@example.org", PASSWORD, NOW) is not None
