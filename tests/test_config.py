"""Settings: documented in the README, overridable from the environment, refused with a
message naming the setting and the file when invalid or unknown."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import ENV_ALIASES, SETTINGS, Setting, load_config
from newsletter.errors import ConfigError, NotInitialisedError

README = Path(__file__).resolve().parent.parent / "README.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s.table}.{s.key}")
def test_every_setting_is_documented_in_readme(setting: Setting) -> None:
    """Each setting has a README table row naming it, its environment variable and its help."""
    text = README.read_text(encoding="utf-8")
    row = next(
        (
            line
            for line in text.splitlines()
            if line.startswith(f"| `[{setting.table}] {setting.key}` |")
        ),
        None,
    )
    assert row is not None, f"README has no row for [{setting.table}] {setting.key}"
    assert f"`{setting.env_name}`" in row
    assert setting.help.replace("|", "\\|") in row


def test_every_alias_is_documented_in_readme() -> None:
    """Short environment aliases appear in the README too."""
    text = README.read_text(encoding="utf-8")
    for alias in ENV_ALIASES:
        assert f"`{alias}`" in text


def test_readme_shows_the_two_commands_first() -> None:
    """The README's first section is `make run` / `make test`, before configuration."""
    text = README.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## The two commands", "## Configuration", "## CLI"]
    assert text.index("make run") < text.index("## Configuration")
    assert text.index("make test") < text.index("## Configuration")
    for section in ("## Issue file format", "## Subscribers", "## Sending", "## Schedule"):
        assert section in headings


def test_defaults_file_values_and_environment_overrides(tmp_path: Path) -> None:
    """The environment beats the file, which beats the default; types are converted."""
    path = write(tmp_path, '[smtp]\nport = 2525\nrate = 5\n[list]\nname = "Fichier"\n')
    config = load_config(
        path,
        environ={"NEWSLETTER_SMTP_PORT": "465", "NEWSLETTER_SMTP_TLS": "tls"},
    )
    assert config.get("smtp", "port") == 465
    assert config.get("smtp", "tls") == "tls"
    assert config.get("smtp", "rate") == 5.0
    assert config.get("list", "name") == "Fichier"
    assert config.get("schedule", "timezone") == "Europe/Paris"
    assert config.get("schedule", "enabled") is True
    off = load_config(path, environ={"NEWSLETTER_SCHEDULE_ENABLED": "no"})
    assert off.get("schedule", "enabled") is False


def test_base_url_alias_and_relative_sqlite_path(tmp_path: Path) -> None:
    """NEWSLETTER_BASE_URL sets [web] base_url (trailing slash dropped); a relative SQLite
    path is relative to the config file."""
    path = write(tmp_path, '[database]\nurl = "sqlite:///data.db"\n')
    config = load_config(path, environ={"NEWSLETTER_BASE_URL": "https://news.example.org/"})
    assert config.base_url == "https://news.example.org"
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'data.db'}"


def test_setting_smtp_host_turns_catcher_off(tmp_path: Path) -> None:
    """With no [smtp] host the catcher runs; NEWSLETTER_SMTP_HOST turns it off."""
    path = write(tmp_path, "")
    assert load_config(path, environ={}).catcher_enabled
    on = load_config(path, environ={"NEWSLETTER_SMTP_HOST": "smtp.example.org"})
    assert not on.catcher_enabled


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ('[smtp]\nport = "abc"\n', {}, "[smtp] port from {path} [smtp] port: expected int"),
        ("", {"NEWSLETTER_SMTP_PORT": "x"}, "environment variable NEWSLETTER_SMTP_PORT"),
        ('[smtp]\ntls = "ssl"\n', {}, "[smtp] tls from {path}"),
        ("[smtp]\nrate = -1\n", {}, "must not be negative"),
        ('[schedule]\ntimezone = "Mars/Olympus"\n', {}, "[schedule] timezone in {path}"),
        ('[schedule]\ntime = "25:00"\n', {}, "[schedule] time in {path}"),
        ('[web]\nbase_url = "ftp://x"\n', {}, "[web] base_url in {path}"),
        ('[list]\nname = "a\\nb"\n', {}, "must be a single line"),
        ('[smtp]\nhots = "x"\n', {}, "{path}: unknown setting [smtp] hots"),
        ("[nope]\nx = 1\n", {}, "unknown setting [nope] x"),
        ("[smtp\n", {}, "{path}: not valid TOML"),
    ],
)
def test_invalid_values_name_the_setting_and_the_file(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    """An invalid value, an unknown key or broken TOML is refused, naming the setting and
    where it came from."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    assert expected.format(path=path.resolve()) in str(caught.value)


def test_missing_file_says_run_init(tmp_path: Path) -> None:
    """A missing config file raises NotInitialisedError telling to run init."""
    with pytest.raises(NotInitialisedError, match="run `newsletter init`"):
        load_config(tmp_path / "absent.toml", environ={})


def test_cli_with_missing_file_exits_2_without_traceback(tmp_path: Path) -> None:
    """`newsletter` commands before init print "run `newsletter init`" and exit 2."""
    result = CliRunner().invoke(
        main, ["links", "list"], env={"NEWSLETTER_CONFIG": str(tmp_path / "absent.toml")}
    )
    assert result.exit_code == 2
    assert "run `newsletter init`" in result.output
    assert "Traceback" not in result.output


def test_cli_with_invalid_setting_exits_2_naming_it(tmp_path: Path) -> None:
    """An invalid setting stops a command with exit 2 and a message naming it and the file."""
    path = write(tmp_path, '[smtp]\ntls = "ssl"\n')
    result = CliRunner().invoke(main, ["--config", str(path), "links", "list"], env={})
    assert result.exit_code == 2
    assert "[smtp] tls" in result.output and str(path.resolve()) in result.output
