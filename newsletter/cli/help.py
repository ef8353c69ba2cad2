"""``--help`` in the user's language.

Click takes a command's help from its docstring and an option's from ``help=``, once, at
import. Those English texts stay as they are and serve as msgids: every command under ``main``
is a ``HelpCommand`` (every group a ``HelpGroup``) that looks them up in the command line's
catalogue when it formats its help, with click's own headings and notes, so the language is
decided when help is shown, like any other message of the command line. Parsing is click's,
unchanged. ``help_texts`` walks the command tree for ``make messages`` (``tools/messages.py``),
so no docstring is written twice.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click

from newsletter.cli.language import cli_gettext, cli_language
from newsletter.i18n import N_, typography

# Click's section names and the msgids shown for them (French puts a space before the colon).
HEADINGS = {
    "Options": N_("Options:"),
    "Commands": N_("Commands:"),
    "Positional arguments": N_("Positional arguments:"),
}
HELP_OPTION_TEXT = N_("Show this message and exit.")  # click's ``--help``, on every command


def help_msgid(text: str) -> str:
    """The msgid of a help text: the text as click shows it (``inspect.cleandoc``, cut at the
    first form feed), its ``\\b`` (no rewrap) markers kept."""
    return inspect.cleandoc(text).partition("\f")[0]


def translate_help(text: str | None) -> str | None:
    """``text`` in the command line's language; the text itself when it has no translation."""
    if not text:
        return text
    msgid = help_msgid(text)
    found = cli_gettext()(msgid)
    return text if found == msgid else found


class HelpFormatter(click.HelpFormatter):
    """Click's formatter with the usage prefix and the section headings translated."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        if prefix is None:
            _ = cli_gettext()
            usage = _("Usage:")
            prefix = f"{usage} "
        super().write_usage(prog, args, prefix)

    def write_heading(self, heading: str) -> None:
        text = cli_gettext()(HEADINGS[heading]) if heading in HEADINGS else f"{heading}:"
        self.write(f"{'':>{self.current_indent}}{text}\n")


class HelpContext(click.Context):
    """A context whose help (and usage line) is written by ``HelpFormatter``."""

    formatter_class = HelpFormatter


def option_help(option: click.Option, ctx: click.Context) -> tuple[str, str] | None:
    """``option``'s row under Options: its spellings, then its translated help and notes
    (environment variable, default, range, required), as click lays them out."""
    record = option.get_help_record(ctx)
    if record is None:
        return None
    _ = cli_gettext()
    extra = option.get_help_extra(ctx)
    notes = []
    if "envvars" in extra:
        notes.append(_("env var: %(var)s") % {"var": ", ".join(extra["envvars"])})
    if "default" in extra:
        notes.append(_("default: %(default)s") % {"default": extra["default"]})
    if "range" in extra:
        notes.append(extra["range"])
    if "required" in extra:
        notes.append(_("required"))
    text = translate_help(option.help) or ""
    if notes:
        shown = typography("; ".join(notes), cli_language())
        text = f"{text}  [{shown}]" if text else f"[{shown}]"
    return record[0], text


class TranslatedHelp(click.Command):
    """What ``HelpCommand`` and ``HelpGroup`` share: their help shown in the user's language."""

    context_class = HelpContext

    def _shown(self) -> TranslatedHelp:
        """A copy of this command holding its help texts translated, for click to lay out."""
        shown = copy.copy(self)
        shown.help = translate_help(self.help)
        shown.short_help = translate_help(self.short_help)
        return shown

    def get_short_help_str(self, limit: int = 45) -> str:
        return click.Command.get_short_help_str(self._shown(), limit)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        click.Command.format_help_text(self._shown(), ctx, formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for param in self.get_params(ctx):
            row = option_help(param, ctx) if isinstance(param, click.Option) else None
            if row is not None:
                rows.append(row)
        if rows:
            with formatter.section("Options"):
                formatter.write_dl(rows)


class HelpCommand(TranslatedHelp):
    """A command whose ``--help`` speaks the user's language."""


class HelpGroup(TranslatedHelp, click.Group):
    """A group whose ``--help`` speaks the user's language, as do its commands and groups."""

    command_class = HelpCommand
    group_class: type[click.Group] | type[type] | None = type  # subgroups: this class

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)


@dataclass(frozen=True)
class HelpText:
    """A help text to translate: its msgid, the module that declares it and where it shows."""

    msgid: str
    module: str
    command: str


def help_texts(command: click.Command, path: str = "newsletter") -> Iterator[HelpText]:
    """Every help text of ``command`` and of the commands under it (help, short help, options'
    help), as msgids."""
    module = _module_of(command)
    for text in (command.help, command.short_help):
        if text:
            yield HelpText(help_msgid(text), module, path)
    for param in command.params:
        if isinstance(param, click.Option) and param.help:
            yield HelpText(help_msgid(param.help), module, path)
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in sorted(command.list_commands(ctx)):  # loads lazily registered commands
            sub = command.get_command(ctx, name)
            if sub is not None:
                yield from help_texts(sub, f"{path} {name}")


def _module_of(command: click.Command) -> str:
    callback: Any = command.callback
    while hasattr(callback, "__wrapped__"):  # pass_app and pass_context wrap the function
        callback = callback.__wrapped__
    return str(getattr(callback, "__module__", __name__))
