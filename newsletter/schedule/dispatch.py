"""What happens at a slot: the schedule policy applied to the database, one recorded outcome
per slot (paused, delayed, skipped, missed or sent). The editor's commands live in
``newsletter.services.schedule``.

The database is the truth (design decision 1). Deciding a slot inserts its ``slot`` row first,
inside the transaction that then publishes the issue and starts its send run: the unique
``slot_at`` makes a second firing (the same job twice, or a second process on the same
PostgreSQL) wait for the first transaction and then find the slot taken, so it does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter import content
from newsletter.config import Config
from newsletter.db import read_transaction, transaction
from newsletter.errors import InvalidInputError
from newsletter.i18n import N_, Gettext, format_date, format_list, gettext
from newsletter.models import Issue, Pause, Slot, SlotOverride
from newsletter.schedule.policy import (
    MAX_LOOKBACK,
    Cause,
    Decision,
    Override,
    OverrideAction,
    PauseWindow,
    SlotOutcome,
    SlotRecord,
    WeeklySchedule,
    catch_up_weeks,
    decide,
    due_instants,
    format_local,
    weekly_schedule,
)
from newsletter.sending import (
    RenderedIssue,
    issue_to_render,
    publish_next_issue,
    render_issue,
)
from subscribers.models import SubscriberStatus
from subscribers.store import count_by_status

NOTHING_NEW = N_("nothing new")


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
        raise InvalidInputError(exc.key, f"{section} {exc.where}", **exc.values) from None


def grace_of(config: Config) -> timedelta:
    return timedelta(hours=float(config.get("schedule", "grace_hours")))


def translator(config: Config) -> Gettext:
    """The gettext of ``[list] language``."""
    return gettext(config.language)


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
    prepared = _render_beforehand(config, engine, instant, now)
    try:
        with transaction(engine) as session:
            return _decide_and_record(session, config, instant, now, prepared)
    except _AlreadyDecided:
        return None


def _render_beforehand(
    config: Config, engine: Engine, instant: datetime, now: datetime
) -> RenderedIssue | None:
    """The issue ``instant`` would publish, rendered before the write transaction (rendering
    takes most of a second, and every writer would wait for it). ``None`` when nothing is
    queued. If the queue changes meanwhile, publishing renders again."""
    with read_transaction(engine) as session:
        if not content.queued_links(session):
            return None
        intro = _catch_up_intro(session, config, schedule_of(config), instant)
        issue = issue_to_render(session, config, now, intro)
    return render_issue(config, issue)


def _decide_and_record(
    session: Session,
    config: Config,
    instant: datetime,
    now: datetime,
    prepared: RenderedIssue | None = None,
) -> Slot:
    schedule = schedule_of(config)
    decision = decide(
        schedule,
        instant,
        now,
        pauses=pause_windows(session),
        overrides=overrides(session),
        grace=grace_of(config),
        has_links=bool(content.queued_links(session)),
        has_recipients=count_by_status(session)[SubscriberStatus.ACTIVE.value] > 0,
    )
    row = Slot(
        slot_at=instant,
        outcome=decision.outcome.value,
        reason=reason_text(config, schedule, decision),
        decided_at=now,
    )
    session.add(row)
    try:
        session.flush()  # takes the unique slot_at: a concurrent firing waits here, then fails
    except IntegrityError:
        raise _AlreadyDecided from None
    if decision.outcome is SlotOutcome.SENT:
        intro = _catch_up_intro(session, config, schedule, instant)
        row.issue_id = publish_next_issue(session, config, now, intro, prepared).issue.id
        session.flush()
    return row


def reason_text(config: Config, schedule: WeeklySchedule, decision: Decision) -> str:
    """The reason recorded on a slot row for ``decision``, in the list's language."""
    _ = translator(config)
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
        case Cause.NOBODY:
            return _("no active subscriber; the links stay queued")
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
            Slot.outcome == SlotOutcome.SENT.value, Slot.slot_at < before
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
    nothing_new = {NOTHING_NEW, translator(config)(NOTHING_NEW)}
    history = [
        SlotRecord(
            row.slot_at,
            SlotOutcome(row.outcome),
            kept_links=not (row.outcome == SlotOutcome.SKIPPED and row.reason in nothing_new),
        )
        for row in _history_since_last_issue(session, instant)
    ]
    weeks = catch_up_weeks(history, instant, schedule.zone)
    return catch_up_intro(config, weeks) if weeks else None


def catch_up_intro(config: Config, weeks: Sequence[date]) -> str:
    """The default intro of a catch-up issue, naming the weeks it covers."""
    language = config.language
    _ = gettext(language)
    listed = format_list((format_date(day, language) for day in weeks), language)
    return _("This issue catches up on the weeks of {weeks}.").format(weeks=listed)
