"""The pure schedule policy: slots in the list's zone across DST, pauses, overrides, due work."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.errors import InvalidInputError
from newsletter.schedule.policy import (
    Cause,
    Override,
    OverrideAction,
    PauseWindow,
    SlotOutcome,
    SlotRecord,
    catch_up_weeks,
    check_pause_until,
    decide,
    delay_target,
    due_instants,
    latest_slot,
    next_slot,
    parse_local_datetime,
    slots_between,
    upcoming_slots,
    weekly_schedule,
)

PARIS = ZoneInfo("Europe/Paris")
SUNDAY_8 = weekly_schedule("sun", "08:00", "Europe/Paris")
GRACE = timedelta(hours=24)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def test_slots_stay_at_8_local_across_spring_dst_change() -> None:
    """Around 29 March 2026 the Sunday slot is 08:00 in Paris: 07:00 UTC before, 06:00 after."""
    slots = slots_between(SUNDAY_8, utc(2026, 3, 20), utc(2026, 4, 6))
    assert slots == [utc(2026, 3, 22, 7), utc(2026, 3, 29, 6), utc(2026, 4, 5, 6)]
    assert all(s.astimezone(PARIS).hour == 8 for s in slots)


def test_slots_stay_at_8_local_across_autumn_dst_change() -> None:
    """Around 25 October 2026 the Sunday slot is 08:00 in Paris: 06:00 UTC before, 07:00 after."""
    slots = slots_between(SUNDAY_8, utc(2026, 10, 16), utc(2026, 11, 2))
    assert slots == [utc(2026, 10, 18, 6), utc(2026, 10, 25, 7), utc(2026, 11, 1, 7)]
    assert all(s.astimezone(PARIS).hour == 8 for s in slots)


def test_next_and_latest_slot_on_the_dst_sunday_itself() -> None:
    """Just before and after 08:00 local on the change day, next/latest pick the right instant."""
    before = paris(2026, 3, 29, 7, 59)
    assert next_slot(SUNDAY_8, before) == utc(2026, 3, 29, 6)
    assert latest_slot(SUNDAY_8, before) == utc(2026, 3, 22, 7)
    at = utc(2026, 3, 29, 6)
    assert latest_slot(SUNDAY_8, at) == at
    assert next_slot(SUNDAY_8, at) == utc(2026, 4, 5, 6)
    autumn = paris(2026, 10, 25, 8, 0)
    assert autumn == utc(2026, 10, 25, 7)
    assert next_slot(SUNDAY_8, autumn - timedelta(seconds=1)) == autumn


def test_a_slot_inside_the_spring_gap_moves_forward() -> None:
    """02:30 does not exist on 29 March 2026 in Paris; the slot is 03:30 CEST (01:30 UTC)."""
    night = weekly_schedule("sun", "02:30", "Europe/Paris")
    assert next_slot(night, utc(2026, 3, 28)) == utc(2026, 3, 29, 1, 30)


def test_other_days_and_zones() -> None:
    """The schedule honours a Monday slot in New York (DST there changes on other dates)."""
    ny = weekly_schedule("mon", "18:00", "America/New_York")
    slots = upcoming_slots(ny, utc(2026, 3, 1), 3)
    assert slots == [utc(2026, 3, 2, 23), utc(2026, 3, 9, 22), utc(2026, 3, 16, 22)]


def test_bad_schedule_values_are_rejected() -> None:
    """An unknown zone, day or time raises InvalidInputError naming it."""
    with pytest.raises(InvalidInputError, match="time zone"):
        weekly_schedule("sun", "08:00", "Europe/Pariss")
    with pytest.raises(InvalidInputError, match="day"):
        weekly_schedule("sunday", "08:00", "Europe/Paris")
    with pytest.raises(InvalidInputError, match="HH:MM"):
        weekly_schedule("sun", "8h", "Europe/Paris")
    with pytest.raises(InvalidInputError, match="2026-03-30 18:00"):
        parse_local_datetime("lundi 18h", PARIS)


def test_pause_window_covers_slots_before_its_end_date() -> None:
    """A pause until 6 September covers the August Sundays but not 6 September itself."""
    pause = PauseWindow(until=date(2026, 9, 6), reason="vacances")
    assert pause.covers(paris(2026, 8, 30, 8), PARIS)
    assert not pause.covers(paris(2026, 9, 6, 8), PARIS)
    ended = PauseWindow(until=date(2026, 9, 6), ended_at=paris(2026, 8, 20, 12))
    assert ended.covers(paris(2026, 8, 16, 8), PARIS)
    assert not ended.covers(paris(2026, 8, 23, 8), PARIS)


def _decide(instant: datetime, now: datetime, **kwargs: object) -> object:
    params: dict[str, object] = {"pauses": [], "overrides": [], "grace": GRACE, "has_links": True}
    params.update(kwargs)
    return decide(SUNDAY_8, instant, now, **params)  # type: ignore[arg-type]


def test_decide_precedence() -> None:
    """Pause beats the editor's skip/delay, which beat lateness, which beats an empty queue."""
    slot = paris(2026, 7, 12, 8)
    pause = PauseWindow(until=date(2026, 9, 6), reason="été")
    skip = Override(slot, OverrideAction.SKIP, reason="congrès")
    later = paris(2026, 7, 13, 18)
    delay = Override(slot, OverrideAction.DELAY, send_at=later)
    d = _decide(slot, slot, pauses=[pause], overrides=[skip])
    assert (d.outcome, d.cause, d.reason) == (SlotOutcome.PAUSED, Cause.PAUSE, "été")  # type: ignore[attr-defined]
    d = _decide(slot, slot, overrides=[skip])
    assert (d.outcome, d.reason) == (SlotOutcome.SKIPPED, "congrès")  # type: ignore[attr-defined]
    d = _decide(slot, slot, overrides=[delay])
    assert (d.outcome, d.delayed_to) == (SlotOutcome.DELAYED, later)  # type: ignore[attr-defined]
    d = _decide(slot, slot + timedelta(hours=25))
    assert d.outcome is SlotOutcome.MISSED  # type: ignore[attr-defined]
    d = _decide(slot, slot + timedelta(hours=23), has_links=False)
    assert (d.outcome, d.cause) == (SlotOutcome.SKIPPED, Cause.NOTHING_NEW)  # type: ignore[attr-defined]
    d = _decide(slot, slot + timedelta(hours=23))
    assert d.outcome is SlotOutcome.SENT  # type: ignore[attr-defined]


