"""``newsletter subscribers …``: add, import, export, list, show, remove, erase, stats."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
from sqlalchemy.orm import Session

from newsletter.cli.base import AppContext, main, pass_app
from newsletter.clock import utc_now
from newsletter.db import transaction
from newsletter.errors import ConflictError, DeliveryError, InvalidInputError
from subscribers import io as subscriber_io
from subscribers import optin, store
from subscribers.models import ConsentKind, SubscriberStatus

STATUSES = [status.value for status in SubscriberStatus]


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
            _refuse_existing(session, app, email)
            mail = optin.request_subscription(
                session, config, email=email, name=name, context=context, now=now
            )
        if mail is not None:
            _send_confirmation(app, mail)
        click.echo(f"Added {email} as pending; a confirmation email was sent.")
        return
    if not source.strip():
        raise InvalidInputError("--confirmed needs --source naming where consent was given")
    with transaction(engine) as session:
        _refuse_existing(session, app, email)
        subscriber = store.create_subscriber(
            session,
            email=email,
            name=name,
            status=SubscriberStatus.ACTIVE,
            source=source,
            language=str(config.get("list", "language")),
            now=now,
        )
        context = store.ConsentContext(source=source, detail="added by an editor")
        store.record_consent(
            session, config.secret_key, subscriber, ConsentKind.CONFIRMED, now, context
        )
    click.echo(f"Added {subscriber.email} as active (consent source: {source}).")


def _refuse_existing(session: Session, app: AppContext, email: str) -> None:
    existing = store.find_subscriber(session, email)
    if existing is not None:
        raise ConflictError(f"{existing.email} is already known (status: {existing.status})")
    if store.is_suppressed(session, app.config.secret_key, email):
        raise ConflictError(
            f"{email} was erased at its owner's request; only they can subscribe again, on the form"
        )


def _send_confirmation(app: AppContext, mail: optin.ConfirmationMail) -> None:
    from newsletter.sending.transactional import TransactionalMailer

    try:
        asyncio.run(TransactionalMailer(app.config).send_confirmation(mail))
    except DeliveryError as exc:
        raise DeliveryError(f"the subscriber was added but the email failed: {exc}") from None


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(subscriber_io.FORMATS), default="auto", show_default=True
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
    rows = subscriber_io.read_import_file(file, fmt)
    config, engine, now = app.config, app.engine(), utc_now()
    language = str(config.get("list", "language"))
    with Session(engine, expire_on_commit=False) as session:
        report = subscriber_io.import_rows(
            session,
            config.secret_key,
            rows,
            confirmed=confirmed,
            source=source,
            language=language,
            now=now,
        )
        # A dry run does all the work, then throws it away in one rollback.
        if dry_run:
            session.rollback()
        else:
            session.commit()
    prefix = "Dry run, nothing changed. " if dry_run else ""
    click.echo(f"{prefix}Read {len(rows)} rows from {file}.")
    for line in report.lines():
        click.echo(line)


@subscribers.command("export")
@click.argument("email", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@pass_app
def export(app: AppContext, email: str | None, fmt: str, status: str | None) -> None:
    """Print every subscriber as CSV or JSON; with EMAIL, everything held about that person
    (as JSON)."""
    with transaction(app.engine()) as session:
        if email:
            data = store.export_person(session, email)
            click.echo(json.dumps(data, ensure_ascii=False, indent=2))
            return
        click.echo(subscriber_io.export_subscribers(session, fmt, status), nl=False)


@subscribers.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only this status.")
@pass_app
def list_(app: AppContext, status: str | None) -> None:
    """List subscribers: address, status, name."""
    with transaction(app.engine()) as session:
        for subscriber in store.list_subscribers(session, status):
            click.echo(f"{subscriber.email}\t{subscriber.status}\t{subscriber.name}")


@subscribers.command("show")
@click.argument("email")
@pass_app
def show(app: AppContext, email: str) -> None:
    """Show one subscriber and their consent log."""
    with transaction(app.engine()) as session:
        data = store.export_person(session, email)
    for key, value in data["subscriber"].items():
        click.echo(f"{key}: {value if value is not None else '-'}")
    click.echo("consent log:")
    for event in data["consent_log"]:
        where = ", ".join(
            f"{k}={event[k]}" for k in ("source", "ip", "consent_text_version") if event[k]
        )
        click.echo(f"  {event['at']}  {event['kind']}  {where}")


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
    click.echo(f"Unsubscribed {email}." if changed else f"{email} was already unsubscribed.")


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def erase(app: AppContext, email: str, yes: bool) -> None:
    """Delete everything personal about EMAIL; keep only a keyed hash so no import re-adds it."""
    if not yes:
        click.confirm(
            f"Erase every personal datum about {email}? This cannot be undone", abort=True
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
    click.echo(f"Erased {email}; only a keyed hash of the address is kept.")


@subscribers.command("stats")
@pass_app
def stats(app: AppContext) -> None:
    """How many subscribers have each status."""
    with transaction(app.engine()) as session:
        counts = store.count_by_status(session)
    for status, count in counts.items():
        click.echo(f"{status}: {count}")
    click.echo(f"total: {sum(counts.values())}")
