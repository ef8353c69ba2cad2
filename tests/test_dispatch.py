"""The dispatcher on a real database: one recorded outcome per slot, issues and send runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from newsletter import content
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Delivery, Issue, Link, SendRun, Slot
from newsletter.schedule.dispatch import dispatch_due, dispatch_instant
from newsletter.sending.publish import publish_next_issue
from newsletter.services.schedule import (
    delay_slot,
    pause_schedule,
    planned_slots,
    resume_schedule,
    skip_slot,
)
from subscribers.models import Subscriber

PARIS = ZoneInfo("Europe/Paris")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def add_subscribers(engine: Engine, count: int, now: datetime) -> None:
    with transaction(engine) as session:
        for n in range(count):
            email = f"lecteur{n}@example.org"
            session.add(
                Subscriber(
                    email=email,
                    email_key=email,
                    status="active",
                    created_at=now,
                    confirmed_at=now,
                )
            )


def queue(engine: Engine, title: str, now: datetime) -> None:
    with transaction(engine) as session:
        content.queue_link(
            session,
            url=f"https://example.org/{title.lower().replace(' ', '-')}",
            title=title,
            source="Mediapart",
            excerpt="Un extrait écrit pour les tests.",
            now=now,
        )


def slots(engine: Engine) -> list[tuple[datetime, str, str, int | None]]:
    with transaction(engine) as session:
        rows = session.scalars(select(Slot).order_by(Slot.slot_at))
        return [(r.slot_at, r.outcome, r.reason, r.issue_id) for r in rows]


def issues(engine: Engine) -> list[Issue]:
    with transaction(engine) as session:
        return list(session.scalars(select(Issue).order_by(Issue.number)))


def issue_titles(engine: Engine, number: int) -> list[str]:
    with transaction(engine) as session:
        issue = session.scalars(select(Issue).where(Issue.number == number)).one()
        return sorted(session.scalars(select(Link.title).where(Link.issue_id == issue.id)))


def queued_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return len(content.queued_links(session))


def runs(engine: Engine) -> list[tuple[str, int]]:
    with transaction(engine) as session:
        rows = session.execute(
            select(SendRun.key, func.count(Delivery.id))
            .join(Delivery, Delivery.run_id == SendRun.id, isouter=True)
            .group_by(SendRun.key)
            .order_by(SendRun.key)
        )
        return [(key, count) for key, count in rows]


def test_spring_dst_sunday_sends_at_8_local(config: Config, engine: Engine) -> None:
    """On 29 March 2026 the slot fires at 08:00 Paris (06:00 UTC): one issue, one send run."""
    add_subscribers(engine, 3, paris(2026, 3, 20, 9))
    queue(engine, "Le budget participatif", paris(2026, 3, 24, 9))
    assert dispatch_due(config, engine, paris(2026, 3, 29, 7, 59)) == []
    recorded = dispatch_due(config, engine, datetime(2026, 3, 29, 6, 0, tzinfo=UTC))
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 3, 29, 8), "sent")]
    assert [(i.number, i.status) for i in issues(engine)] == [(1, "assembled")]
    assert issue_titles(engine, 1) == ["Le budget participatif"]
    assert runs(engine) == [("issue:1", 3)]
    assert queued_count(engine) == 0


def test_autumn_dst_sunday_sends_at_8_local(config: Config, engine: Engine) -> None:
    """On 25 October 2026 the slot fires at 08:00 Paris, which is 07:00 UTC (not 06:00)."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Le vote électronique", paris(2026, 10, 20, 9))
    assert dispatch_due(config, engine, datetime(2026, 10, 25, 6, 59, tzinfo=UTC)) == []
    recorded = dispatch_due(config, engine, datetime(2026, 10, 25, 7, 0, tzinfo=UTC))
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 10, 25, 8), "sent")]
    assert [i.number for i in issues(engine)] == [1]


