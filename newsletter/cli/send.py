"""``newsletter send now|test|pause|resume|status|reprepare|cancel``, ``newsletter
deliveries N`` and ``newsletter worker``: start, watch and steer sends from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import timedelta

import click
from sqlalchemy import Engine

from newsletter.cli.base import (
    AppContext,
    Choice,
    WholeNumber,
    _,
    cli_ngettext,
    cli_word,
    main,
    pass_app,
)
from newsletter.cli.inbound import deliverability_lines
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import read_transaction, transaction
from newsletter.errors import ConflictError, DeliveryError, InvalidInputError
from newsletter.models import RunStatus
from newsletter.sending import RunProgress, SenderStats, run_sender
from newsletter.services import inbound, sends

PROGRESS_EVERY = 0.5  # seconds between progress refreshes
PLAIN_EVERY = 5.0  # seconds between progress lines when stdout is not a terminal

RUN_ID = WholeNumber("run")


@main.group()
def send() -> None:
    """Send the next issue, send a test, pause, resume and watch sends."""


@send.command("now")
@click.option("--intro", default=None, help="Intro text (default: the saved draft).")
@click.option("--detach", is_flag=True, help="Start the send and leave it to `serve`/`worker`.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@pass_app
def send_now(app: AppContext, intro: str | None, detach: bool, yes: bool) -> None:
    """Assemble the next issue from every queued link and send it to every active subscriber.
    In a terminal, shows the recipient count and asks first; scripts pass --yes."""
    engine = app.engine()
    if not yes:
        confirm_send(app.config, engine)
    now = utc_now()
    # Render before the write transaction: a `serve` beside us keeps answering unsubscribes.
    with read_transaction(engine) as session:
        issue = sends.issue_to_publish(session, app.config, now, intro)
    prepared = sends.prepare_issue(app.config, issue)
    with transaction(engine) as session:
        started = sends.publish_now(session, app.config, now, intro, prepared)
    click.echo(
        _(
            "Issue #%(number)s «%(subject)s»: %(recipients)s (run %(run_id)s).",
            number=started.issue_number,
            subject=started.subject,
            recipients=cli_ngettext("%(num)s recipient", "%(num)s recipients", started.recipients),
            run_id=started.run_id,
        )
    )
    if not detach:
        drive_run(app.config, engine, started.run_id)


def stdin_is_terminal() -> bool:
    """Whether a person can answer a question (a script's stdin is a pipe or a file)."""
    return sys.stdin.isatty()


def confirm_send(config: Config, engine: Engine) -> None:
    """Show what would be sent to how many people and ask; refuse without a terminal."""
    with transaction(engine) as session:
        sends.check_can_publish(session, utc_now())
        preview = sends.preview_send(session, config, utc_now())
    if not stdin_is_terminal():
        raise InvalidInputError(
            "not a terminal, so nobody can confirm: add --yes to send without asking", "yes"
        )
    click.echo(
        _(
            "Issue #%(number)s «%(subject)s», %(links)s links, to %(recipients)s active "
            "subscribers.",
            number=preview.issue_number,
            subject=preview.subject,
            links=preview.links,
            recipients=preview.recipients,
        )
    )
    if not click.confirm(_("Send it now?"), default=False):
        raise ConflictError("nothing was sent")


@send.command("reprepare")
@click.option("--run", "run_id", type=RUN_ID, default=None, help="Run id (default: the latest).")
@click.option("--subject", default=None, help="New subject (default: the draft's, else kept).")
@click.option("--intro", default=None, help="New intro (default: the draft's, else kept).")
@click.option("--detach", is_flag=True, help="Leave the sending to `serve`/`worker`.")
@pass_app
def send_reprepare(
    app: AppContext, run_id: int | None, subject: str | None, intro: str | None, detach: bool
) -> None:
    """Render a paused send that nobody got yet again (after fixing the draft, a setting or
    with --subject/--intro) and resume it."""
    engine = app.engine()
    with transaction(engine) as session:
        progress = sends.reprepare_send(
            session,
            app.config,
            sends.resolve_run_id(session, run_id),
            utc_now(),
            subject=subject,
            intro=intro,
        )
    click.echo(
        _(
            "Run %(run_id)s (%(key)s) prepared again: «%(subject)s».",
            run_id=progress.run_id,
            key=progress.key,
            subject=progress.subject,
        )
    )
    if not detach:
        drive_run(app.config, engine, progress.run_id)


@send.command("cancel")
@click.option("--run", "run_id", type=RUN_ID, default=None, help="Run id (default: the latest).")
@pass_app
def send_cancel(app: AppContext, run_id: int | None) -> None:
    """Cancel a paused send that nobody got yet: the issue is withdrawn and its links go back
    to the queue."""
    with transaction(app.engine()) as session:
        cancelled = sends.cancel_send(
            session, app.config, sends.resolve_run_id(session, run_id), utc_now()
        )
    click.echo(
        _(
            "Send cancelled: issue #%(number)s withdrawn, %(links)s links back in the queue.",
            number=cancelled.issue_number,
            links=cancelled.links_requeued,
        )
    )


@send.command("test")
@click.argument("email")
@pass_app
def send_test(app: AppContext, email: str) -> None:
    """Send the next issue as it stands to EMAIL, subject marked as a test; nothing recorded."""
    config = app.config
    with read_transaction(app.engine()) as session:
        view = sends.next_issue_view(session, config, utc_now())
    rendered = sends.render_view(config, view)
    asyncio.run(sends.send_test(config, rendered, email, utc_now()))
    click.echo(_("Test of «%(subject)s» sent to %(email)s.", subject=rendered.subject, email=email))


@send.command("pause")
@click.option("--run", "run_id", type=RUN_ID, default=None, help="Run id (default: the latest).")
@click.option("--reason", default="paused by an editor", help="Why (shown in `send status`).")
@pass_app
def send_pause(app: AppContext, run_id: int | None, reason: str) -> None:
    """Pause a running send: no new message starts; messages in flight finish."""
    with transaction(app.engine()) as session:
        progress = sends.pause_send(
            session, sends.resolve_run_id(session, run_id), reason, utc_now()
        )
    click.echo(_("Run %(run_id)s (%(key)s) paused.", run_id=progress.run_id, key=progress.key))


@send.command("resume")
@click.option("--run", "run_id", type=RUN_ID, default=None, help="Run id (default: the latest).")
@click.option("--detach", is_flag=True, help="Leave the sending to `serve`/`worker`.")
@pass_app
def send_resume(app: AppContext, run_id: int | None, detach: bool) -> None:
    """Resume a paused send where it stopped (retries become due at once)."""
    engine = app.engine()
    with transaction(engine) as session:
        progress = sends.resume_send(session, sends.resolve_run_id(session, run_id), utc_now())
    click.echo(_("Run %(run_id)s (%(key)s) resumed.", run_id=progress.run_id, key=progress.key))
    if not detach:
        drive_run(app.config, engine, progress.run_id)


@send.command("status")
@click.option("--run", "run_id", type=RUN_ID, default=None, help="Run id (default: the latest).")
@pass_app
def send_status(app: AppContext, run_id: int | None) -> None:
    """Counts by state, sending rate, estimated time left and the last errors of a send."""
    with transaction(app.engine()) as session:
        progress = sends.send_progress(session, sends.resolve_run_id(session, run_id), utc_now())
        figures = inbound.deliverability(session, progress.run_id)  # the return path
    for line in describe(progress):
        click.echo(line)
    for line in deliverability_lines(figures):
        click.echo(line)


@main.command("deliveries")
@click.argument("number", type=WholeNumber("number"))
@click.option("--status", "status", default=None, help="Only this state (e.g. failed, bounced).")
@click.option("--format", "fmt", type=Choice(["text", "csv"]), default="text")
@pass_app
def deliveries(app: AppContext, number: int, status: str | None, fmt: str) -> None:
    """Who got issue NUMBER and who did not: one line per recipient."""
    with transaction(app.engine()) as session:
        rows = sends.issue_send_report(session, number, status)
        figures = inbound.issue_deliverability(session, number)  # the return path
    if fmt == "csv":
        for chunk in sends.report_csv(rows):
            click.echo(chunk, nl=False)
        return
    for row in rows:
        sent = row.sent_at.strftime("%Y-%m-%d %H:%M:%S") if row.sent_at else "-"
        error = f"  {row.last_error}" if row.last_error else ""
        click.echo(f"{row.email:40} {cli_word(row.status):12} {row.attempts:>2} {sent}{error}")
    click.echo(_("%(count)s deliveries.", count=len(rows)))
    for line in deliverability_lines(figures):
        click.echo(line)


@main.command("worker")
@click.option("--once", is_flag=True, help="Exit when no running send has work left.")
@pass_app
def worker(app: AppContext, once: bool) -> None:
    """Send every running send's messages; several workers may share one PostgreSQL database.
    Stops cleanly (in-flight messages recorded) on SIGTERM or Ctrl-C."""
    engine = app.engine()
    stats = asyncio.run(_work(app.config, engine, once))
    click.echo(
        _(
            "Sent %(sent)s, retried %(retried)s, bounced %(bounced)s.",
            sent=stats.sent,
            retried=stats.temporary,
            bounced=stats.bounced,
        )
    )


async def _work(config: Config, engine: Engine, once: bool) -> SenderStats:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    return await run_sender(config, engine, stop_when_idle=once, stop=stop)


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (the sender then finishes what it has in flight)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)


