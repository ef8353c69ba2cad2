"""/healthz reports the schedule: the next slot, what happens there and any pause."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import Engine

from newsletter.clock import utc_now
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.schedule.dispatch import schedule_of
from newsletter.schedule.policy import local_date, next_slot, slot_on
from newsletter.services.schedule import pause_schedule
from newsletter.web.app import create_app
from tests.conftest import ConfigFactory


async def test_healthz_shows_next_slot_and_pause(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """The next slot is the coming Sunday 08:00 local; a pause shows with its end and reason."""
    config = make_config(sqlite_url)
    engine: Engine = make_engine(sqlite_url)
    upgrade_database(engine)
    slot = next_slot(schedule_of(config), utc_now())
    transport = httpx.ASGITransport(app=create_app(config, engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        body = (await client.get("/healthz")).json()
        assert body["status"] == "ok"
        assert body["schedule"]["next_slot"] == slot.isoformat()
        assert body["schedule"]["next_slot_outcome"] == "sent"
        assert body["schedule"]["next_send_at"] == slot.isoformat()
        assert body["schedule"]["paused_until"] is None
        assert body["schedule"]["scheduler_running"] is False
        until = local_date(slot, config.timezone) + timedelta(days=14)
        with transaction(engine) as session:
            pause_schedule(
                session, config, until=until, reason="Pause estivale", notify=False, now=utc_now()
            )
        body = (await client.get("/healthz")).json()
        assert body["schedule"]["paused_until"] == until.isoformat()
        assert body["schedule"]["pause_reason"] == "Pause estivale"
        assert body["schedule"]["next_slot_outcome"] == "paused"
        back = slot_on(schedule_of(config), until)  # the pause ends on a Sunday: 08:00 local
        assert body["schedule"]["next_send_at"] == back.isoformat()