def due(now: datetime, last: datetime | None, *overrides: Override) -> list[datetime]:
    decided = [last] if last else []
    return due_instants(
        SUNDAY_8, now, overrides=overrides, decided=decided, grace=GRACE, last_recorded=last
    )


def test_due_instants_are_the_slots_and_delayed_sends_since_the_last_recorded() -> None:
    """Due work is every regular slot and delayed send after the last recorded instant."""
    slot = paris(2026, 3, 29, 8)
    monday = paris(2026, 3, 30, 18)
    delay = Override(slot, OverrideAction.DELAY, send_at=monday)
    assert due(slot, paris(2026, 3, 1, 8), delay) == [
        paris(2026, 3, 8, 8),
        paris(2026, 3, 15, 8),
        paris(2026, 3, 22, 8),
        slot,
    ]
    assert due(monday - timedelta(minutes=1), slot, delay) == []
    assert due(monday, slot, delay) == [monday]
    assert due(paris(2026, 4, 5, 8), monday, delay) == [paris(2026, 4, 5, 8)]


def test_delay_must_stay_within_this_week() -> None:
    """A delay applies to the next slot and must land after now and before the following one."""
    now = paris(2026, 3, 27, 10)
    assert delay_target(SUNDAY_8, paris(2026, 3, 30, 18), now) == paris(2026, 3, 29, 8)
    with pytest.raises(InvalidInputError, match="past") as past:
        delay_target(SUNDAY_8, paris(2026, 3, 26, 18), now)
    assert past.value.where == "send_at"
    with pytest.raises(InvalidInputError, match="following week") as late:
        delay_target(SUNDAY_8, paris(2026, 4, 5, 9), now)
    assert late.value.values == {"following": "2026-04-05 08:00 CEST"}