# --- helpers ---------------------------------------------------------------------------------


def describe(progress: RunProgress) -> list[str]:
    """The lines of ``send status``."""
    counts = ", ".join(f"{cli_word(status)} {n}" for status, n in sorted(progress.counts.items()))
    lines = [
        _(
            "Run %(run_id)s (%(key)s) «%(subject)s»: %(status)s",
            run_id=progress.run_id,
            key=progress.key,
            subject=progress.subject,
            status=cli_word(progress.status),
        ),
        _(
            "  %(finished)s/%(total)s finished — %(counts)s",
            finished=progress.finished,
            total=progress.total,
            counts=counts or _("no recipients"),
        ),
        _("  rate %(rate).1f msg/s, ETA %(eta)s", rate=progress.rate, eta=_eta(progress.eta)),
    ]
    if progress.pause_reason:
        lines.append(_("  paused: %(reason)s", reason=progress.pause_reason))
    lines += [f"  {note}" for note in stopped_notes(progress)]
    for email, error in progress.last_errors:
        lines.append(_("  error %(email)s: %(error)s", email=email, error=error))
    return lines


# --- senders that stopped (issue 11) ---------------------------------------------------------
def stopped_notes(progress: RunProgress) -> list[str]:
    """One line per sender that stopped holding messages of the run (local times)."""
    notes = []
    for held in progress.stopped_senders:
        who = _(
            "%(count)s messages held by a sender that stopped (pid %(pid)s on %(host)s)",
            count=held.count,
            pid=held.pid,
            host=held.host,
        )
        if held.taken_back_at is not None:
            at = f"{held.taken_back_at.astimezone():%H:%M:%S}"
            notes.append(_("%(who)s; taken back at %(at)s", who=who, at=at))
        elif held.due_at is not None:
            at = f"{held.due_at.astimezone():%H:%M:%S}"
            notes.append(_("%(who)s; to be taken back at %(at)s", who=who, at=at))
    return notes


