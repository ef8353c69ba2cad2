"""``newsletter init`` and ``newsletter db upgrade``: create the config and the schema."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from newsletter.cli.base import AppContext, _, main, pass_app
from newsletter.config import load_config, render_config_file
from newsletter.db import make_engine, upgrade_database
from newsletter.errors import ConflictError


@main.command()
@click.option("--force", is_flag=True, help="Overwrite an existing configuration file.")
@click.option("--no-examples", is_flag=True, help="Do not queue the example links.")
@pass_app
def init(app: AppContext, force: bool, no_examples: bool) -> None:
    """Create newsletter.toml (with a fresh secret key), migrate the database and queue a few
    example links for the first issue."""
    path = Path(app.config_path)
    if path.exists() and not force:
        raise ConflictError("%(path)s already exists (use --force to overwrite it)", path=str(path))
    values = {
        "web": {"secret_key": secrets.token_urlsafe(32)},
        "database": {"url": "sqlite:///newsletter.db"},
    }
    path.write_text(render_config_file(values), encoding="utf-8")
    path.chmod(0o600)  # it holds the secret key
    config = load_config(path)
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    click.echo(
        _(
            "Wrote %(path)s and created the database (%(url)s).",
            path=str(path),
            url=config.database_url,
        )
    )
    if not str(config.get("list", "postal_address")).strip():
        click.echo(
            _(
                "Warning: [list] postal_address is empty. The law (CAN-SPAM) asks for a postal "
                "address in every newsletter: set it in %(path)s before the first send.",
                path=str(path),
            ),
            err=True,
        )
    if not no_examples:
        from newsletter.examples import queue_example_content

        queued = queue_example_content(engine)
        click.echo(_("Queued %(count)s example links for the next issue.", count=queued))


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@pass_app
def db_upgrade(app: AppContext) -> None:
    """Apply pending migrations."""
    engine = app.engine(require_schema=False)
    upgrade_database(engine)
    click.echo(_("Database is up to date."))
