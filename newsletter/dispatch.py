"""What happens at a slot: the schedule policy applied to the database, one recorded outcome
per slot (paused, delayed, skipped, missed or sent), and the editor's schedule commands.

The database is the truth (design decision 1). Deciding a slot inserts its ``slot`` row first,
inside the transaction that then publishes the issue and starts its send run: the unique
``slot_at`` makes a second firing (the same job twice, or a second process on the same
PostgreSQL) wait for the first transaction and then find the slot taken, so it does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import ConflictError, InvalidInputError
from newsletter.i18n import Gettext, format_date, gettext
from newsletter.ledger import start_send_run
from newsletter.models import Issue, Pause, RunKind, SendRun, Slot, SlotOverride
from newsletter.publish import publish_next_issue
from newsletter.render import render_email
from newsletter.schedule import (
    MAX_LOOKBACK,
    Cause,
    Decision,
    Outcome,
    Override,
    OverrideAction,
    PauseWindow,
    SlotRecord,
    WeeklySchedule,
    catch_up_weeks,
    check_pause_until,
    decide,
    delay_target,
    due_instants,
    format_local,
    next_slot,
    to_utc,
    upcoming_slots,
    weekly_schedule,
)

NOTHING_NEW = "nothing new"


def schedule_of(config: Config) -> WeeklySchedule:
    """The weekly schedule from ``[schedule] day``, ``time`` and ``timezone``."""
    section = "[schedule]"
    try:
        return weekly_schedule(
            str(config.get("schedule", "day")),
            str(config.get("schedule", "time")),
            str(config.get("schedule", "timezone")),
        )
    except InvalidInputError as exc:
        raise InvalidInputError(exc.reason, f"{section} {exc.where}") from None


def grace_of(config: Config) -> timedelta:
    return timedelta(hours=float(config.get("schedule", "grace_hours")))


def _translator(config: Config) -> Gettext:
    return gettext(str(config.get("list", "language")))


# --- reading the schedule's rows -------------------------------------------------------------


def pause_windows(session: Session) -> list[PauseWindow]:
    rows = session.scalars(select(Pause).order_by(Pause.id))
    return [PauseWindow(p.until, p.reason, p.ended_at, p.id) for p in rows]


def overrides(session: Session) -> list[Override]:
    rows = session.scalars(select(SlotOverride).order_by(SlotOverride.id))
    return [Override(o.slot_at, OverrideAction(o.action), o.send_at, o.reason) for o in rows]


def _decided_since(session: Session, start: datetime) -> list[datetime]:
    return list(session.scalars(select(Slot.slot_at).where(Slot.slot_at > start)))


# --- dispatching -----------------------------------------------------------------------------


class _AlreadyDecided(Exception):
    """Another firing recorded this slot first; raised to roll our transaction back."""


def dispatch_due(config: Config, engine: Engine, now: datetime) -> list[Slot]:
    """Decide and record every instant due at ``now`` (this week's slot, a delayed send, a
    slot missed while the service was down), oldest first; return the rows this call recorded.

    Safe to call as often as wanted, from several processes: each instant is recorded once.
    """
    schedule, grace = schedule_of(config), grace_of(config)
    with transaction(engine) as session:
        last = session.scalar(select(func.max(Slot.slot_at)))
        decided = _decided_since(session, now - MAX_LOOKBACK)
        found = overrides(session)
    due = due_instants(
        schedule, now, overrides=found, decided=decided, grace=grace, last_recorded=last
    )
    recorded = [dispatch_instant(config, engine, instant, now) for instant in due]
    return [slot for slot in recorded if slot is not None]


def dispatch_instant(
    config: Config, engine: Engine, instant: datetime, now: datetime
) -> Slot | None:
    """Decide ``instant`` and record its outcome; when it is a send, publish the next issue and
    start its send run in the same transaction. Returns ``None`` if it was already decided."""
    try:
        with transaction(engine) as session:
            return _decide_and_record(session, config, instant, now)
    except _AlreadyDecided:
        return None


def _decide_and_record(session: Session, config: Config, instant: datetime, now: datetime) -> Slot:
    schedule = schedule_of(config)
    decision = decide(
        schedule,
        instant,
        now,
        pauses=pause_windows(session),
        overrides=overrides(session),
        grace=grace_of(config),
        has_links=bool(content.queued_links(session)),
    )
    row = Slot(
        slot_at=instant,
        outcome=decision.outcome.value,
        reason=_reason_text(config, schedule, decision),
        decided_at=now,
    )
    session.add(row)
    try:
        session.flush()  # takes the unique slot_at: a concurrent firing waits here, then fails
    except IntegrityError:
        raise _AlreadyDecided from None
    if decision.outcome is Outcome.SENT:
        intro = _catch_up_intro(session, config, schedule, instant)
        row.issue_id = publish_next_issue(session, config, now, intro).id
        session.flush()
    return row


def _reason_text(config: Config, schedule: WeeklySchedule, decision: Decision) -> str:
    _ = _translator(config)
    match decision.cause:
        case Cause.PAUSE:
            return decision.reason or _("paused")
        case Cause.EDITOR_SKIP:
            return decision.reason or _("skipped by the editor")
        case Cause.EDITOR_DELAY:
            assert decision.delayed_to is not None
            return _("delayed to {when}").format(
                when=format_local(decision.delayed_to, schedule.zone)
            )
        case Cause.NOTHING_NEW:
            return _(NOTHING_NEW)
        case Cause.TOO_LATE:
            hours = f"{grace_of(config).total_seconds() / 3600:g}"
            return _("the service was down for more than {hours} h after the slot").format(
                hours=hours
            )
    return ""


def _history_since_last_issue(session: Session, before: datetime) -> list[Slot]:
    """Recorded slots before ``before`` since the last issue went out, whether at a slot or by
    hand (``send now``): the weeks whose links the next issue carries."""
    last_sent_slot = session.scalar(
        select(func.max(Slot.slot_at)).where(
            Slot.outcome == Outcome.SENT.value, Slot.slot_at < before
        )
    )
    last_issue = session.scalar(select(func.max(Issue.created_at)))
    query = select(Slot).where(Slot.slot_at < before).order_by(Slot.slot_at)
    for bound in (last_sent_slot, last_issue):
        if bound is not None:
            query = query.where(Slot.slot_at > bound)
    return list(session.scalars(query))


def _catch_up_intro(
    session: Session, config: Config, schedule: WeeklySchedule, instant: datetime
) -> str | None:
    """When the issue carries weeks that were paused, missed or skipped, and the editor wrote
    no intro, an intro saying which weeks it covers; else ``None`` (the draft's intro)."""
    if content.get_draft(session).intro:
        return None
    nothing_new = {NOTHING_NEW, _translator(config)(NOTHING_NEW)}
    history = [
        SlotRecord(
            row.slot_at,
            Outcome(row.outcome),
            kept_links=not (row.outcome == Outcome.SKIPPED and row.reason in nothing_new),
        )
        for row in _history_since_last_issue(session, instant)
    ]
    weeks = catch_up_weeks(history, instant, schedule.zone)
    return catch_up_intro(config, weeks) if weeks else None


def catch_up_intro(config: Config, weeks: Sequence[date]) -> str:
    """The default intro of a catch-up issue, naming the weeks it covers."""
    language = str(config.get("list", "language"))
    _ = gettext(language)
    names = [format_date(day, language) for day in weeks]
    listed = f"{', '.join(names[:-1])} {_('and')} {names[-1]}" if len(names) > 1 else names[0]
    return _("This issue catches up on the weeks of {weeks}.").format(weeks=listed)


# --- the editor's commands -------------------------------------------------------------------


def active_pause(session: Session, config: Config, now: datetime) -> Pause | None:
    """The pause covering the next slot, if any (the latest one when several overlap)."""
    slot = next_slot(schedule_of(config), now)
    for row in reversed(list(session.scalars(select(Pause).order_by(Pause.id)))):
        if PauseWindow(row.until, row.reason, row.ended_at).covers(slot, config.timezone):
            return row
    return None


def first_slot_on_or_after(schedule: WeeklySchedule, day: date) -> datetime:
    midnight = to_utc(datetime.combine(day, time.min, tzinfo=schedule.zone))
    return next_slot(schedule, midnight - timedelta(microseconds=1))


def pause_schedule(
    session: Session, config: Config, *, until: date, reason: str, notify: bool, now: datetime
) -> Pause:
    """Pause the schedule: slots before local ``until`` are recorded paused with ``reason``.

    With ``notify``, one short notice is sent now through the ledger (key
    ``notice:pause:{id}``, so it goes out once). Raises ``InvalidInputError`` for an end date
    that is not after today.
    """
    schedule = schedule_of(config)
    check_pause_until(schedule, until, now)
    reason = content.check_text(reason, "--reason", limit=500)
    pause = Pause(created_at=now, until=until, reason=reason, notify=notify, ended_at=None)
    session.add(pause)
    session.flush()
    if notify:
        start_pause_notice(session, config, pause, now)
    return pause


def start_pause_notice(session: Session, config: Config, pause: Pause, now: datetime) -> SendRun:
    """Start the send run of the pause notice (idempotent on its key)."""
    _ = _translator(config)
    back = first_slot_on_or_after(schedule_of(config), pause.until)
    language = str(config.get("list", "language"))
    until_text = format_date(back.astimezone(config.timezone).date(), language, weekday=True)
    subject = _("{name}: taking a break until {until}").format(
        name=str(config.get("list", "name")), until=until_text
    )
    rendered = render_email(
        config, "notice", {"subject": subject, "reason": pause.reason, "until_text": until_text}
    )
    return start_send_run(
        session,
        key=f"notice:pause:{pause.id}",
        kind=RunKind.NOTICE.value,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        issue_id=None,
        now=now,
    )


def resume_schedule(session: Session, config: Config, now: datetime) -> list[Pause]:
    """End every pause still in force, so the next slot sends. Raises ``ConflictError`` when
    nothing is paused."""
    today = now.astimezone(config.timezone).date()
    ended: list[Pause] = []
    for row in session.scalars(select(Pause).where(Pause.ended_at.is_(None))):
        if row.until > today:
            row.ended_at = now
            ended.append(row)
    if not ended:
        raise ConflictError("the schedule is not paused")
    session.flush()
    return ended


def _set_override(session: Session, override: SlotOverride) -> SlotOverride:
    decided = session.scalar(select(Slot.id).where(Slot.slot_at == override.slot_at))
    if decided is not None:
        raise ConflictError("this week's slot has already been decided")
    existing = session.scalar(select(SlotOverride).where(SlotOverride.slot_at == override.slot_at))
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(override)
    session.flush()
    return override


def delay_slot(session: Session, config: Config, send_at: datetime, now: datetime) -> SlotOverride:
    """Move this week's issue to ``send_at`` (after now, before the following week's slot);
    the next week's slot stays normal. When this week's slot already passed as delayed and its
    issue has not gone out, the delay is moved instead. Raises ``InvalidInputError`` /
    ``ConflictError``."""
    schedule = schedule_of(config)
    pending = _pending_delay(session)
    slot = delay_target(schedule, send_at, now, pending.slot_at if pending else None)
    if pending is None:
        row = SlotOverride(slot_at=slot, action="delay", send_at=send_at, reason="", created_at=now)
        return _set_override(session, row)
    pending.send_at = send_at
    recorded = session.scalars(select(Slot).where(Slot.slot_at == slot)).one()
    decision = Decision(slot, Outcome.DELAYED, Cause.EDITOR_DELAY, delayed_to=send_at)
    recorded.reason = _reason_text(config, schedule, decision)
    session.flush()
    return pending


def _pending_delay(session: Session) -> SlotOverride | None:
    """The delay of a slot recorded ``delayed`` whose delayed send is not recorded yet."""
    query = (
        select(SlotOverride)
        .join(Slot, Slot.slot_at == SlotOverride.slot_at)
        .where(SlotOverride.action == "delay", Slot.outcome == Outcome.DELAYED.value)
        .order_by(SlotOverride.slot_at.desc())
    )
    for override in session.scalars(query.limit(2)):
        sent = session.scalar(select(Slot.id).where(Slot.slot_at == override.send_at))
        if sent is None:
            return override
    return None


def skip_slot(session: Session, config: Config, reason: str, now: datetime) -> SlotOverride:
    """Skip the next slot with the editor's ``reason``; its links wait for the next issue."""
    slot = next_slot(schedule_of(config), now)
    reason = content.check_text(reason, "--reason", limit=500)
    row = SlotOverride(slot_at=slot, action="skip", send_at=None, reason=reason, created_at=now)
    return _set_override(session, row)


# --- the schedule as editors see it ----------------------------------------------------------


@dataclass(frozen=True)
class PlannedSlot:
    """A coming (or recorded) slot: ``outcome`` is what was recorded or what will happen if
    nothing changes (``sent`` meaning it will send when links are queued)."""

    slot_at: datetime
    outcome: Outcome
    reason: str
    recorded: bool
    send_at: datetime | None = None


def planned_slots(
    session: Session, config: Config, start: datetime, weeks: int
) -> list[PlannedSlot]:
    """The ``weeks`` regular slots after ``start`` and what happens at each, preceded by this
    week's slot when it passed as delayed and its issue is still to go out."""
    schedule = schedule_of(config)
    pauses, found = pause_windows(session), overrides(session)
    planned: list[PlannedSlot] = []
    pending = _pending_delay(session)
    if pending is not None and pending.slot_at <= start and pending.send_at is not None:
        passed = session.scalars(select(Slot).where(Slot.slot_at == pending.slot_at)).one()
        planned.append(
            PlannedSlot(passed.slot_at, Outcome.DELAYED, passed.reason, True, pending.send_at)
        )
    for slot in upcoming_slots(schedule, start, weeks):
        row = session.scalar(select(Slot).where(Slot.slot_at == slot))
        if row is not None:
            planned.append(PlannedSlot(slot, Outcome(row.outcome), row.reason, True))
            continue
        decision = decide(
            schedule, slot, slot, pauses=pauses, overrides=found, grace=timedelta(0), has_links=True
        )
        reason = (
            "" if decision.outcome is Outcome.SENT else _reason_text(config, schedule, decision)
        )
        planned.append(PlannedSlot(slot, decision.outcome, reason, False, decision.delayed_to))
    return planned


def schedule_state(session: Session, config: Config, now: datetime) -> dict[str, object]:
    """The schedule on ``/healthz``: the next slot, what happens there, when the next issue
    can go out, and any pause."""
    planned = planned_slots(session, config, now, 2)
    coming = next(p for p in planned if p.slot_at > now)
    sending = next((p for p in planned if p.outcome in (Outcome.SENT, Outcome.DELAYED)), None)
    pause = active_pause(session, config, now)
    if sending is not None:
        send_at: datetime | None = sending.send_at or sending.slot_at
    elif pause is not None:
        send_at = first_slot_on_or_after(schedule_of(config), pause.until)
    else:
        send_at = None
    return {
        "timezone": str(config.get("schedule", "timezone")),
        "next_slot": coming.slot_at.isoformat(),
        "next_slot_outcome": coming.outcome.value,
        "next_send_at": send_at.isoformat() if send_at is not None else None,
        "paused_until": pause.until.isoformat() if pause is not None else None,
        "pause_reason": pause.reason if pause is not None else None,
    }
