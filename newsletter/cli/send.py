"""``newsletter send now|test|pause|resume|status``, ``newsletter deliveries N`` and
``newsletter worker``: start, watch and steer sends from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import signal
import sys
from datetime import timedelta
from typing import Any

import click
from sqlalchemy import Engine, select

from newsletter.cli.base import AppContext, main, pass_app
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import DeliveryError, NotFoundError
from newsletter.models import Delivery, RunStatus, SendRun
from newsletter.sending.publish import issue_run_key, publish_next_issue
from newsletter.sending.service import (
    RunProgress,
    SenderStats,
    get_run,
    latest_run,
    pause_run,
    resume_run,
    run_progress,
    run_sender,
)

PROGRESS_EVERY = 0.5  # seconds between progress refreshes
PLAIN_EVERY = 5.0  # seconds between progress lines when stdout is not a terminal


@main.group()
def send() -> None:
    """Send the next issue, send a test, pause, resume and watch sends."""


@send.command("now")
@click.option("--intro", default=None, help="Intro text (default: the saved draft).")
@click.option("--detach", is_flag=True, help="Start the send and leave it to `serve`/`worker`.")
@pass_app
def send_now(app: AppContext, intro: str | None, detach: bool) -> None:
    """Assemble the next issue from every queued link and send it to every active subscriber."""
    engine = app.engine()
    with transaction(engine) as session:
        issue = publish_next_issue(session, app.config, utc_now(), intro)
        run = session.scalars(select(SendRun).where(SendRun.key == issue_run_key(issue.number)))
        run_id = run.one().id
        total = run_progress(session, run_id, utc_now()).total
    click.echo(f"Issue #{issue.number} «{issue.subject}»: {total} recipients (run {run_id}).")
    if not detach:
        drive_run(app.config, engine, run_id)


@send.command("test")
@click.argument("email")
@pass_app
def send_test(app: AppContext, email: str) -> None:
    """Send the next issue as it stands to EMAIL, subject marked as a test; nothing recorded."""
    from newsletter.content import next_issue_view
    from newsletter.sending.message import MessageTemplate, Recipient
    from newsletter.sending.render import render_digest
    from newsletter.sending.smtp import send_single
    from subscribers.models import Subscriber
    from subscribers.tokens import make_unsubscribe_token

    config, now = app.config, utc_now()
    with transaction(app.engine()) as session:
        rendered = render_digest(config, next_issue_view(session, config, now))
        subscriber_id = session.scalar(
            select(Subscriber.id).where(Subscriber.email_key == email.strip().lower())
        )
    token = make_unsubscribe_token(config.secret_key, subscriber_id or 0)
    template = MessageTemplate.prepare(config, rendered, test=True)
    data = template.for_recipient(Recipient(email, "", f"{config.base_url}/u/{token}"), now)
    asyncio.run(send_single(config, str(config.get("list", "from_address")), [email], data))
    click.echo(f"Test of «{rendered.subject}» sent to {email}.")


@send.command("pause")
@click.option("--run", "run_id", type=int, default=None, help="Run id (default: the latest).")
@click.option("--reason", default="paused by an editor", help="Why (shown in `send status`).")
@pass_app
def send_pause(app: AppContext, run_id: int | None, reason: str) -> None:
    """Pause a running send: no new message starts; messages in flight finish."""
    with transaction(app.engine()) as session:
        run = pause_run(session, _run_id(session, run_id), reason, utc_now())
        click.echo(f"Run {run.id} ({run.key}) paused.")


@send.command("resume")
@click.option("--run", "run_id", type=int, default=None, help="Run id (default: the latest).")
@click.option("--detach", is_flag=True, help="Leave the sending to `serve`/`worker`.")
@pass_app
def send_resume(app: AppContext, run_id: int | None, detach: bool) -> None:
    """Resume a paused send where it stopped (retries become due at once)."""
    engine = app.engine()
    with transaction(engine) as session:
        run = resume_run(session, _run_id(session, run_id), utc_now())
        resumed = run.id
        click.echo(f"Run {run.id} ({run.key}) resumed.")
    if not detach:
        drive_run(app.config, engine, resumed)


@send.command("status")
@click.option("--run", "run_id", type=int, default=None, help="Run id (default: the latest).")
@pass_app
def send_status(app: AppContext, run_id: int | None) -> None:
    """Counts by state, sending rate, estimated time left and the last errors of a send."""
    with transaction(app.engine()) as session:
        progress = run_progress(session, _run_id(session, run_id), utc_now())
    for line in describe(progress):
        click.echo(line)


@main.command("deliveries")
@click.argument("number", type=int)
@click.option("--status", "status", default=None, help="Only this state (e.g. failed, bounced).")
@click.option("--format", "fmt", type=click.Choice(["text", "csv"]), default="text")
@pass_app
def deliveries(app: AppContext, number: int, status: str | None, fmt: str) -> None:
    """Who got issue NUMBER and who did not: one line per recipient."""
    with transaction(app.engine()) as session:
        run = session.scalar(select(SendRun).where(SendRun.key == issue_run_key(number)))
        if run is None:
            raise NotFoundError(f"issue #{number} has not been sent")
        query = select(Delivery).where(Delivery.run_id == run.id).order_by(Delivery.id)
        if status:
            query = query.where(Delivery.status == status)
        rows = list(session.scalars(query))
    fields = ("email", "status", "attempts", "sent_at", "last_error")
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            sent = row.sent_at.isoformat() if row.sent_at else ""
            writer.writerow((row.email, row.status, row.attempts, sent, row.last_error))
        return
    for row in rows:
        sent = row.sent_at.strftime("%Y-%m-%d %H:%M:%S") if row.sent_at else "-"
        error = f"  {row.last_error}" if row.last_error else ""
        click.echo(f"{row.email:40} {row.status:8} {row.attempts:>2} {sent}{error}")
    click.echo(f"{len(rows)} deliveries.")


@main.command("worker")
@click.option("--once", is_flag=True, help="Exit when no running send has work left.")
@pass_app
def worker(app: AppContext, once: bool) -> None:
    """Send every running send's messages; several workers may share one PostgreSQL database.
    Stops cleanly (in-flight messages recorded) on SIGTERM or Ctrl-C."""
    engine = app.engine()
    stats = asyncio.run(_work(app.config, engine, once))
    click.echo(f"Sent {stats.sent}, retried {stats.temporary}, bounced {stats.bounced}.")


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


def _run_id(session: Any, run_id: int | None) -> int:
    return get_run(session, run_id).id if run_id is not None else latest_run(session).id


def describe(progress: RunProgress) -> list[str]:
    """The lines of ``send status``."""
    counts = ", ".join(f"{status} {n}" for status, n in sorted(progress.counts.items()))
    lines = [
        f"Run {progress.run_id} ({progress.key}) «{progress.subject}»: {progress.status}",
        f"  {progress.finished}/{progress.total} finished — {counts or 'no recipients'}",
        f"  rate {progress.rate:.1f} msg/s, ETA {_eta(progress.eta)}",
    ]
    if progress.pause_reason:
        lines.append(f"  paused: {progress.pause_reason}")
    lines += [f"  {note}" for note in stopped_notes(progress)]
    for email, error in progress.last_errors:
        lines.append(f"  error {email}: {error}")
    return lines


# --- senders that stopped (issue 11) ---------------------------------------------------------
def stopped_notes(progress: RunProgress) -> list[str]:
    """One line per sender that stopped holding messages of the run (local times)."""
    notes = []
    for held in progress.stopped_senders:
        who = f"{held.count} messages held by a sender that stopped (pid {held.pid} on {held.host})"
        if held.taken_back_at is not None:
            notes.append(f"{who}; taken back at {held.taken_back_at.astimezone():%H:%M:%S}")
        elif held.due_at is not None:
            notes.append(f"{who}; to be taken back at {held.due_at.astimezone():%H:%M:%S}")
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
        progress = run_progress(session, run_id, utc_now())
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
        raise DeliveryError(f"run {run_id} is paused ({progress.pause_reason}); {hint}")


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
        return run_progress(session, run_id, utc_now())
