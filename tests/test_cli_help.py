"""``--help`` speaks the user's locale: docstrings, options' help and click's own headings."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from newsletter.cli import main
from newsletter.cli.help import help_msgid, help_texts
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Pause
from tools import messages

NB = "\u202f"
FRENCH = {"LANGUAGE": "fr"}
ENGLISH = {"LANGUAGE": "en"}


def show_help(*path: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], env=env)
    assert result.exit_code == 0, result.output
    return flat(result.output)


def flat(text: str) -> str:
    """``text`` as read, whatever the wrapping (narrow no-break spaces kept)."""
    return re.sub(r"[ \n]+", " ", text).strip()


def english_texts() -> list[str]:
    """The start of every help text, long enough to be a sentence of its own."""
    return sorted({flat(text.msgid)[:25] for text in help_texts(main)})


def subcommand(group: click.Command, name: str) -> click.Command:
    """``group``'s command ``name``, loading it as the command line does (lazily)."""
    assert isinstance(group, click.Group)
    found = group.get_command(click.Context(group), name)
    assert found is not None, name
    return found


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(click.Context(command))):
            found += command_paths(subcommand(command, name), (*path, name))
    return found


@pytest.mark.parametrize("path", [(), ("send",), ("schedule", "pause")])
def test_help_is_french_under_a_french_locale(path: tuple[str, ...]) -> None:
    """`newsletter --help`, `send --help` and `schedule pause --help` under LANGUAGE=fr show
    French headings and help texts, and none of the English sentences."""
    shown = show_help(*path, env=FRENCH)
    assert shown.startswith(f"Utilisation{NB}: main")
    assert f"Options{NB}:" in shown and "--help Afficher ce message et quitter." in shown
    for english in ("Usage:", "Options:", "Commands:", "Show this message", *english_texts()):
        assert english not in shown, english
    if path == ():
        assert f"Faire tourner la lettre du dimanche{NB}: collecter des liens" in shown
        assert "--version Afficher la version et quitter." in shown
        assert f"Commandes{NB}:" in shown and "schedule Afficher les prochains dimanches" in shown
    if path == ("send",):
        assert "Envoyer le prochain numéro, envoyer un test, suspendre" in shown
        assert "now Assembler le prochain numéro avec tous les liens en attente" in shown
    if path == ("schedule", "pause"):
        assert "Suspendre le calendrier jusqu’à DATE" in shown
        assert "--until DATE Reprise à cette date locale. [obligatoire]" in shown
        assert f"--reason TEXT Pourquoi, par exemple «{NB}Pause estivale{NB}»." in shown


@pytest.mark.parametrize("path", [(), ("send",), ("schedule", "pause")])
def test_help_stays_english_otherwise(path: tuple[str, ...]) -> None:
    """The same help under LANGUAGE=en is click's English, the docstrings as written."""
    shown = show_help(*path, env=ENGLISH)
    assert shown.startswith("Usage: main") and "--help Show this message and exit." in shown
    assert "Utilisation" not in shown and "Afficher" not in shown
    command: click.Command = main
    for name in path:
        command = subcommand(command, name)
    assert flat(help_msgid(command.help or "")) in shown


def test_every_help_screen_is_french() -> None:
    """Every command's and group's help under LANGUAGE=fr shows no English help text, with
    click's notes translated: defaults and ranges (`schedule show`)."""
    paths = command_paths(main)
    assert len(paths) > 40
    english = english_texts()
    for path in paths:
        shown = show_help(*path, env=FRENCH)
        assert [text for text in english if text in shown] == [], path
    weeks = show_help("schedule", "show", env=FRENCH)
    assert f"--weeks INTEGER Combien de semaines montrer, de 1 à 104. [par défaut{NB}: 8]" in weeks
    assert "'YYYY-MM-DD' ou" in weeks and "HH:MM')" in weeks  # not 'HH :MM'


def test_help_texts_are_extracted_from_the_command_tree() -> None:
    """`make messages` reads the help texts from the click commands as click shows them:
    docstrings cleaned of their indentation, options' help, click's headings."""
    found = messages.keys(messages.extract())
    pause = subcommand(subcommand(main, "schedule"), "pause")
    assert pause.help.startswith("Pause the schedule until DATE")
    assert (None, help_msgid(pause.help)) in found and "\n    " not in help_msgid(pause.help)
    assert (None, "Back on this local date.") in found
    assert {(None, "Usage:"), (None, "Options:"), (None, "default: %(default)s")} <= found
    assert (None, "Show the version and exit.") in found