def test_empty_week_is_skipped_never_sent(config: Config, engine: Engine) -> None:
    """With no link queued the slot is recorded skipped, 'nothing new', and nothing is sent."""
    add_subscribers(engine, 2, paris(2026, 5, 1, 9))
    recorded = dispatch_due(config, engine, paris(2026, 5, 3, 8, 5))
    assert [(s.outcome, s.reason) for s in recorded] == [("skipped", "rien de nouveau")]
    assert issues(engine) == []
    assert runs(engine) == []


def test_pause_over_several_sundays_keeps_links_for_a_catch_up(
    config: Config, engine: Engine
) -> None:
    """Sundays inside a pause are recorded paused; the next issue carries every kept link and
    its intro names the weeks it covers."""
    add_subscribers(engine, 2, paris(2026, 6, 1, 9))
    queue(engine, "Premier lien", paris(2026, 6, 30, 9))
    with transaction(engine) as session:
        pause_schedule(
            session,
            config,
            until=date(2026, 7, 26),
            reason="Pause estivale",
            notify=False,
            now=paris(2026, 7, 1, 9),
        )
    for day, title in ((5, "Deuxième lien"), (12, "Troisième lien"), (19, None)):
        recorded = dispatch_due(config, engine, paris(2026, 7, day, 8))
        assert [(s.outcome, s.reason) for s in recorded] == [("paused", "Pause estivale")]
        if title:
            queue(engine, title, paris(2026, 7, day, 10))
    assert issues(engine) == []
    assert queued_count(engine) == 3
    recorded = dispatch_due(config, engine, paris(2026, 7, 26, 8))
    assert [s.outcome for s in recorded] == ["sent"]
    assert issue_titles(engine, 1) == ["Deuxième lien", "Premier lien", "Troisième lien"]
    (issue,) = issues(engine)
    assert issue.intro == (
        "Ce numéro rattrape les semaines du 5 juillet 2026, 12 juillet 2026, "
        "19 juillet 2026 et 26 juillet 2026."
    )
    assert runs(engine) == [("issue:1", 2)]


def test_an_editor_intro_wins_over_the_catch_up_intro(config: Config, engine: Engine) -> None:
    """When the editor wrote an intro, the catch-up issue keeps it."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Un lien", paris(2026, 7, 1, 9))
    with transaction(engine) as session:
        pause_schedule(
            session, config, until=date(2026, 7, 6), reason="", notify=False, now=paris(2026, 7, 1)
        )
        content.set_intro(session, "De retour !", paris(2026, 7, 2))
    dispatch_due(config, engine, paris(2026, 7, 5, 8))
    dispatch_due(config, engine, paris(2026, 7, 12, 8))
    assert [i.intro for i in issues(engine)] == ["De retour !"]


def test_resume_before_the_end_sends_next_sunday(config: Config, engine: Engine) -> None:
    """Resuming a pause early lets the next Sunday send."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Un lien", paris(2026, 7, 1, 9))
    with transaction(engine) as session:
        pause_schedule(
            session,
            config,
            until=date(2026, 9, 6),
            reason="Été",
            notify=False,
            now=paris(2026, 7, 1),
        )
    assert [s.outcome for s in dispatch_due(config, engine, paris(2026, 7, 5, 8))] == ["paused"]
    with transaction(engine) as session:
        ended = resume_schedule(session, config, paris(2026, 7, 8, 12))
        assert [p.reason for p in ended] == ["Été"]
    assert [s.outcome for s in dispatch_due(config, engine, paris(2026, 7, 12, 8))] == ["sent"]
    assert [i.number for i in issues(engine)] == [1]


