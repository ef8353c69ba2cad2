"""Two processes firing the same slot at once, and the pause notice, on real databases."""

from __future__ import annotations

import multiprocessing
from datetime import date
from multiprocessing.synchronize import Barrier

from sqlalchemy import Engine, func, select

from newsletter.config import Config, load_config
from newsletter.db import make_engine, transaction
from newsletter.models import Delivery, Issue, Pause, SendRun, Slot
from newsletter.schedule.dispatch import dispatch_due
from newsletter.sending.service import run_sender
from newsletter.services.schedule import pause_schedule, start_pause_notice
from tests.harness import SMTPServer
from tests.test_dispatch import add_subscribers, paris, queue


def _fire(config_path: str, barrier: Barrier, results: multiprocessing.Queue[int]) -> None:
    config = load_config(config_path, environ={})
    engine = make_engine(config.database_url)
    with engine.connect():
        pass  # connect before the barrier, so both processes race on the slot itself
    barrier.wait(timeout=60)
    recorded = dispatch_due(config, engine, paris(2026, 4, 5, 8, 0, 30))
    results.put(len(recorded))
    engine.dispose()


def test_two_processes_firing_one_slot_send_once(config: Config, engine: Engine) -> None:
    """Two scheduler processes deciding the same slot at once make one issue and one send."""
    add_subscribers(engine, 3, paris(2026, 4, 1))
    queue(engine, "Un lien", paris(2026, 4, 2, 9))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results: multiprocessing.Queue[int] = context.Queue()
    processes = [
        context.Process(target=_fire, args=(str(config.path), barrier, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert sorted(results.get(timeout=5) for _ in processes) == [0, 1]
    with transaction(engine) as session:
        assert session.scalar(select(func.count(Slot.id))) == 1
        assert session.scalars(select(Issue.number)).all() == [1]
        assert session.scalars(select(SendRun.key)).all() == ["issue:1"]
        assert session.scalar(select(func.count(Delivery.id))) == 3


async def test_pause_notice_is_sent_once(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """`pause --notify` starts one notice run; starting it again adds nothing; each subscriber
    receives one short notice naming the Sunday the newsletter comes back."""
    add_subscribers(engine, 2, paris(2026, 6, 1))
    now = paris(2026, 7, 1, 9)
    with transaction(engine) as session:
        pause = pause_schedule(
            session,
            config,
            until=date(2026, 9, 6),
            reason="L’équipe part en vacances.",
            notify=True,
            now=now,
        )
        pause_id = pause.id
    with transaction(engine) as session:
        again = start_pause_notice(session, config, session.get_one(Pause, pause_id), now)
        assert again.key == f"notice:pause:{pause_id}"
    with transaction(engine) as session:
        assert session.scalars(select(SendRun.kind)).all() == ["notice"]
        assert session.scalar(select(func.count(Delivery.id))) == 2
    await run_sender(config, engine, stop_when_idle=True)
    messages = smtp_server.wait_for(2)
    assert len(smtp_server.received()) == 2
    parsed = messages[0].parsed()
    subject = "Les liens CivicTech\u202f: pause jusqu’au dimanche 6 septembre 2026"
    assert parsed["Subject"] == subject
    text = parsed.get_body(("plain",)).get_content()
    assert "le prochain numéro partira le dimanche 6 septembre 2026" in text
    assert "L’équipe part en vacances." in text
    assert parsed["List-Unsubscribe"]
