"""The weekly schedule as pure policy: slots, pause windows and editor overrides -> what is due
at ``now`` and what to do with it.

Nothing here does I/O or reads the clock; ``now`` is always a parameter (an aware datetime).
Instants are aware UTC datetimes; the schedule itself is expressed in the list's time zone, so
"Sunday 08:00" stays 08:00 local across daylight-saving changes. A local time that does not
exist on a given day (inside the spring-forward gap) is taken with the offset before the
change, i.e. it moves forward by the size of the gap; an ambiguous one (autumn fold) is the
first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.clock import local_date
from newsletter.errors import InvalidInputError
from newsletter.inputs import check_date
from newsletter.models import SlotOutcome as SlotOutcome  # what a slot turned into
from newsletter.settings import WEEKDAYS as WEEKDAYS  # the day names a schedule accepts

WEEK = timedelta(days=7)
# Slots whose links wait for the next issue (the catch-up issue names their weeks).
CARRIED_OUTCOMES = (SlotOutcome.PAUSED, SlotOutcome.MISSED, SlotOutcome.SKIPPED)


class Cause(StrEnum):
    """Why a slot got its outcome, so the dispatcher can word the recorded reason."""

    PUBLISH = "publish"
    PAUSE = "pause"  # an editor's pause window covers the slot
    EDITOR_SKIP = "editor-skip"
    EDITOR_DELAY = "editor-delay"
    NOTHING_NEW = "nothing-new"  # no link queued: never send an empty email
    TOO_LATE = "too-late"  # the service was down for longer than the grace period
    NOBODY = "nobody"  # no active subscriber: never use up an issue on nobody


@dataclass(frozen=True)
class WeeklySchedule:
    """One slot a week: ``weekday`` (0 = Monday) at local ``at`` in ``zone``."""

    weekday: int
    at: time
    zone: ZoneInfo


@dataclass(frozen=True)
class PauseWindow:
    """No issue for slots whose local date is before ``until`` (exclusive), unless the pause
    was ended (``resume``) before the slot."""

    until: date
    reason: str = ""
    ended_at: datetime | None = None
    id: int | None = None

    def covers(self, instant: datetime, zone: ZoneInfo) -> bool:
        if self.ended_at is not None and self.ended_at <= instant:
            return False
        return instant.astimezone(zone).date() < self.until


class OverrideAction(StrEnum):
    DELAY = "delay"
    SKIP = "skip"


@dataclass(frozen=True)
class Override:
    """An editor's decision about the regular slot at ``slot_at``."""

    slot_at: datetime
    action: OverrideAction
    send_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Decision:
    """What to record for the instant ``slot_at`` (a regular slot or a delayed send)."""

    slot_at: datetime
    outcome: SlotOutcome
    cause: Cause
    reason: str = ""  # the editor's words, when the cause is theirs
    delayed_to: datetime | None = None


# --- parsing ---------------------------------------------------------------------------------


def weekly_schedule(day: str, at: str, zone_name: str) -> WeeklySchedule:
    """Build the schedule from ``[schedule] day``, ``time`` (HH:MM) and ``timezone``.

    Raises ``InvalidInputError`` naming the bad value.
    """
    if day not in WEEKDAYS:
        raise InvalidInputError(
            "expected one of %(choices)s, got %(day)r", "day", choices=", ".join(WEEKDAYS), day=day
        )
    return WeeklySchedule(WEEKDAYS.index(day), parse_time(at), parse_zone(zone_name))


def parse_zone(name: str) -> ZoneInfo:
    """An IANA zone; raises ``InvalidInputError`` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError("unknown time zone %(zone)r", "timezone", zone=name) from None


def parse_time(text: str) -> time:
    """``HH:MM``; raises ``InvalidInputError``."""
    try:
        parsed = datetime.strptime(text.strip(), "%H:%M")
    except ValueError:
        raise InvalidInputError("expected HH:MM, got %(text)r", "time", text=text) from None
    return parsed.time()


def parse_local_date(text: str, where: str = "date") -> date:
    """``YYYY-MM-DD``; raises ``InvalidInputError`` naming ``where``."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            "expected a date like 2026-09-06, got %(text)r", where, text=text
        ) from None
    return check_date(day, where)