def test_delay_to_monday_sends_then_and_next_sunday_is_normal(
    config: Config, engine: Engine
) -> None:
    """A delay to Monday 18:00 records the Sunday delayed, sends Monday 18:00, and the
    following Sunday sends as usual."""
    add_subscribers(engine, 1, paris(2026, 3, 1))
    queue(engine, "Premier", paris(2026, 3, 25, 9))
    with transaction(engine) as session:
        delay_slot(session, config, paris(2026, 3, 30, 18), paris(2026, 3, 27, 9))
    recorded = dispatch_due(config, engine, paris(2026, 3, 29, 8))
    assert [(s.outcome, s.reason) for s in recorded] == [
        ("delayed", "reporté au 2026-03-30 18:00 CEST")
    ]
    assert dispatch_due(config, engine, paris(2026, 3, 30, 17, 59)) == []
    recorded = dispatch_due(config, engine, paris(2026, 3, 30, 18))
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 3, 30, 18), "sent")]
    (issue,) = issues(engine)
    assert issue.intro == ""  # same week: not a catch-up
    queue(engine, "Second", paris(2026, 4, 1, 9))
    recorded = dispatch_due(config, engine, paris(2026, 4, 5, 8))
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 4, 5, 8), "sent")]
    assert [i.number for i in issues(engine)] == [1, 2]
    assert runs(engine) == [("issue:1", 1), ("issue:2", 1)]


def test_editor_skip_keeps_links_for_next_week(config: Config, engine: Engine) -> None:
    """A skipped slot records the editor's reason and the links wait for the next issue."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Un lien", paris(2026, 4, 1, 9))
    with transaction(engine) as session:
        skip_slot(session, config, "Week-end de Pâques", paris(2026, 4, 2, 9))
    recorded = dispatch_due(config, engine, paris(2026, 4, 5, 8))
    assert [(s.outcome, s.reason) for s in recorded] == [("skipped", "Week-end de Pâques")]
    assert queued_count(engine) == 1
    assert [s.outcome for s in dispatch_due(config, engine, paris(2026, 4, 12, 8))] == ["sent"]


def test_down_over_a_slot_caught_up_within_grace(config: Config, engine: Engine) -> None:
    """A slot missed while down is sent on start-up when within [schedule] grace_hours."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Avant", paris(2026, 4, 1, 9))
    dispatch_due(config, engine, paris(2026, 4, 5, 8))
    queue(engine, "Pendant la panne", paris(2026, 4, 8, 9))
    recorded = dispatch_due(config, engine, paris(2026, 4, 13, 7, 30))  # 23.5 h late
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 4, 12, 8), "sent")]
    assert [i.number for i in issues(engine)] == [1, 2]


def test_down_beyond_grace_records_missed_and_keeps_links(config: Config, engine: Engine) -> None:
    """Beyond the grace the slot is recorded missed; its links go out with the next issue."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Avant", paris(2026, 4, 1, 9))
    dispatch_due(config, engine, paris(2026, 4, 5, 8))
    queue(engine, "Pendant la panne", paris(2026, 4, 8, 9))
    recorded = dispatch_due(config, engine, paris(2026, 4, 13, 9))  # 25 h late
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 4, 12, 8), "missed")]
    assert queued_count(engine) == 1
    recorded = dispatch_due(config, engine, paris(2026, 4, 19, 8))
    assert [s.outcome for s in recorded] == ["sent"]
    assert issue_titles(engine, 2) == ["Pendant la panne"]
    assert issues(engine)[1].intro.startswith("Ce numéro rattrape les semaines du 12 avril")


def test_same_slot_fired_twice_sends_once(config: Config, engine: Engine) -> None:
    """A job that fires twice records one slot, one issue and one send run."""
    add_subscribers(engine, 2, paris(2026, 4, 1))
    queue(engine, "Un lien", paris(2026, 4, 1, 9))
    slot = paris(2026, 4, 5, 8)
    first = dispatch_instant(config, engine, slot, slot)
    second = dispatch_instant(config, engine, slot, slot + timedelta(seconds=1))
    assert first is not None and second is None
    assert dispatch_due(config, engine, slot + timedelta(minutes=1)) == []
    assert len(slots(engine)) == 1
    assert [i.number for i in issues(engine)] == [1]
    assert runs(engine) == [("issue:1", 2)]


def test_down_for_weeks_records_each_missed_slot_then_catches_up(
    config: Config, engine: Engine
) -> None:
    """After a three-week outage each old slot is recorded missed and the last one, within
    grace, sends a catch-up issue naming every week it covers."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Avant", paris(2026, 4, 1, 9))
    dispatch_due(config, engine, paris(2026, 4, 5, 8))
    queue(engine, "Pendant la panne", paris(2026, 4, 8, 9))
    recorded = dispatch_due(config, engine, paris(2026, 4, 26, 20))
    assert [(s.slot_at, s.outcome) for s in recorded] == [
        (paris(2026, 4, 12, 8), "missed"),
        (paris(2026, 4, 19, 8), "missed"),
        (paris(2026, 4, 26, 8), "sent"),
    ]
    assert issues(engine)[1].intro == (
        "Ce numéro rattrape les semaines du 12 avril 2026, 19 avril 2026 et 26 avril 2026."
    )


