"""The editor's schedule commands: clear errors with exit code 2 and nothing stored on bad input."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select

from newsletter.cli import main
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Delivery, Pause, SendRun, SlotOverride
from newsletter.schedule.dispatch import schedule_of
from newsletter.schedule.policy import local_date, next_slot
from tests.test_dispatch import add_subscribers


def run(config: Config, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--config", str(config.path), "schedule", *args], env=env)


def count(engine: Engine, model: type) -> int:
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_show_lists_local_times_across_dst(sqlite_site: tuple[Config, Engine]) -> None:
    """`schedule show --from` prints each Sunday at 08:00 local, CET then CEST."""
    config, _ = sqlite_site
    result = run(config, "show", "--from", "2026-03-20", "--weeks", "3")
    assert result.exit_code == 0, result.output
    assert "Every Sunday at 08:00 Europe/Paris" in result.output
    assert "2026-03-22 08:00 CET  skipped: nothing queued" in result.output
    assert "2026-03-29 08:00 CEST  sends if links are queued" in result.output
    assert "2026-04-05 08:00 CEST" in result.output


def test_pause_rejects_bad_dates_and_stores_nothing(sqlite_site: tuple[Config, Engine]) -> None:
    """A pause ending in the past or an unparseable date exits 2 with a message; no row."""
    config, engine = sqlite_site
    yesterday = (local_date(utc_now(), config.timezone) - timedelta(days=1)).isoformat()
    result = run(config, "pause", "--until", yesterday, "--reason", "x")
    assert result.exit_code == 2
    assert "--until: the pause must end after today" in result.output
    result = run(config, "pause", "--until", "6 septembre", "--reason", "x")
    assert result.exit_code == 2
    assert "--until: expected a date like 2026-09-06" in result.output
    assert count(engine, Pause) == 0


def test_pause_show_resume(sqlite_site: tuple[Config, Engine]) -> None:
    """A pause shows on the coming slots; resume ends it; resuming again is an error."""
    config, engine = sqlite_site
    until = (local_date(utc_now(), config.timezone) + timedelta(days=22)).isoformat()
    result = run(config, "pause", "--until", until, "--reason", "Pause estivale")
    assert result.exit_code == 0, result.output
    result = run(config, "show", "--weeks", "2")
    assert f"Paused until {until}" in result.output
    assert "paused: Pause estivale" in result.output
    assert run(config, "resume").exit_code == 0
    assert "paused" not in run(config, "show", "--weeks", "2").output
    again = run(config, "resume")
    assert again.exit_code == 2 and "not paused" in again.output
    assert count(engine, Pause) == 1


def test_pause_notify_starts_one_notice_run(sqlite_site: tuple[Config, Engine]) -> None:
    """`pause --notify --detach` records a notice run addressed to every active subscriber."""
    config, engine = sqlite_site
    add_subscribers(engine, 3, utc_now())
    until = (local_date(utc_now(), config.timezone) + timedelta(days=30)).isoformat()
    result = run(config, "pause", "--until", until, "--reason", "Vacances", "--notify", "--detach")
    assert result.exit_code == 0, result.output
    with transaction(engine) as session:
        assert session.scalars(select(SendRun.key)).all() == ["notice:pause:1"]
    assert count(engine, Delivery) == 3


def test_delay_validation_and_success(sqlite_site: tuple[Config, Engine]) -> None:
    """A delay outside this week or unparseable exits 2 and stores nothing; a Monday 18:00
    delay is stored and shown."""
    config, engine = sqlite_site
    slot = next_slot(schedule_of(config), utc_now())
    monday = local_date(slot, config.timezone) + timedelta(days=1)
    too_late = (local_date(slot, config.timezone) + timedelta(days=8)).isoformat()
    result = run(config, "delay", "--to", f"{too_late} 18:00")
    assert result.exit_code == 2 and "before the following week's slot" in result.output
    result = run(config, "delay", "--to", "lundi 18h")
    assert result.exit_code == 2 and "--to: expected a local time" in result.output
    assert count(engine, SlotOverride) == 0
    result = run(config, "delay", "--to", f"{monday.isoformat()} 18:00")
    assert result.exit_code == 0, result.output
    shown = run(config, "show", "--weeks", "2").output
    assert f"delayed to {monday.isoformat()} 18:00" in shown


def test_skip_records_the_reason(sqlite_site: tuple[Config, Engine]) -> None:
    """`schedule skip --reason` marks the next slot skipped with that reason."""
    config, _ = sqlite_site
    assert run(config, "skip", "--reason", "Congrès").exit_code == 0
    assert "skipped: Congrès" in run(config, "show", "--weeks", "1").output


def test_unknown_time_zone_exits_2(sqlite_site: tuple[Config, Engine]) -> None:
    """An unknown [schedule] timezone stops the command with exit code 2 and names it."""
    config, _ = sqlite_site
    result = run(config, "show", env={"NEWSLETTER_SCHEDULE_TIMEZONE": "Europe/Pariss"})
    assert result.exit_code == 2
    assert "unknown time zone 'Europe/Pariss'" in result.output


def test_the_command_line_speaks_the_users_locale(sqlite_site: tuple[Config, Engine]) -> None:
    """With a French locale, `schedule` answers and refuses in French, the field named by its
    flag; with an English one, in English."""
    config, _ = sqlite_site
    french = {"LANGUAGE": "fr", "LC_ALL": "fr_FR.UTF-8"}
    shown = run(config, "show", "--weeks", "1", env=french)
    assert shown.exit_code == 0 and "lien(s) en attente pour le prochain numéro" in shown.output
    refused = run(config, "pause", "--until", "2000-01-01", "--reason", "Été", env=french)
    assert refused.exit_code == 2
    assert "Erreur\u202f: --until\u202f: la pause doit finir après aujourd’hui" in refused.output
    english = run(config, "pause", "--until", "2000-01-01", "--reason", "Été")
    assert "Error: --until: the pause must end after today" in english.output
