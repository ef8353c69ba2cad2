"""``newsletter inbound``: the return path from the command line.

``newsletter inbound`` runs the LMTP intake; ``inbound deliver`` takes one message on standard
input (Postfix ``pipe``, ``.forward``, procmail) and answers with a sysexits code;
``inbound poll`` reads the IMAP bounce mailbox once; ``inbound list`` and ``inbound show`` are
the editors' inbound view; ``inbound purge`` removes the raw bytes of old messages
(``[bounces] keep_raw_days``), as the schedule does daily.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence

import click

from newsletter.cli.base import AppContext, Choice, WholeNumber, _, cli_word, main, pass_app
from newsletter.clock import utc_now
from newsletter.db import transaction
from newsletter.inbound.figures import Deliverability
from newsletter.inbound.models import InboundKind
from newsletter.services.inbound import (
    get_inbound,
    list_inbound,
    purge_raw_messages,
    raw_retention,
    receive_message,
)

EX_DATAERR = 65  # sysexits.h: refused for good (empty or too large); the MTA bounces it
EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@main.group(invoke_without_command=True)
@click.option("--host", default=None, help="Listen address (default: [bounces] lmtp_host).")
@click.option(
    "--port",
    default=None,
    type=WholeNumber("port", high=65535),
    help="Listen port (default: [bounces] lmtp_port).",
)
@click.pass_context
def inbound(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Bounces, complaints and mailto unsubscribes. Alone: run the LMTP intake."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(AppContext)
    assert app is not None
    config, engine = app.config, app.engine()
    listen_host = host or str(config.get("bounces", "lmtp_host"))
    listen_port = int(config.get("bounces", "lmtp_port")) if port is None else port
    click.echo(
        _(
            "LMTP intake listening on %(host)s:%(port)s (Ctrl-C to stop)",
            host=listen_host,
            port=listen_port,
        )
    )

    async def serve() -> None:
        from newsletter.services.inbound_intake import lmtp_intake

        intake = lmtp_intake(config, engine, host=listen_host, port=listen_port)
        await intake.start()
        try:
            await asyncio.Event().wait()
        finally:
            await intake.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


@inbound.command("deliver")
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    help="Envelope recipient (Postfix pipe: ${recipient}); default: $ORIGINAL_RECIPIENT.",
)
@click.option("--sender", default=None, help="Envelope sender (Postfix pipe: ${sender}).")
@pass_app
def deliver(app: AppContext, recipients: Sequence[str], sender: str | None) -> None:
    """Take one message on standard input. Exit 0: recorded; 65: refused (empty, or over
    [bounces] max_message_bytes); 75: try again later."""
    limit = int(app.config.get("bounces", "max_message_bytes"))
    raw = sys.stdin.buffer.read(limit + 1)  # never more than one byte over the limit
    if not raw:
        click.echo(_("refused: the message is empty"), err=True)
        sys.exit(EX_DATAERR)
    if len(raw) > limit:
        click.echo(
            _(
                "refused: the message is larger than %(limit)s bytes ([bounces] max_message_bytes)",
                limit=limit,
            ),
            err=True,
        )
        sys.exit(EX_DATAERR)
    envelope_to = (
        list(recipients)
        or [
            value for name in ("ORIGINAL_RECIPIENT", "RECIPIENT") if (value := os.environ.get(name))
        ][:1]
    )
    envelope_from = sender if sender is not None else os.environ.get("SENDER", "")
    try:
        received = receive_message(
            app.engine(),
            app.config,
            raw,
            source="stdin",
            envelope_from=envelope_from,
            envelope_to=envelope_to,
            now=utc_now(),
        )
    except Exception as exc:
        click.echo(_("not recorded, try again later: %(error)s", error=str(exc)), err=True)
        sys.exit(EX_TEMPFAIL)
    click.echo(
        _(
            "recorded #%(id)s: %(kind)s, %(action)s",
            id=received.id,
            kind=_(received.kind),
            action=_(received.action),
        )
    )


@inbound.command("poll")
@pass_app
def poll(app: AppContext) -> None:
    """Read the IMAP bounce mailbox once ([bounces] imap_*)."""
    from newsletter.services.inbound_intake import poll_imap

    report = poll_imap(app.engine(), app.config, now_fn=utc_now)
    click.echo(
        _(
            "%(fetched)s new message(s): %(moved)s classified and moved to %(folder)s, "
            "%(kept)s left in place",
            fetched=report.fetched,
            moved=report.moved,
            folder=report.processed_folder,
            kept=report.kept,
        )
    )


@inbound.command("list")
@click.option(
    "--kind",
    type=Choice([k.value for k in InboundKind]),
    default=None,
    help="Only this classification (e.g. unclassified: the ones to read).",
)
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@pass_app
def list_command(app: AppContext, kind: str | None, limit: int) -> None:
    """The latest inbound messages: how each was classified and what was done."""
    with transaction(app.engine()) as session:
        rows = list_inbound(session, kind=kind, limit=limit)
    if not rows:
        click.echo(_("No inbound messages."))
        return
    tz = app.config.timezone
    for row in rows:
        when = row.received_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        ref = " " + _("send %(run_id)s", run_id=row.run_id) if row.run_id else ""
        kind, action = cli_word(row.kind), cli_word(row.action)
        click.echo(f"#{row.id} {when} {row.source:<8} {kind:<16} {action:<16}{ref}")
        click.echo(f"    {row.header_from[:60]} | {row.subject[:70]}")
        if row.detail:
            click.echo(f"    {row.detail[:150]}")


@inbound.command("show")
@click.argument("message_id", type=WholeNumber("message_id"))
@pass_app
def show(app: AppContext, message_id: int) -> None:
    """One inbound message, as received."""
    with transaction(app.engine()) as session:
        detail = get_inbound(session, message_id)
    row = detail.row
    kind, action = cli_word(row.kind), cli_word(row.action)
    click.echo(f"#{row.id} {row.source} {kind} {action} {detail.status_code}")
    envelope = f"{detail.envelope_from} -> {detail.envelope_to}"
    click.echo(_("%(field)s: %(value)s", field=_("envelope"), value=envelope))
    click.echo(_("%(field)s: %(value)s", field=_("detail"), value=row.detail))
    click.echo("")
    if detail.raw_removed_at is not None:
        removed = detail.raw_removed_at.astimezone(app.config.timezone).strftime("%Y-%m-%d")
        click.echo(
            _(
                "The raw message was removed on %(date)s, %(days)s days after it arrived "
                "([bounces] keep_raw_days).",
                date=removed,
                days=detail.kept_days,
            )
        )
        return
    click.echo(detail.text)


@inbound.command("purge")
@click.option(
    "--days",
    type=WholeNumber("days"),
    default=None,
    help="Remove the raw bytes of handled messages older than this many days "
    "(default: [bounces] keep_raw_days).",
)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@pass_app
def purge(app: AppContext, days: int | None, dry_run: bool) -> None:
    """Remove the raw bytes of old inbound messages; their rows and figures stay."""
    retention = raw_retention(app.config, handled_days=days)
    if retention.handled_days <= 0:
        click.echo(_("Retention is off ([bounces] keep_raw_days = 0): nothing removed."))
        return
    report = purge_raw_messages(app.engine(), retention, now=utc_now(), dry_run=dry_run)
    values = {"count": report.messages, "bytes": report.bytes, "days": retention.handled_days}
    if dry_run:
        line = _(
            "Would remove the raw bytes of %(count)s message(s) older than %(days)s days "
            "(%(bytes)s bytes); nothing changed.",
            **values,
        )
    else:
        line = _(
            "Removed the raw bytes of %(count)s message(s) older than %(days)s days "
            "(%(bytes)s bytes); their rows and figures stay.",
            **values,
        )
    click.echo(line)
    if report.waiting:
        click.echo(
            _(
                "%(count)s unclassified message(s) kept longer for an editor to read "
                "([bounces] keep_unclassified_days).",
                count=report.waiting,
            )
        )


def deliverability_lines(figures: Deliverability) -> list[str]:
    """A send's deliverability figures, for ``send status`` and ``deliveries N``."""
    d = figures.as_dict()
    rates = {key: f"{d[key]:.1%}" for key in ("hard_bounce_rate", "soft_bounce_rate")}
    rates.update(complaint_rate=f"{d['complaint_rate']:.2%}")
    rates.update(unsubscribe_rate=f"{d['unsubscribe_rate']:.1%}")
    values = {**d, **rates}
    return [
        "  "
        + _(
            "delivered %(delivered)s, hard bounces %(hard_bounced)s (%(hard_bounce_rate)s), "
            "soft bounces %(soft_bounced)s (%(soft_bounce_rate)s)",
            **values,
        ),
        "  "
        + _(
            "complaints %(complained)s (%(complaint_rate)s), "
            "unsubscribed since %(unsubscribed)s (%(unsubscribe_rate)s)",
            **values,
        ),
    ]