def test_delaying_again_after_the_slot_moves_the_pending_delay(
    config: Config, engine: Engine
) -> None:
    """After the Sunday was recorded delayed, a second delay moves that issue's time (it does
    not delay next week's slot), and exactly one issue goes out, at the new time."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Premier", paris(2026, 3, 25, 9))
    with transaction(engine) as session:
        delay_slot(session, config, paris(2026, 3, 30, 18), paris(2026, 3, 27, 9))
    dispatch_due(config, engine, paris(2026, 3, 29, 8))
    with transaction(engine) as session:
        moved = delay_slot(session, config, paris(2026, 3, 30, 20), paris(2026, 3, 29, 10))
        assert moved.slot_at == paris(2026, 3, 29, 8)
    assert slots(engine)[0][2] == "reporté au 2026-03-30 20:00 CEST"
    with transaction(engine) as session:
        planned = planned_slots(session, config, paris(2026, 3, 29, 10), 1)
    assert [(p.slot_at, p.outcome, p.recorded, p.send_at) for p in planned] == [
        (paris(2026, 3, 29, 8), "delayed", True, paris(2026, 3, 30, 20)),
        (paris(2026, 4, 5, 8), "sent", False, None),
    ]
    assert dispatch_due(config, engine, paris(2026, 3, 30, 18)) == []
    recorded = dispatch_due(config, engine, paris(2026, 3, 30, 20))
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 3, 30, 20), "sent")]
    queue(engine, "Second", paris(2026, 4, 1, 9))
    recorded = dispatch_due(config, engine, paris(2026, 4, 5, 8))
    assert [(s.slot_at, s.outcome) for s in recorded] == [(paris(2026, 4, 5, 8), "sent")]
    assert [i.number for i in issues(engine)] == [1, 2]


def test_an_issue_sent_by_hand_ends_the_catch_up(config: Config, engine: Engine) -> None:
    """After a paused Sunday, an issue sent by hand carries those links, so the next Sunday's
    issue is an ordinary one (no catch-up intro)."""
    add_subscribers(engine, 1, paris(2026, 1, 1))  # a send needs a recipient
    queue(engine, "Pendant la pause", paris(2026, 7, 1, 9))
    with transaction(engine) as session:
        pause_schedule(
            session, config, until=date(2026, 7, 6), reason="", notify=False, now=paris(2026, 7, 1)
        )
    dispatch_due(config, engine, paris(2026, 7, 5, 8))
    with transaction(engine) as session:
        publish_next_issue(session, config, paris(2026, 7, 7, 12))
    queue(engine, "Après", paris(2026, 7, 8, 9))
    assert [s.outcome for s in dispatch_due(config, engine, paris(2026, 7, 12, 8))] == ["sent"]
    assert [(i.number, i.intro) for i in issues(engine)] == [(1, ""), (2, "")]
