"""A French dashboard refuses bad input in French: the pause, delay and link forms show the
error translated, the field by its French label, and never an English sentence or a CLI flag."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Link, Pause, SlotOverride
from tests.admin_support import Admin, add_readers, open_site, signed_in
from tests.conftest import ConfigFactory

CLI_FLAG = re.compile(r"(?<![\w-])--[a-z]")


@pytest.fixture
def site(make_config: ConfigFactory, sqlite_url: str) -> tuple[Config, Engine]:
    config = make_config(sqlite_url)
    engine, _ = open_site(config)
    add_readers(engine, ["ana@example.org"])
    return config, engine


@pytest.fixture
def admin(site: tuple[Config, Engine]) -> Admin:
    return signed_in(*site)


def _page_text(response: object) -> str:
    html: str = response.text  # type: ignore[attr-defined]
    return re.sub(r"<[^>]+>", " ", html)


def _refused(response: object, french: str, english: str) -> None:
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    text = _page_text(response)
    assert french in text
    assert english not in text
    assert not CLI_FLAG.search(text), CLI_FLAG.search(text)


def _count(engine: Engine, model: type) -> int:
    with transaction(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_pause_form_errors_are_french(site: tuple[Config, Engine], admin: Admin) -> None:
    """A pause ending today, or an unreadable date, is refused in French naming « Jusqu’au »."""
    config, engine = site
    today = utc_now().astimezone(config.timezone).date().isoformat()
    ends_today = admin.post("/admin/schedule/pause", {"until": today, "reason": "Été"})
    _refused(
        ends_today, "Jusqu’au\u202f: la pause doit finir après aujourd’hui", "the pause must end"
    )
    garbage = admin.post("/admin/schedule/pause", {"until": "bientôt", "reason": "Été"})
    _refused(garbage, "une date comme 2026-09-06 est attendue", "expected a date like")
    assert _count(engine, Pause) == 0


def test_delay_form_errors_are_french(site: tuple[Config, Engine], admin: Admin) -> None:
    """A delay into the past, or an unreadable time, is refused in French, never as ``--to``."""
    config, engine = site
    past = (utc_now().astimezone(config.timezone) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    in_the_past = admin.post("/admin/schedule/delay", {"send_at": past})
    _refused(in_the_past, "la nouvelle heure est déjà passée", "the new time is in the past")
    garbage = admin.post("/admin/schedule/delay", {"send_at": "lundi soir"})
    _refused(garbage, "une heure locale comme", "expected a local time")
    assert _count(engine, SlotOverride) == 0


def test_link_form_errors_are_french(site: tuple[Config, Engine], admin: Admin) -> None:
    """A link that is not http(s), or has an over-long title, is refused in French naming the
    field (an empty title is not an error: link intake reads the page's own)."""
    _, engine = site
    not_http = admin.post(
        "/admin/issue/links", {"url": "ftp://exemple.fr/a", "title": "Un titre", "source": ""}
    )
    _refused(not_http, "Lien\u202f: doit être un lien http:// ou https://", "must be an http://")
    long_title = admin.post(
        "/admin/issue/links", {"url": "https://exemple.fr/a", "title": "t" * 501, "source": ""}
    )
    _refused(long_title, "Titre\u202f: doit faire au plus 500 caractères", "must be at most")
    assert _count(engine, Link) == 0