def parse_local_datetime(text: str, zone: ZoneInfo, where: str = "datetime") -> datetime:
    """``YYYY-MM-DD HH:MM`` in ``zone`` -> an aware UTC instant; raises ``InvalidInputError``."""
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise InvalidInputError(
            "expected a local time like '2026-03-30 18:00', got %(text)r", where, text=text
        ) from None
    check_date(naive.date(), where)
    return to_utc(naive.replace(tzinfo=zone))


def to_utc(local: datetime) -> datetime:
    """An aware local datetime as UTC (see the module docstring for gaps and folds)."""
    return local.astimezone(UTC)


# --- slots -----------------------------------------------------------------------------------


def slot_on(schedule: WeeklySchedule, day: date) -> datetime:
    """The UTC instant of the scheduled local time on local ``day`` (any weekday)."""
    return to_utc(datetime.combine(day, schedule.at, tzinfo=schedule.zone))


def _slot_day_of_week(schedule: WeeklySchedule, day: date) -> date:
    monday = day - timedelta(days=day.weekday())
    return monday + timedelta(days=schedule.weekday)


def latest_slot(schedule: WeeklySchedule, now: datetime) -> datetime:
    """The last regular slot at or before ``now``."""
    day = _slot_day_of_week(schedule, local_date(now, schedule.zone))
    slot = slot_on(schedule, day)
    return slot if slot <= now else slot_on(schedule, day - WEEK)


def next_slot(schedule: WeeklySchedule, now: datetime) -> datetime:
    """The first regular slot strictly after ``now``."""
    day = _slot_day_of_week(schedule, local_date(latest_slot(schedule, now), schedule.zone))
    return slot_on(schedule, day + WEEK)


def nearest_slot(schedule: WeeklySchedule, at: datetime) -> datetime:
    """The regular slot nearest to ``at`` (the earlier one on a tie): the slot an issue
    assembled at ``at`` belongs to, whether it went out at the slot, late or early."""
    before = latest_slot(schedule, at)
    after = next_slot(schedule, at)
    return before if at - before <= after - at else after


def following_slot(schedule: WeeklySchedule, slot_at: datetime) -> datetime:
    """The regular slot one local week after the regular slot ``slot_at``."""
    return slot_on(schedule, local_date(slot_at, schedule.zone) + WEEK)


def slots_between(schedule: WeeklySchedule, start: datetime, end: datetime) -> list[datetime]:
    """Regular slots in the half-open interval ``(start, end]``, in order."""
    slots: list[datetime] = []
    slot = next_slot(schedule, start)
    while slot <= end:
        slots.append(slot)
        slot = following_slot(schedule, slot)
    return slots