def test_pause_must_end_after_today() -> None:
    """A pause ending today or earlier is rejected."""
    now = paris(2026, 7, 1, 23, 30)  # 21:30 UTC, already 1 July in Paris
    with pytest.raises(InvalidInputError, match="after today"):
        check_pause_until(SUNDAY_8, date(2026, 7, 1), now)
    check_pause_until(SUNDAY_8, date(2026, 7, 2), now)


def test_an_error_carries_a_key_values_and_a_neutral_field() -> None:
    """A refused pause carries a translatable key, its values and the field ``until``; its
    English text is the key filled in, and an edge names the field its own way."""
    now = paris(2026, 7, 1, 12)
    with pytest.raises(InvalidInputError) as caught:
        check_pause_until(SUNDAY_8, date(2026, 6, 30), now)
    error = caught.value
    assert error.key == "the pause must end after today (%(today)s), got %(until)s"
    assert error.values == {"today": "2026-07-01", "until": "2026-06-30"}
    assert error.where == "until"
    assert str(error) == "until: the pause must end after today (2026-07-01), got 2026-06-30"
    french = {error.key: "la pause doit finir après aujourd’hui (%(today)s), reçu %(until)s"}
    assert error.render(lambda key: french.get(key, key), lambda where: f"--{where}") == (
        "--until: la pause doit finir après aujourd’hui (2026-07-01), reçu 2026-06-30"
    )


def test_catch_up_weeks_list_the_carried_weeks() -> None:
    """Paused and missed weeks are carried; an empty skipped week and a delay are not."""
    history = [
        SlotRecord(paris(2026, 7, 5, 8), SlotOutcome.SKIPPED, kept_links=False),
        SlotRecord(paris(2026, 7, 12, 8), SlotOutcome.PAUSED, kept_links=True),
        SlotRecord(paris(2026, 7, 19, 8), SlotOutcome.MISSED, kept_links=True),
        SlotRecord(paris(2026, 7, 26, 8), SlotOutcome.DELAYED, kept_links=True),
    ]
    assert catch_up_weeks(history, paris(2026, 7, 27, 18), PARIS) == [
        date(2026, 7, 12),
        date(2026, 7, 19),
        date(2026, 7, 27),
    ]
    assert catch_up_weeks(history[:1], paris(2026, 7, 12, 8), PARIS) == []


def test_a_fresh_installation_does_not_record_old_slots() -> None:
    """With no slot ever recorded, only slots within the grace period are due."""
    assert due(paris(2026, 3, 29, 7, 59), None) == []
    assert due(paris(2026, 3, 29, 8), None) == [paris(2026, 3, 29, 8)]
    assert due(paris(2026, 3, 30, 7, 59), None) == [paris(2026, 3, 29, 8)]
    assert due(paris(2026, 3, 30, 8, 1), None) == []


def test_a_long_outage_is_bounded_to_a_year() -> None:
    """After years without a recorded slot, only the last 52 weeks are due."""
    now = paris(2029, 3, 25, 8)
    found = due(now, paris(2026, 3, 29, 8))
    assert len(found) == 52 and found[-1] == now


def test_outcomes_match_the_slot_table() -> None:
    """The policy's outcomes are exactly the values the slot table stores."""
    from newsletter.models import SlotOutcome

    assert {o.value for o in SlotOutcome} == {o.value for o in SlotOutcome}
