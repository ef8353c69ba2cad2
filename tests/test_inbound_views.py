"""Where editors see the return path: deliverability figures in ``send status``,
``deliveries N``, the dashboard's send page (with the banner of a rate pause) and the API;
the inbound view in the dashboard."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update
from starlette.testclient import TestClient

from newsletter.cli import main
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import RunStatus, SendRun
from newsletter.services.inbound import receive_message
from subscribers.models import Subscriber
from tests.admin_support import make_client, make_editor, signed_in
from tests.conftest import ConfigFactory
from tests.inbound_support import T1, arf, dsn, sent_run


@pytest.fixture
def site(make_config: ConfigFactory, sqlite_url: str) -> tuple[Config, Engine, int]:
    """40 delivered messages of issue #1; 3 hard bounces and a complaint came back, and the
    send paused itself."""
    from newsletter.db import make_engine, upgrade_database

    config = make_config(sqlite_url, bounces__rate_min_sent=20)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    run_id = sent_run(engine, 40)
    with transaction(engine) as session:
        session.execute(
            update(SendRun).where(SendRun.id == run_id).values(status=RunStatus.RUNNING)
        )
        people = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
    for n in range(3):
        raw = dsn(config, run_id, people[n], f"reader{n}@example.net")
        receive_message(engine, config, raw, source="lmtp", now=T1)
    raw = arf(config, run_id, people[10], "reader10@example.net")
    receive_message(engine, config, raw, source="imap", now=T1)
    receive_message(engine, config, b"Subject: Merci\r\n\r\nBravo !\r\n", source="lmtp", now=T1)
    return config, engine, run_id


def test_send_status_shows_deliverability(site: tuple[Config, Engine, int]) -> None:
    """``send status`` shows delivered, bounces, complaints, unsubscribes and their rates,
    and the automatic pause's reason."""
    config, _, _ = site
    result = CliRunner().invoke(main, ["--config", str(config.path), "send", "status"])
    assert result.exit_code == 0, result.output
    assert "delivered 37, hard bounces 3 (7.5%)" in result.output
    assert "complaints 1 (2.70%), unsubscribed since 1" in result.output
    assert "hard-bounce rate 7.5%" in result.output


def test_inbound_view_lists_what_came_back(site: tuple[Config, Engine, int]) -> None:
    """The dashboard's inbound view lists each message with its classification and action,
    filters the unclassified ones, and shows one message as received."""
    config, engine, _ = site
    make_editor(engine)
    admin = signed_in(config, engine)
    page = admin.client.get("/admin/inbound")
    assert page.status_code == 200
    assert page.text.count('class="kind-hard_bounce"') == 3
    assert "plainte" in page.text and "non classé" in page.text
    unclassified = admin.client.get("/admin/inbound?kind=unclassified")
    assert "Merci" in unclassified.text and "kind-hard_bounce" not in unclassified.text
    one = admin.client.get("/admin/inbound/5")
    assert one.status_code == 200 and "Bravo !" in one.text
    assert admin.client.get("/admin/inbound/999").status_code == 404


def test_send_page_shows_figures_and_the_rate_banner(site: tuple[Config, Engine, int]) -> None:
    """The dashboard's send page shows the figures and a banner for a rate pause."""
    config, engine, run_id = site
    make_editor(engine)
    admin = signed_in(config, engine)
    page = admin.client.get(f"/admin/sends/{run_id}")
    assert page.status_code == 200
    assert 'id="rate-banner"' in page.text
    assert '<td id="dv-hard">3 (7,5\u202f%)</td>' in page.text
    assert '<td id="dv-complained">1 (2,70\u202f%)</td>' in page.text


def test_api_send_carries_deliverability(site: tuple[Config, Engine, int]) -> None:
    """The API's send resource carries the deliverability figures."""
    config, engine, run_id = site
    token = make_editor(engine)
    client: TestClient = make_client(config, engine)
    response = client.get(f"/api/sends/{run_id}", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    figures = response.json()["deliverability"]
    assert figures["hard_bounced"] == 3 and figures["complained"] == 1
    assert figures["hard_bounce_rate"] == 0.075 and figures["delivered"] == 37


def test_inbound_show_prints_the_message(site: tuple[Config, Engine, int]) -> None:
    """``inbound show`` prints the classification and the message as received."""
    config, _, _ = site
    result = CliRunner().invoke(main, ["--config", str(config.path), "inbound", "show", "5"])
    assert result.exit_code == 0 and "unclassified" in result.output and "Bravo" in result.output


def test_send_status_figures_speak_french(site: tuple[Config, Engine, int]) -> None:
    """In a French locale, ``send status`` gives the figures in French."""
    config, _, _ = site
    result = CliRunner().invoke(
        main, ["--config", str(config.path), "send", "status"], env={"LANGUAGE": "fr"}
    )
    assert result.exit_code == 0, result.output
    assert "remis 37, rebonds définitifs 3 (7.5%)" in result.output