def upcoming_slots(schedule: WeeklySchedule, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` regular slots after ``now``."""
    slots = [next_slot(schedule, now)]
    while len(slots) < count:
        slots.append(following_slot(schedule, slots[-1]))
    return slots


# --- what is due -----------------------------------------------------------------------------


# Slots missed while the service was down are each recorded (caught up or missed) on start-up,
# back to the last recorded one; an outage longer than this only records its last year.
MAX_LOOKBACK = timedelta(weeks=52)


def due_instants(
    schedule: WeeklySchedule,
    now: datetime,
    *,
    overrides: Iterable[Override],
    decided: Iterable[datetime],
    grace: timedelta,
    last_recorded: datetime | None,
) -> list[datetime]:
    """Instants at or before ``now`` that need a decision: regular slots and delayed sends
    after ``last_recorded`` (the newest recorded instant) that have no outcome yet, oldest
    first. ``None`` (a new installation) looks back ``grace`` only, so slots from before the
    service existed are not recorded as missed.
    """
    start = now - grace if last_recorded is None else max(last_recorded, now - MAX_LOOKBACK)
    instants = set(slots_between(schedule, start, now))
    for override in overrides:
        at = override.send_at
        if override.action is OverrideAction.DELAY and at is not None and start < at <= now:
            instants.add(at)
    return sorted(instants - set(decided))


def decide(
    schedule: WeeklySchedule,
    instant: datetime,
    now: datetime,
    *,
    pauses: Sequence[PauseWindow],
    overrides: Sequence[Override],
    grace: timedelta,
    has_links: bool,
    has_recipients: bool = True,
) -> Decision:
    """What happens at ``instant`` (a due regular slot or a delayed send), seen at ``now``.

    Precedence: a pause window, then the editor's skip or delay of that slot, then lateness
    beyond ``grace`` (missed), then an empty queue (skipped, never an empty email), then no
    active subscriber (skipped, the links kept for the next issue), else send.
    """
    pause = next((p for p in pauses if p.covers(instant, schedule.zone)), None)
    if pause is not None:
        return Decision(instant, SlotOutcome.PAUSED, Cause.PAUSE, pause.reason)
    override = next((o for o in overrides if o.slot_at == instant), None)
    if override is not None and override.action is OverrideAction.SKIP:
        return Decision(instant, SlotOutcome.SKIPPED, Cause.EDITOR_SKIP, override.reason)
    if override is not None and override.action is OverrideAction.DELAY:
        return Decision(
            instant, SlotOutcome.DELAYED, Cause.EDITOR_DELAY, delayed_to=override.send_at
        )
    if now - instant > grace:
        return Decision(instant, SlotOutcome.MISSED, Cause.TOO_LATE)
    if not has_links:
        return Decision(instant, SlotOutcome.SKIPPED, Cause.NOTHING_NEW)
    if not has_recipients:
        return Decision(instant, SlotOutcome.SKIPPED, Cause.NOBODY)
    return Decision(instant, SlotOutcome.SENT, Cause.PUBLISH)


# --- editor commands -------------------------------------------------------------------------


def check_pause_until(schedule: WeeklySchedule, until: date, now: datetime) -> None:
    """A pause must end after today (local); raises ``InvalidInputError``."""
    today = local_date(now, schedule.zone)
    if until <= today:
        raise InvalidInputError(
            "the pause must end after today (%(today)s), got %(until)s",
            "until",
            today=today.isoformat(),
            until=until.isoformat(),
        )


def delay_target(
    schedule: WeeklySchedule, send_at: datetime, now: datetime, pending: datetime | None = None
) -> datetime:
    """The regular slot a delay to ``send_at`` applies to: this week's slot, i.e. ``pending``
    (a past slot already delayed whose issue has not gone out yet: the delay is moved) or else
    the next slot.

    ``send_at`` must be in the future and before the following week's slot, so the next
    regular slot stays normal. Raises ``InvalidInputError`` otherwise.
    """
    slot = pending if pending is not None else next_slot(schedule, now)
    if send_at <= now:
        raise InvalidInputError("the new time is in the past", "send_at")
    if send_at >= following_slot(schedule, slot):
        raise InvalidInputError(
            "the new time must fall before the following week's slot (%(following)s)",
            "send_at",
            following=format_local(following_slot(schedule, slot), schedule.zone),
        )
    return slot


def format_local(instant: datetime, zone: ZoneInfo) -> str:
    """``YYYY-MM-DD HH:MM`` in ``zone`` with its UTC offset name, e.g. ``2026-03-29 08:00 CEST``."""
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


# --- catch-up issues -------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotRecord:
    """A recorded outcome, as the catch-up rule needs it."""

    slot_at: datetime
    outcome: SlotOutcome
    kept_links: bool  # False for a week skipped because nothing was queued


def catch_up_weeks(history: Sequence[SlotRecord], instant: datetime, zone: ZoneInfo) -> list[date]:
    """The local dates of the weeks an issue sent at ``instant`` covers, when it is a catch-up.

    ``history`` is every recorded slot since the last sent one. Weeks that kept their links
    (paused, missed, skipped by the editor) are carried into this issue; a week moved by a delay
    is this same week. Returns ``[]`` for an ordinary issue (one week only).
    """
    carried = sorted(
        local_date(r.slot_at, zone)
        for r in history
        if r.kept_links
        and r.outcome in (SlotOutcome.PAUSED, SlotOutcome.MISSED, SlotOutcome.SKIPPED)
    )
    if not carried:
        return []
    return [*carried, local_date(instant, zone)]
