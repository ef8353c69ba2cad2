"""``newsletter schedule show|pause|resume|delay|skip`` and ``newsletter scheduler``: the
weekly schedule as editors steer it. Every decision is ``newsletter.schedule.dispatch``'s."""

from __future__ import annotations

import asyncio
from datetime import datetime, time

import click
from sqlalchemy import select

from newsletter.cli.base import (
    AppContext,
    WholeNumber,
    _,
    cli_ngettext,
    cli_pgettext,
    main,
    pass_app,
)
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.content import queued_links
from newsletter.db import transaction
from newsletter.models import SendRun
from newsletter.schedule.dispatch import grace_of, schedule_of
from newsletter.schedule.policy import (
    SlotOutcome,
    format_local,
    parse_local_date,
    parse_local_datetime,
    to_utc,
)
from newsletter.services.schedule import (
    PlannedSlot,
    active_pause,
    delay_slot,
    first_slot_on_or_after,
    pause_schedule,
    planned_slots,
    resume_schedule,
    skip_slot,
)

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@main.group("schedule")
def schedule_group() -> None:
    """Show the coming Sundays; pause, resume, delay or skip the weekly issue."""


@schedule_group.command("show")
@click.option(
    "--weeks",
    type=WholeNumber("weeks", 1, 104),
    default=8,
    show_default=True,
    help="How many weeks to show, from 1 to 104.",
)
@click.option(
    "--from",
    "start",
    default=None,
    metavar="DATETIME",
    help="Start from this local date or time ('YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'); default now.",
)
@pass_app
def show(app: AppContext, weeks: int, start: str | None) -> None:
    """The next WEEKS slots in the list's time zone and what happens at each."""
    config = app.config
    now = utc_now()
    begin = _parse_from(config, start) if start else now
    with transaction(app.engine()) as session:
        slots = planned_slots(session, config, begin, weeks)
        pause = active_pause(session, config, begin)
        queued = len(queued_links(session))
    click.echo(_describe_schedule(config))
    if pause is not None:
        click.echo(
            _(
                "Paused until %(until)s (exclusive): %(reason)s",
                until=pause.until.isoformat(),
                reason=pause.reason,
            )
        )
    click.echo(_("%(count)s link(s) queued for the next issue.", count=queued))
    first_pending = next((s for s in slots if not s.recorded), None)
    for slot in slots:
        click.echo(_describe_slot(config, slot, queued if slot is first_pending else None))


def _parse_from(config: Config, text: str) -> datetime:
    if len(text.strip()) <= 10:
        day = parse_local_date(text, "from")
        return to_utc(datetime.combine(day, time.min, tzinfo=config.timezone))
    return parse_local_datetime(text, config.timezone, "from")


def _describe_schedule(config: Config) -> str:
    schedule = schedule_of(config)
    hours = f"{grace_of(config).total_seconds() / 3600:g}"
    return (
        f"Every {DAY_NAMES[schedule.weekday]} at {schedule.at:%H:%M} {schedule.zone.key} "
        f"(catch-up grace {hours} h)."
    )


def _describe_slot(config: Config, slot: PlannedSlot, queued: int | None = None) -> str:
    """One slot as ``schedule show`` prints it, in the dashboard calendar's words; ``queued``
    is the number of links waiting, given for the next slot that will decide."""
    when = format_local(slot.slot_at, config.timezone)
    return f"{when}  {_slot_state(config, slot, queued)}"


def _slot_state(config: Config, slot: PlannedSlot, queued: int | None) -> str:
    outcome = slot.outcome
    status = cli_pgettext("status", outcome.value)
    if slot.recorded:
        state = (
            _("%(state)s: %(reason)s", state=status, reason=slot.reason) if slot.reason else status
        )
        return _("%(state)s (recorded)", state=state)
    if outcome is SlotOutcome.SENT:
        if queued is None:
            return _("sends if links are queued")
        if not queued:
            return _("skipped: nothing queued")
        return cli_ngettext("sends (%(num)s link queued)", "sends (%(num)s links queued)", queued)
    if outcome is SlotOutcome.DELAYED and slot.send_at is not None:
        return _("delayed to %(when)s", when=format_local(slot.send_at, config.timezone))
    if outcome is SlotOutcome.PAUSED:
        return _("paused: %(reason)s", reason=slot.reason or _("no reason given"))
    if outcome is SlotOutcome.SKIPPED:
        return _("skipped: %(reason)s", reason=slot.reason or _("no reason given"))
    return status


