"""The root ``newsletter`` group, shared state and the error mapping."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from newsletter.cli.help import HelpCommand, HelpGroup
from newsletter.cli.language import _ as _
from newsletter.cli.language import cli_gettext as cli_gettext
from newsletter.cli.language import cli_language as cli_language
from newsletter.cli.usage import show_usage_error
from newsletter.config import Config, DeprecatedName, config_path_from, load_config
from newsletter.db import current_revision, head_revision, make_engine
from newsletter.errors import InvalidInputError, NewsletterError, NotInitialisedError
from newsletter.i18n import gettext, ngettext, translations
from newsletter.inputs import MAX_ID, parse_count
from newsletter.templating import translator

F = TypeVar("F", bound=Callable[..., Any])

# How the command line names the field an error is about (``NewsletterError.where``): by the
# option that sets it. Other places (a file and line, a setting) are shown as they are.
CLI_FLAGS = {
    "until": "--until",
    "from": "--from",
    "reason": "--reason",
    "send_at": "--to",
    "source": "--source",
    "format": "--format",
    "status": "--status",
    "intro": "--intro",
    "subject": "--subject",
    "title": "--title",
    "excerpt": "--excerpt",
    "tag": "--tag",
    "name": "--name",
    "password": "password",
    "port": "--port",
    "link_id": "LINK_ID",
    "position": "POSITION",
    "number": "NUMBER",
    "yes": "--yes",
    "days": "--days",
    "run": "--run",
    "weeks": "--weeks",
    "feed_id": "FEED_ID",
    "message_id": "MESSAGE_ID",
}


def cli_ngettext(singular: str, plural: str, num: int) -> str:
    """The plural form for ``num`` in the command line's language, filled with ``num``."""
    return ngettext(cli_language())(singular, plural, num) % {"num": num}


def cli_pgettext(context: str, msgid: str) -> str:
    """``msgid`` in ``context`` (e.g. ``status``) in the command line's language."""
    return translations(cli_language()).pgettext(context, msgid)


def cli_word(value: object) -> str:
    """A status, kind or action word (``active``, ``hard_bounce``) in the command line's
    language, as the dashboard shows it; the word itself when it has no translation."""
    return translator(cli_language())(value)


def deprecation_warning(note: DeprecatedName) -> str:
    """The warning for a deprecated setting name, in the command line's language."""
    if note.used:
        return _(
            "Warning: %(old)s (%(source)s) is deprecated: rename it %(new)s.",
            old=note.old,
            source=note.source,
            new=note.new,
        )
    return _(
        "Warning: %(old)s (%(source)s) is deprecated and ignored, since %(new)s is set: remove it.",
        old=note.old,
        source=note.source,
        new=note.new,
    )


class WholeNumber(click.ParamType[int, Any]):
    """A whole number in ASCII digits between ``low`` and ``high`` (an id, a position, a
    port). Out of range or not a number is the product's ``InvalidInputError``, so the
    command prints one line and exits 2 like any other refused input."""

    name = "integer"

    def __init__(self, where: str, low: int = 1, high: int = MAX_ID) -> None:
        self.where, self.low, self.high = where, low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            number = value if isinstance(value, int) else parse_count(str(value), self.where)
        except InvalidInputError:
            number = -1
        if not self.low <= number <= self.high:
            raise InvalidInputError(
                "must be a whole number from %(low)s to %(high)s",
                self.where,
                low=self.low,
                high=self.high,
            )
        return number


class Choice(click.Choice[str]):
    """``click.Choice`` whose refusal speaks the command line's language."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            choices = ", ".join(f"'{c}'" for c in self.choices)
            self.fail(_("'%(value)s' is not one of %(choices)s.", value=value, choices=choices))


def cli_label(where: str) -> str:
    """The command line's name for the field ``where``."""
    return CLI_FLAGS.get(where, where)


@dataclass
class AppContext:
    """What every command needs, loaded lazily so ``init`` works before a config exists."""

    config_option: str | None
    _engine: Engine | None = field(default=None, repr=False)

    @cached_property
    def config(self) -> Config:
        config = load_config(self.config_option)
        for note in config.deprecated:
            click.echo(deprecation_warning(note), err=True)
        return config

    @property
    def config_path(self) -> str:
        return str(config_path_from(self.config_option))

    def engine(self, *, require_schema: bool = True) -> Engine:
        """The database engine; raises ``NotInitialisedError`` if migrations never ran."""
        if self._engine is None:
            self._engine = make_engine(self.config.database_url)
        if not require_schema:
            return self._engine
        revision = current_revision(self._engine)
        if revision is None:
            raise NotInitialisedError(
                "the database has no schema yet: run `newsletter init` (or `newsletter db upgrade`)"
            )
        if revision != head_revision(self._engine):
            raise NotInitialisedError(
                "the database was made by an older version (schema %(revision)s): run "
                "`newsletter db upgrade` (back it up first)",
                revision=revision,
            )
        return self._engine


# The root's commands and the module (in ``newsletter.cli``) that registers each on ``main``
# when imported. Loading one on demand keeps a command's start (and ``newsletter worker``'s)
# to what it uses: importing every module costs over half a second.
COMMAND_MODULES = {
    "init": "setup",
    "db": "setup",
    "links": "content",
    "issue": "content",
    "serve": "serve",
    "editors": "editors",
    "send": "send",
    "deliveries": "send",
    "worker": "send",
    "subscribers": "subscribers",
    "schedule": "schedule",
    "scheduler": "schedule",
    "feeds": "feeds",
    "inbound": "inbound",
}


class NewsletterGroup(HelpGroup):
    """Maps the product's errors to a one-line message and an exit code, never a traceback.
    Its commands and groups show their help in the user's language (``newsletter.cli.help``).
    Its commands are loaded when first asked for (``COMMAND_MODULES``)."""

    command_class = HelpCommand
    group_class = HelpGroup

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(f"newsletter.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:  # ``newsletter --bogus``: the top level's own options
            show_usage_error(exc)
            sys.exit(exc.exit_code)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's: unknown, missing option, bad value
            show_usage_error(exc)
            sys.exit(exc.exit_code)
        except NewsletterError as exc:
            message = exc.render(gettext(cli_language()), cli_label)
            click.echo(_("Error: %(message)s", message=message), err=True)
            sys.exit(exc.exit_code)
        except OperationalError as exc:  # the database went away or is locked mid-command
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            message = _("the database failed: %(reason)s", reason=reason)
            click.echo(_("Error: %(message)s", message=message), err=True)
            sys.exit(2)


@click.group(cls=NewsletterGroup)
@click.option(
    "--config",
    "config_option",
    envvar="NEWSLETTER_CONFIG",
    default=None,
    metavar="FILE",
    help="Configuration file (default: ./newsletter.toml, or $NEWSLETTER_CONFIG).",
)
@click.version_option(package_name="sunday-newsletter")
@click.pass_context
def main(ctx: click.Context, config_option: str | None) -> None:
    """Run the Sunday email: collect links, assemble issues, send them, manage subscribers."""
    ctx.obj = AppContext(config_option=config_option)


pass_app = click.make_pass_decorator(AppContext)
