"""The schedule page: pausing until a date changes what the coming slots will do (and can
notify subscribers), resume undoes it, a delay and a skip are recorded for the next slot."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Pause, SendRun, SlotOverride
from newsletter.services.schedule import planned_slots
from tests.admin_support import Admin, add_readers, open_site, signed_in
from tests.conftest import ConfigFactory


@pytest.fixture
def site(make_config: ConfigFactory, sqlite_url: str) -> tuple[Config, Engine]:
    config = make_config(sqlite_url)
    engine, _ = open_site(config)
    add_readers(engine, ["ana@example.org"])
    return config, engine


@pytest.fixture
def admin(site: tuple[Config, Engine]) -> Admin:
    return signed_in(*site)


def _local_day(config: Config, days: int) -> str:
    return (utc_now().astimezone(config.timezone).date() + timedelta(days=days)).isoformat()


def test_pause_until_a_date_marks_the_coming_slots_paused(
    site: tuple[Config, Engine], admin: Admin
) -> None:
    """After a pause of three weeks with notify, the page shows the next slots paused with the
    reason, a notice run is started, and resume brings the slots back."""
    config, engine = site
    before = admin.client.get("/admin/schedule")
    assert before.status_code == 200 and "slot-paused" not in before.text
    response = admin.post(
        "/admin/schedule/pause",
        {"until": _local_day(config, 22), "reason": "Pause estivale", "notify": "yes"},
    )
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    page = admin.client.get("/admin/schedule")
    assert page.text.count('class="slot-paused"') >= 3 and "Pause estivale" in page.text
    with transaction(engine) as session:
        assert session.scalars(select(Pause.reason)).one() == "Pause estivale"
        assert session.scalars(select(SendRun.kind)).all() == ["notice"]
    assert admin.post("/admin/schedule/resume").status_code == 303  # type: ignore[attr-defined]
    assert 'class="slot-paused"' not in admin.client.get("/admin/schedule").text


def test_pause_in_the_past_is_refused(site: tuple[Config, Engine], admin: Admin) -> None:
    """A pause ending today or earlier gets 422 and stores nothing."""
    config, engine = site
    response = admin.post("/admin/schedule/pause", {"until": _local_day(config, -1)})
    assert response.status_code == 422  # type: ignore[attr-defined]
    with transaction(engine) as session:
        assert session.scalars(select(Pause)).all() == []


def test_delay_and_skip_are_recorded_for_the_next_slot(
    site: tuple[Config, Engine], admin: Admin
) -> None:
    """A delay moves the next slot to the chosen local time; a skip replaces it."""
    config, engine = site
    with transaction(engine) as session:
        slot = planned_slots(session, config, utc_now(), 1)[0].slot_at
    later = (slot + timedelta(days=1)).astimezone(config.timezone).strftime("%Y-%m-%dT%H:%M")
    assert admin.post("/admin/schedule/delay", {"send_at": later}).status_code == 303  # type: ignore[attr-defined]
    with transaction(engine) as session:
        row = session.scalars(select(SlotOverride)).one()
        assert row.action == "delay" and row.send_at == slot + timedelta(days=1)
    assert "slot-delayed" in admin.client.get("/admin/schedule").text
    assert admin.post("/admin/schedule/skip", {"reason": "Rien cette semaine"}).status_code == 303  # type: ignore[attr-defined]
    page = admin.client.get("/admin/schedule")
    assert "slot-skipped" in page.text and "Rien cette semaine" in page.text