def run(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config.path), *args], env=FRENCH)


def test_commands_parse_as_before_under_a_french_locale(sqlite_site: tuple[Config, Engine]) -> None:
    """Translated help changes nothing in parsing: options, required options and ranges
    behave as before under LANGUAGE=fr."""
    config, engine = sqlite_site
    result = run(config, "schedule", "pause", "--until", "2099-09-06", "--reason", "Été")
    assert result.exit_code == 0, result.output
    with transaction(engine) as session:
        assert session.scalars(select(Pause.reason)).all() == ["Été"]
    assert run(config, "schedule", "pause", "--reason", "x").exit_code == 2  # --until missing
    assert run(config, "schedule", "show", "--weeks", "105").exit_code == 2  # out of range
    assert run(config, "schedule", "show", "--weeks", "2").exit_code == 0


@pytest.mark.parametrize(
    ("args", "french", "english"),
    [
        (
            ["schedule", "pause"],
            f"Erreur{NB}: Option '--until' manquante.",
            "Error: Missing option '--until'.",
        ),
        (
            ["sned"],
            f"Erreur{NB}: Commande «{NB}sned{NB}» inconnue. Vouliez-vous dire 'send'{NB}?",
            "Error: No such command 'sned'. Did you mean 'send'?",
        ),
        (
            ["send", "now", "--bogus"],
            f"Erreur{NB}: Option «{NB}--bogus{NB}» inconnue.",
            "Error: No such option '--bogus'.",
        ),
        (
            ["--bogus"],
            f"Erreur{NB}: Option «{NB}--bogus{NB}» inconnue.",
            "Error: No such option '--bogus'.",
        ),
        (
            ["subscribers", "list", "--status", "gone"],
            f"Erreur{NB}: Valeur invalide pour '--status'{NB}: «{NB}gone{NB}» n’est pas une des "
            "valeurs possibles ('pending', 'active', 'unsubscribed', 'bounced').",
            "Error: Invalid value for '--status': 'gone' is not one of 'pending', 'active', "
            "'unsubscribed', 'bounced'.",
        ),
        (
            ["links", "move", "1"],
            f"Erreur{NB}: Argument 'POSITION' manquant.",
            "Error: Missing argument 'POSITION'.",
        ),
        (
            ["send", "now", "extra"],
            f"Erreur{NB}: Arguments en trop{NB}: extra.",
            "Error: Unexpected extra arguments: extra.",
        ),
        (
            ["schedule", "show", "--weeks", "0"],
            f"Erreur{NB}: --weeks{NB}: doit être un nombre entier de 1 à 104",
            "Error: --weeks: must be a whole number from 1 to 104",
        ),
    ],
)
def test_usage_errors_speak_the_users_locale(args: list[str], french: str, english: str) -> None:
    """A usage error (missing option or argument, unknown command or option, a value out of
    its choices or range, an extra argument) exits 2 with its usage line, hint and reason in
    French under a French locale and in English otherwise."""
    for env, expected, hint in (
        (FRENCH, french, "Essayez «"),
        (ENGLISH, english, "Try '"),
    ):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 2, result.output
        assert expected in flat(result.output)
        if "--weeks" not in args:  # the product's own refusals print one line, no usage
            assert hint in result.output


def test_a_command_loads_only_its_own_module() -> None:
    """`newsletter schedule show --help` imports the schedule's commands, not link intake,
    the web app or the return path (a command starts in what it uses)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from newsletter.cli import main\n"
        "main(['schedule', 'show', '--help'], standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('newsletter.cli.')))\n"
        "print('newsletter.intake.metadata' in sys.modules, 'newsletter.web.app' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={"LANGUAGE": "en"}
    )
    assert result.returncode == 0, result.stderr
    modules, heavy = result.stdout.strip().splitlines()[-2:]
    assert "newsletter.cli.schedule" in modules and "newsletter.cli.content" not in modules
    assert heavy == "False False"
