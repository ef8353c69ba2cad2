"""``newsletter editors``: accounts for the web dashboard and tokens for the JSON API."""

from __future__ import annotations

import sys

import click

from newsletter.cli.base import AppContext, _, main, pass_app
from newsletter.clock import utc_now
from newsletter.db import transaction
from newsletter.editors import (
    add_editor,
    issue_api_token,
    list_editors,
    require_editor,
    set_password,
)


@main.group()
def editors() -> None:
    """Editor accounts for the dashboard (/admin) and API tokens (/api)."""


@editors.command("add")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)
@pass_app
def editors_add(app: AppContext, email: str, password_stdin: bool) -> None:
    """Create an editor account for EMAIL; prompts for the password."""
    password = _read_password(password_stdin)
    with transaction(app.engine()) as session:
        editor = add_editor(session, email=email, password=password, now=utc_now())
        click.echo(
            _("Created the editor account %(email)s. Sign in at /admin.", email=editor.email)
        )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt(_("Password"), hide_input=True, confirmation_prompt=True))


@editors.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@pass_app
def editors_password(app: AppContext, email: str, password_stdin: bool) -> None:
    """Set a new password for EMAIL; every open dashboard session of that editor ends."""
    password = _read_password(password_stdin)
    with transaction(app.engine()) as session:
        set_password(session, require_editor(session, email), password)
    click.echo(_("Password changed for %(email)s.", email=email.strip().lower()))


@editors.command("token")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A label to recognise the token.")
@pass_app
def editors_token(app: AppContext, email: str, name: str) -> None:
    """Create an API token for EMAIL and print it (shown once; only its hash is kept)."""
    with transaction(app.engine()) as session:
        editor = require_editor(session, email)
        token = issue_api_token(session, editor, name=name, now=utc_now())
    click.echo(token)


@editors.command("list")
@pass_app
def editors_list(app: AppContext) -> None:
    """List editor accounts and when each last signed in."""
    with transaction(app.engine()) as session:
        rows = list_editors(session)
        if not rows:
            click.echo(_("No editor accounts yet: run `newsletter editors add EMAIL`."))
        for editor in rows:
            last = (
                editor.last_login_at.isoformat(timespec="minutes")
                if editor.last_login_at
                else "never"
            )
            click.echo(_("%(email)s\tlast sign-in: %(when)s", email=editor.email, when=last))