# --- end of senders that stopped -------------------------------------------------------------


def _eta(eta: timedelta | None) -> str:
    if eta is None:
        return "-"
    seconds = int(eta.total_seconds())
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"


def drive_run(config: Config, engine: Engine, run_id: int) -> None:
    """Send run ``run_id`` in the foreground with a progress bar (TTY) or progress lines.

    Raises ``DeliveryError`` when the run paused itself (relay down or rejecting)."""
    asyncio.run(_drive(config, engine, run_id))
    with transaction(engine) as session:
        progress = sends.send_progress(session, run_id, utc_now())
    for line in describe(progress):
        click.echo(line)
    if progress.status == RunStatus.PAUSED:
        hint = "fix the cause, then `newsletter send resume`"
        if config.catcher_enabled:
            hint = (
                "no SMTP relay is configured ([smtp] host), so mail goes to the embedded "
                "catcher, which only runs inside `newsletter serve`: start it, or set a relay, "
                "then `newsletter send resume`"
            )
        raise DeliveryError(
            "run %(run_id)s is paused (%(reason)s); %(hint)s",
            run_id=run_id,
            reason=progress.pause_reason,
            hint=hint,
        )


async def _drive(config: Config, engine: Engine, run_id: int) -> None:
    # Ctrl-C or SIGTERM: stop claiming, let in-flight messages finish and be recorded; the
    # run stays running for `serve`/`worker` (or another `send resume`) to complete.
    stop = asyncio.Event()
    _stop_on_signals(stop)
    sender = asyncio.create_task(run_sender(config, engine, run_ids=[run_id], stop=stop))
    tty = sys.stdout.isatty()
    shown, last_plain = 0, 0.0
    loop = asyncio.get_running_loop()
    bar_cm = click.progressbar(length=1, label="Sending", show_pos=True) if tty else None
    with bar_cm if bar_cm is not None else contextlib.nullcontext() as bar:
        while not sender.done():
            await asyncio.wait({sender}, timeout=PROGRESS_EVERY)
            progress = await asyncio.to_thread(_progress, engine, run_id)
            if bar is not None:
                bar.length = max(progress.total, 1)
                bar.label = f"Sending {progress.rate:.0f} msg/s, ETA {_eta(progress.eta)}"
                bar.label += "".join(f" — {note}" for note in stopped_notes(progress)[:1])
                bar.update(progress.finished - shown)
                shown = progress.finished
            elif loop.time() - last_plain >= PLAIN_EVERY or sender.done():
                last_plain = loop.time()
                click.echo(
                    f"{progress.finished}/{progress.total} finished, "
                    f"{progress.rate:.1f} msg/s, ETA {_eta(progress.eta)}"
                )
                for note in stopped_notes(progress):  # issue 11: senders that stopped
                    click.echo(f"  {note}")
    await sender


def _progress(engine: Engine, run_id: int) -> RunProgress:
    with transaction(engine) as session:
        return sends.send_progress(session, run_id, utc_now())