@schedule_group.command("pause")
@click.option("--until", "until", required=True, metavar="DATE", help="Back on this local date.")
@click.option("--reason", required=True, help="Why, e.g. 'Pause estivale'.")
@click.option("--notify", is_flag=True, help="Send subscribers one short notice now.")
@click.option("--detach", is_flag=True, help="Leave sending the notice to `serve`/`worker`.")
@pass_app
def pause(app: AppContext, until: str, reason: str, notify: bool, detach: bool) -> None:
    """Pause the schedule until DATE (that day's slot sends again); links stay queued for the
    catch-up issue."""
    config, engine, now = app.config, app.engine(), utc_now()
    day = parse_local_date(until, "until")
    with transaction(engine) as session:
        row = pause_schedule(session, config, until=day, reason=reason, notify=notify, now=now)
        key = f"notice:pause:{row.id}"
        run_id = session.scalar(select(SendRun.id).where(SendRun.key == key))
    back = first_slot_on_or_after(schedule_of(config), day)
    click.echo(
        _(
            "Paused until %(until)s; next issue %(when)s.",
            until=day.isoformat(),
            when=format_local(back, config.timezone),
        )
    )
    if run_id is not None:
        click.echo(_("Notice started (run %(run_id)s).", run_id=run_id))
        if not detach:
            from newsletter.cli.send import drive_run

            drive_run(config, engine, run_id)


@schedule_group.command("resume")
@pass_app
def resume(app: AppContext) -> None:
    """End the pause now: the next slot sends."""
    config = app.config
    with transaction(app.engine()) as session:
        ended = resume_schedule(session, config, utc_now())
        slot = planned_slots(session, config, utc_now(), 1)[0]
    click.echo(_("Resumed (%(count)s pause(s) ended).", count=len(ended)))
    click.echo(_("Next: %(slot)s", slot=_describe_slot(config, slot)))


@schedule_group.command("delay")
@click.option("--to", "to", required=True, metavar="'YYYY-MM-DD HH:MM'", help="New local time.")
@pass_app
def delay(app: AppContext, to: str) -> None:
    """Send this week's issue at another local time instead; the next week is normal."""
    config, now = app.config, utc_now()
    send_at = parse_local_datetime(to, config.timezone, "send_at")
    with transaction(app.engine()) as session:
        row = delay_slot(session, config, send_at, now)
    click.echo(
        _(
            "The issue of %(slot)s goes out at %(when)s.",
            slot=format_local(row.slot_at, config.timezone),
            when=format_local(send_at, config.timezone),
        )
    )


@schedule_group.command("skip")
@click.option("--reason", default="", help="Why (recorded on the slot).")
@pass_app
def skip(app: AppContext, reason: str) -> None:
    """Skip the next slot; its links wait for the following issue."""
    config = app.config
    with transaction(app.engine()) as session:
        row = skip_slot(session, config, reason, utc_now())
    click.echo(
        _(
            "The slot of %(slot)s will be skipped.",
            slot=format_local(row.slot_at, config.timezone),
        )
    )


@main.command("scheduler")
@click.option("--no-sender", is_flag=True, help="Only record slots; leave sending to `serve`.")
@pass_app
def scheduler_command(app: AppContext, no_sender: bool) -> None:
    """Run the weekly schedule in the foreground (what `serve` also does), until Ctrl-C."""
    from scheduler import run_standalone

    asyncio.run(run_standalone(app.config, app.engine(), with_sender=not no_sender))
