"""Click's usage errors (a missing option, an unknown command, a bad value) in the user's
language: the usage line, the hint and the reason, as click would print them in English.

Click builds these sentences itself, through the standard library's ``gettext`` and
compiled ``.mo`` files that this project does not ship, so here they are made again from the
exception's own fields (which option, which command, the close matches) with the catalogue.
"""

from __future__ import annotations

import re

import click
from click.exceptions import MissingParameter, NoArgsIsHelpError, NoSuchCommand, NoSuchOption

from newsletter.cli.language import _

_EXTRA_ARGUMENTS = re.compile(r"^Got unexpected extra arguments? \((?P<args>.*)\)$")


def show_usage_error(error: click.UsageError) -> None:
    """Print ``error`` to stderr as click does (usage, hint, ``Error: …``), translated."""
    if isinstance(error, NoArgsIsHelpError):  # a group given no command shows its help
        error.show()
        return
    ctx = error.ctx
    if ctx is not None:
        hint = _("Try '%(command)s --help' for help.", command=ctx.command_path)
        click.echo(f"{ctx.get_usage()}\n{hint}\n", err=True)
    message = usage_error_message(error)
    click.echo(_("Error: %(message)s", message=message), err=True)


def usage_error_message(error: click.UsageError) -> str:
    """The reason of ``error`` in the command line's language (click's English for a kind
    of error it does not know)."""
    if isinstance(error, MissingParameter):
        name = _param_hint(error)
        if (error.param_type or getattr(error.param, "param_type_name", "")) == "argument":
            return _("Missing argument %(name)s.", name=name)
        return _("Missing option %(name)s.", name=name)
    if isinstance(error, click.BadParameter):
        return _(
            "Invalid value for %(name)s: %(message)s",
            name=_param_hint(error),
            message=error.message,
        )
    if isinstance(error, NoSuchOption):
        return _close_matches(
            _("No such option '%(name)s'.", name=error.option_name), error.possibilities
        )
    if isinstance(error, NoSuchCommand):
        return _close_matches(
            _("No such command '%(name)s'.", name=error.command_name), error.possibilities
        )
    extra = _EXTRA_ARGUMENTS.match(error.message)
    if extra is not None:
        return _("Unexpected extra arguments: %(args)s.", args=extra.group("args"))
    return error.format_message()


def _param_hint(error: click.BadParameter) -> str:
    hint = error.param_hint
    if hint is None and error.param is not None:
        hint = error.param.get_error_hint(error.ctx)
    if hint is None:
        return ""
    return " / ".join(f"'{h}'" for h in hint) if not isinstance(hint, str) else hint


def _close_matches(message: str, possibilities: list[str] | None) -> str:
    if not possibilities:
        return message
    names = ", ".join(f"'{p}'" for p in sorted(possibilities))
    suggestion = _("Did you mean %(names)s?", names=names)
    return f"{message} {suggestion}"
