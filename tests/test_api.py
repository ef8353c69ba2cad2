"""The JSON API under /api: bearer tokens required on every operation, and the editor's
actions (queue, edit, move, remove links; draft; preview; test; send; sends; schedule;
subscribers) change the database and reach the SMTP server like the dashboard's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Link, Pause
from newsletter.sending.sender import run_sender
from newsletter.web.api.app import OPERATIONS
from tests.admin_support import EMAIL, add_readers, make_client, open_site
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer


@pytest.fixture
def site(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> tuple[Config, Engine, str]:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine, token = open_site(config)
    add_readers(engine, ["ana@example.org", "bea@example.org"], source="t")
    return config, engine, token


@pytest.fixture
def api(site: tuple[Config, Engine, str]) -> TestClient:
    config, engine, token = site
    client = make_client(config, engine)
    client.headers["authorization"] = f"Bearer {token}"
    return client


def _concrete(path: str) -> str:
    return "/api" + path.replace("{link_id}", "1").replace("{run_id}", "1")


def test_every_operation_refuses_missing_and_wrong_tokens(
    site: tuple[Config, Engine, str],
) -> None:
    """Without a token, with a wrong one, or with a session cookie only: 401 and nothing done."""
    config, engine, token = site
    client = make_client(config, engine)
    for op in OPERATIONS:
        for headers in ({}, {"authorization": "Bearer nlt_wrong"}, {"authorization": token}):
            response = client.request(op.method, _concrete(op.path), headers=headers, json={})
            assert response.status_code == 401, (op.method, op.path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
    with transaction(engine) as session:
        assert session.scalars(select(Link)).all() == []


def test_links_and_draft_round_trip(site: tuple[Config, Engine, str], api: TestClient) -> None:
    """Links are queued, edited, moved and removed through the API, and the draft is saved."""
    _, engine, _ = site
    first = api.post("/api/links", json={"url": "https://example.org/1", "title": "Un"})
    assert first.status_code == 201 and first.json()["title"] == "Un"
    second = api.post(
        "/api/links",
        json={"url": "https://example.org/2", "title": "Deux", "tags": ["civic", "tech"]},
    ).json()
    assert second["tags"] == ["civic", "tech"]
    moved = api.post(f"/api/links/{second['id']}/move", json={"position": 1}).json()
    assert [link["title"] for link in moved["links"]] == ["Deux", "Un"]
    changed = api.patch(f"/api/links/{first.json()['id']}", json={"title": "Un, corrigé"})
    assert changed.status_code == 200 and changed.json()["title"] == "Un, corrigé"
    assert api.delete(f"/api/links/{second['id']}").status_code == 204
    assert api.delete(f"/api/links/{second['id']}").status_code == 404
    assert api.put("/api/issue/draft", json={"intro": "Bonjour."}).json()["intro"] == "Bonjour."
    issue = api.get("/api/issue").json()
    assert issue["intro"] == "Bonjour." and issue["recipients"] == 2
    assert [link["title"] for link in issue["links"]] == ["Un, corrigé"]
    with transaction(engine) as session:
        assert session.scalars(select(Link.title)).all() == ["Un, corrigé"]


def test_bad_input_is_refused_with_where(api: TestClient) -> None:
    """Malformed JSON, unknown fields and bad URLs are refused and say where."""
    response = api.post(
        "/api/links", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    response = api.post("/api/links", json={"url": "https://e.org", "title": "t", "x": 1})
    assert response.status_code == 400 and response.json()["where"] == "body.x"
    response = api.post("/api/links", json={"url": "ftp://example.org", "title": "t"})
    assert response.status_code == 422 and response.json()["where"] == "url"
    assert api.get("/api/links/abc").status_code in (400, 405)
    assert api.get("/api/sends/99999999999").status_code in (400, 404)


async def test_publish_and_watch_a_send(
    site: tuple[Config, Engine, str], api: TestClient, smtp_server: SMTPServer
) -> None:
    """A test goes to the editor only; send starts a run that reaches both subscribers and
    its progress and CSV report say so."""
    config, engine, _ = site
    api.post("/api/links", json={"url": "https://example.org/1", "title": "Un lien"})
    assert api.get("/api/issue/preview").json()["subject"]
    assert api.post("/api/issue/test").json() == {"sent_to": EMAIL}
    assert smtp_server.wait_for(1)[0].rcpt_tos == [EMAIL]
    assert api.post("/api/issue/send", json={"confirm": False}).status_code == 400
    started = api.post("/api/issue/send", json={"confirm": True})
    assert started.status_code == 201 and started.json()["recipients"] == 2
    run_id = started.json()["run_id"]
    paused = api.post(f"/api/sends/{run_id}/pause", json={"reason": "relecture"}).json()
    assert paused["status"] == "paused"
    assert api.post(f"/api/sends/{run_id}/resume").json()["status"] == "running"
    await run_sender(config, engine, stop_when_idle=True)
    progress = api.get(f"/api/sends/{run_id}").json()
    assert progress["status"] == "done" and progress["sent"] == 2
    report = api.get(f"/api/sends/{run_id}/report")
    assert report.text.count("\n") == 3 and "ana@example.org,sent" in report.text
    assert len(smtp_server.received()) == 3
    assert api.post(f"/api/sends/{run_id}/pause", json={}).status_code == 409


def test_schedule_and_subscribers(
    site: tuple[Config, Engine, str], api: TestClient, smtp_server: SMTPServer
) -> None:
    """Pause and resume the schedule; search and add subscribers."""
    config, engine, _ = site
    until = (utc_now().astimezone(config.timezone).date() + timedelta(days=15)).isoformat()
    paused = api.post("/api/schedule/pause", json={"until": until, "reason": "Été"}).json()
    assert paused["pause"] == {"until": until, "reason": "Été"}
    assert paused["slots"][0]["outcome"] == "paused"
    with transaction(engine) as session:
        assert session.scalars(select(Pause.reason)).one() == "Été"
    assert api.post("/api/schedule/resume").json()["pause"] is None
    assert api.post("/api/schedule/resume").status_code == 409
    found = api.get("/api/subscribers", params={"q": "ana"}).json()
    assert found["total"] == 1 and found["counts"]["active"] == 2
    added = api.post("/api/subscribers", json={"email": "eve@example.org"})
    assert added.status_code == 202 and added.json() == {"confirmation_sent": True}
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["eve@example.org"]
    text = "email,name\nzoe@example.org,Zoe\nbroken,X\n"
    imported = api.post(
        "/api/subscribers/import", json={"text": text, "confirmed": True, "source": "salon"}
    ).json()
    assert imported["rows"] == 2 and "added: 1" in imported["report"]
    assert any(line.startswith("  row 3:") for line in imported["report"])
    exported = api.get("/api/subscribers/export", params={"status": "active"})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "zoe@example.org" in exported.text and "eve@example.org" not in exported.text
