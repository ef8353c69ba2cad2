"""The editor's schedule commands (pause, resume, delay, skip) and the schedule as editors
see it (the coming slots and what happens at each).

A command records the editor's intent (a ``pause`` or ``slot_override`` row); the slot itself
is decided later by ``newsletter.schedule.dispatch`` when it comes due. A slot that has already been
decided cannot be overridden.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.config import Config
from newsletter.errors import ConflictError
from newsletter.i18n import format_date
from newsletter.models import Pause, RunKind, SendRun, Slot, SlotOverride
from newsletter.schedule.dispatch import (
    overrides,
    pause_windows,
    reason_text,
    schedule_of,
    translator,
)
from newsletter.schedule.policy import (
    Cause,
    Decision,
    PauseWindow,
    SlotOutcome,
    WeeklySchedule,
    check_pause_until,
    decide,
    delay_target,
    next_slot,
    to_utc,
    upcoming_slots,
)
from newsletter.sending import render_email, start_send_run


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
    reason = content.check_text(reason, "reason", limit=500)
    pause = Pause(created_at=now, until=until, reason=reason, notify=notify, ended_at=None)
    session.add(pause)
    session.flush()
    if notify:
        start_pause_notice(session, config, pause, now)
    return pause


def start_pause_notice(session: Session, config: Config, pause: Pause, now: datetime) -> SendRun:
    """Start the send run of the pause notice (idempotent on its key)."""
    _ = translator(config)
    back = first_slot_on_or_after(schedule_of(config), pause.until)
    language = config.language
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
    decision = Decision(slot, SlotOutcome.DELAYED, Cause.EDITOR_DELAY, delayed_to=send_at)
    recorded.reason = reason_text(config, schedule, decision)
    session.flush()
    return pending


def _pending_delay(session: Session) -> SlotOverride | None:
    """The delay of a slot recorded ``delayed`` whose delayed send is not recorded yet."""
    query = (
        select(SlotOverride)
        .join(Slot, Slot.slot_at == SlotOverride.slot_at)
        .where(SlotOverride.action == "delay", Slot.outcome == SlotOutcome.DELAYED.value)
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
    reason = content.check_text(reason, "reason", limit=500)
    row = SlotOverride(slot_at=slot, action="skip", send_at=None, reason=reason, created_at=now)
    return _set_override(session, row)


# --- the schedule as editors see it ----------------------------------------------------------


@dataclass(frozen=True)
class PlannedSlot:
    """A coming (or recorded) slot: ``outcome`` is what was recorded or what will happen if
    nothing changes (``sent`` meaning it will send when links are queued)."""

    slot_at: datetime
    outcome: SlotOutcome
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
            PlannedSlot(passed.slot_at, SlotOutcome.DELAYED, passed.reason, True, pending.send_at)
        )
    for slot in upcoming_slots(schedule, start, weeks):
        row = session.scalar(select(Slot).where(Slot.slot_at == slot))
        if row is not None:
            planned.append(PlannedSlot(slot, SlotOutcome(row.outcome), row.reason, True))
            continue
        decision = decide(
            schedule, slot, slot, pauses=pauses, overrides=found, grace=timedelta(0), has_links=True
        )
        reason = (
            "" if decision.outcome is SlotOutcome.SENT else reason_text(config, schedule, decision)
        )
        planned.append(PlannedSlot(slot, decision.outcome, reason, False, decision.delayed_to))
    return planned


def schedule_state(session: Session, config: Config, now: datetime) -> dict[str, object]:
    """The schedule on ``/healthz``: the next slot, what happens there, when the next issue
    can go out, and any pause."""
    planned = planned_slots(session, config, now, 2)
    coming = next(p for p in planned if p.slot_at > now)
    sending = next(
        (p for p in planned if p.outcome in (SlotOutcome.SENT, SlotOutcome.DELAYED)), None
    )
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
