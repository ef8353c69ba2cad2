"""``newsletter subscribers …``: add, import, export, list, show, remove, erase, stats."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from newsletter.cli.base import AppContext, Choice, _, cli_word, main, pass_app
from newsletter.clock import utc_now
from newsletter.db import transaction
from newsletter.i18n import N_
from newsletter.sending import TransactionalMailer
from newsletter.services import subscribers as subscriber_service
from newsletter.services.subscribers import STATUSES, ImportOptions
from subscribers import io as subscriber_io
from subscribers import store


@main.group()
def subscribers() -> None:
    """Manage the people who receive the newsletter."""


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option(
    "--confirmed",
    is_flag=True,
    help="Consent was given elsewhere: add as active, no confirmation email (needs --source).",
)
@click.option(
    "--source", default="", help="Where the consent was given (required with --confirmed)."
)
@pass_app
def add(app: AppContext, email: str, name: str, confirmed: bool, source: str) -> None:
    """Add EMAIL. Without --confirmed, a confirmation email is sent (double opt-in)."""
    config, engine, now = app.config, app.engine(), utc_now()
    if not confirmed:
        context = store.ConsentContext(source=source or "cli")
        with transaction(engine) as session:
            mail = subscriber_service.request_subscription(
                session,
                config,
                email=email,
                name=name,
                context=context,
                now=now,
                refuse_known=True,
            )
        if mail is not None:
            mailer = TransactionalMailer(config)
            asyncio.run(subscriber_service.send_confirmation(mailer, mail))
        click.echo(_("Added %(email)s as pending; a confirmation email was sent.", email=email))
        return
    with transaction(engine) as session:
        subscriber = subscriber_service.add_confirmed(
            session, config, email=email, name=name, source=source, now=now
        )
    click.echo(
        _(
            "Added %(email)s as active (consent source: %(source)s).",
            email=subscriber.email,
            source=source,
        )
    )


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "fmt", type=Choice(subscriber_io.FORMATS), default="auto", show_default=True
)
@click.option("--confirmed", is_flag=True, help="The addresses consented elsewhere: add as active.")
@click.option(
    "--source", default="", help="Where the consent was given (required with --confirmed)."
)
@click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")
@pass_app
def import_(
    app: AppContext, file: Path, fmt: str, confirmed: bool, source: str, dry_run: bool
) -> None:
    """Import FILE (a plain list, or a listmonk or Mailchimp CSV export).

    Unsubscribed and erased addresses are skipped and counted; a bad row is reported by number
    and the rest imported. Without --confirmed, addresses are added as pending (no email is
    sent: they stay pending until they subscribe on the form).
    """
    text = subscriber_io.read_import_text(file)
    options = ImportOptions(fmt=fmt, confirmed=confirmed, source=source, dry_run=dry_run)
    result = subscriber_service.import_subscribers(
        app.engine(), app.config, text, str(file), options, utc_now()
    )
    if result.dry_run:
        click.echo(_("Dry run, nothing changed."))
    click.echo(_("Read %(count)s rows from %(file)s.", count=result.rows, file=str(file)))
    for line in result.report:
        click.echo(line)


@subscribers.command("export")
@click.argument("email", required=False)
@click.option("--format", "fmt", type=Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--status", type=Choice(STATUSES), default=None, help="Only this status.")
@pass_app
def export(app: AppContext, email: str | None, fmt: str, status: str | None) -> None:
    """Print every subscriber as CSV or JSON; with EMAIL, everything held about that person
    (as JSON)."""
    with transaction(app.engine()) as session:
        if email:
            data = store.export_person(session, email)
            click.echo(json.dumps(data, ensure_ascii=False, indent=2))
            return
        click.echo(subscriber_service.export_subscribers(session, fmt, status), nl=False)


@subscribers.command("list")
@click.option("--status", type=Choice(STATUSES), default=None, help="Only this status.")
@pass_app
def list_(app: AppContext, status: str | None) -> None:
    """List subscribers: address, status, name."""
    with transaction(app.engine()) as session:
        for subscriber in store.list_subscribers(session, status):
            click.echo(f"{subscriber.email}\t{subscriber.status}\t{subscriber.name}")


# ``subscribers show``'s lines: the exported field and how a person reads its name.
PERSON_FIELDS = {
    "email": N_("address"),
    "name": N_("name"),
    "status": N_("status"),
    "source": N_("source"),
    "language": N_("language"),
    "created_at": N_("created"),
    "confirmed_at": N_("confirmed"),
    "unsubscribed_at": N_("unsubscribed"),
    "bounced_at": N_("bounced"),
}


@subscribers.command("show")
@click.argument("email")
@pass_app
def show(app: AppContext, email: str) -> None:
    """Show one subscriber and their consent log."""
    with transaction(app.engine()) as session:
        data = store.export_person(session, email)
    person = data["subscriber"]
    for key, label in PERSON_FIELDS.items():
        value = person[key]
        shown = "-" if value is None else cli_word(value) if key == "status" else value
        click.echo(_("%(field)s: %(value)s", field=_(label), value=shown))
    click.echo(_("consent log:"))
    for event in data["consent_log"]:
        where = ", ".join(
            f"{k}={event[k]}" for k in ("source", "ip", "consent_text_version") if event[k]
        )
        click.echo(f"  {event['at']}  {cli_word(event['kind'])}  {where}")


@subscribers.command("remove")
@click.argument("email")
@pass_app
def remove(app: AppContext, email: str) -> None:
    """Unsubscribe EMAIL at once (kept, so an import cannot re-add it)."""
    now = utc_now()
    with transaction(app.engine()) as session:
        subscriber = store.get_subscriber(session, email)
        context = store.ConsentContext(source="editor", detail="removed by an editor")
        changed = store.deactivate(session, app.config.secret_key, subscriber, now, context)
    if changed:
        click.echo(_("Unsubscribed %(email)s.", email=email))
    else:
        click.echo(_("%(email)s was already unsubscribed.", email=email))


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def erase(app: AppContext, email: str, yes: bool) -> None:
    """Delete everything personal about EMAIL; keep only a keyed hash so no import re-adds it."""
    if not yes:
        click.confirm(
            _("Erase every personal datum about %(email)s? This cannot be undone", email=email),
            abort=True,
        )
    engine = app.engine()
    with transaction(engine) as session:
        store.erase_person(session, app.config.secret_key, email, utc_now())
    if engine.dialect.name == "sqlite":
        # Copy the zeroed pages into the database file and empty the WAL, which still holds
        # the pages as they were before the erasure.
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()
    click.echo(_("Erased %(email)s; only a keyed hash of the address is kept.", email=email))


@subscribers.command("stats")
@pass_app
def stats(app: AppContext) -> None:
    """How many subscribers have each status."""
    with transaction(app.engine()) as session:
        counts = store.count_by_status(session)
    for status, count in counts.items():
        click.echo(_("%(field)s: %(value)s", field=cli_word(status), value=count))
    click.echo(_("total: %(count)s", count=sum(counts.values())))
