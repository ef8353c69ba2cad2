"""Guards around starting a send and the way out of one that cannot prepare its message: no
send to nobody (dashboard, API, CLI, the dispatcher at a slot), the losing second submit names
the send already running, `send now` asks in a terminal, and a stuck send can be prepared
again or cancelled (its links back in the queue). Real SQLite/PostgreSQL, real SMTP server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select, update

from newsletter.cli import main
from newsletter.config import Config
from newsletter.content import queue_link, queued_links
from newsletter.db import transaction
from newsletter.errors import ConflictError, InvalidInputError
from newsletter.models import Delivery, Issue, SendRun, Slot
from newsletter.schedule.dispatch import dispatch_due
from newsletter.sending import run_sender
from newsletter.services import sends
from subscribers.models import SubscriberStatus
from tests.admin_support import NOW, add_readers, make_client, open_site, signed_in
from tests.harness import SMTPServer


def invoke(config: Config, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--config", str(config.path), *args], input=stdin)


def queue(engine: Engine, count: int = 2) -> None:
    with transaction(engine) as session:
        for n in range(count):
            queue_link(
                session, url=f"https://example.org/{n}", title=f"Lien {n}", source="", now=NOW
            )


def count(engine: Engine, model: type) -> int:
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def opened(config: Config) -> tuple[Engine, str]:
    engine, token = open_site(config)
    queue(engine)
    return engine, token


@pytest.fixture
def site(opened: tuple[Engine, str]) -> Engine:
    return opened[0]


@pytest.fixture
def token(opened: tuple[Engine, str]) -> str:
    return opened[1]


# --- no send to nobody -----------------------------------------------------------------------


def test_publish_now_refuses_zero_recipients_and_keeps_the_links(
    config: Config, site: Engine
) -> None:
    """With no active subscriber the use case refuses before assembling: no issue, no run,
    both links still queued."""
    add_readers(site, ["gone@example.org"], SubscriberStatus.UNSUBSCRIBED)
    with pytest.raises(ConflictError, match="no active subscriber"), transaction(site) as s:
        sends.publish_now(s, config, NOW)
    assert count(site, Issue) == 0 and count(site, SendRun) == 0
    with transaction(site) as session:
        assert len(queued_links(session)) == 2


def test_dashboard_and_api_refuse_zero_recipients(config: Config, site: Engine, token: str) -> None:
    """The confirmation page shows no send button and says why; a forced POST gets 409 with
    a French message; the API answers 409 too."""
    admin = signed_in(config, site)
    page = admin.client.get("/admin/issue/send")
    assert 'id="no-recipients"' in page.text and 'name="confirm"' not in page.text
    response = admin.post("/admin/issue/send", {"confirm": "yes"})
    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "aucun abonné actif" in response.text  # type: ignore[attr-defined]
    api = make_client(config, site).post(
        "/api/issue/send", json={"confirm": True}, headers={"authorization": f"Bearer {token}"}
    )
    assert api.status_code == 409 and "no active subscriber" in api.json()["error"]
    assert count(site, SendRun) == 0


def test_cli_refuses_zero_recipients(config: Config, site: Engine) -> None:
    """`send now --yes` with nobody to send to prints one line and exits 2."""
    result = invoke(config, "send", "now", "--yes")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: no active subscriber would receive this issue: nothing was sent, and the "
        "issue and its links stay queued"
    ]


def test_dispatcher_skips_a_slot_with_nobody_to_send_to(config: Config, site: Engine) -> None:
    """At a slot with links but no active subscriber the slot is recorded as skipped with a
    reason, and the links stay queued for the next issue."""
    slot_time = NOW.replace(hour=7)  # Sunday 08:00 Paris, the default slot
    dispatch_due(config, site, slot_time + timedelta(minutes=1))
    with transaction(site) as session:
        slot = session.scalars(select(Slot)).one()
        assert (slot.outcome, slot.issue_id) == ("skipped", None)
        assert "aucun abonné actif" in slot.reason
        assert len(queued_links(session)) == 2
    assert count(site, Issue) == 0


# --- the second submit, and asking in a terminal ----------------------------------------------


def test_second_submit_points_to_the_running_send(config: Config, site: Engine) -> None:
    """The losing second "send now" gets a French message naming the issue and the send
    already running, and a link to it; nothing else starts."""
    add_readers(site, ["ana@example.org"])
    admin = signed_in(config, site)
    first = admin.post("/admin/issue/send", {"confirm": "yes"})
    assert first.status_code == 303  # type: ignore[attr-defined]
    second = admin.post("/admin/issue/send", {"confirm": "yes"})
    assert second.status_code == 409  # type: ignore[attr-defined]
    text = second.text  # type: ignore[attr-defined]
    assert "le numéro 1 est déjà en cours d’envoi" in text
    assert first.headers["location"] in text  # type: ignore[attr-defined]
    assert count(site, SendRun) == 1


def test_send_now_without_a_terminal_needs_yes(config: Config, site: Engine) -> None:
    """Without --yes and without a terminal nothing is sent: one line saying to add --yes."""
    add_readers(site, ["ana@example.org"])
    result = invoke(config, "send", "now", "--detach")
    assert result.exit_code == 2 and "--yes" in result.output
    assert count(site, SendRun) == 0


def test_send_now_in_a_terminal_shows_the_count_and_asks(
    config: Config, site: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a terminal the recipient count is shown; answering no sends nothing, yes sends."""
    add_readers(site, ["ana@example.org", "bea@example.org"])
    monkeypatch.setattr("newsletter.cli.send.stdin_is_terminal", lambda: True)
    refused = invoke(config, "send", "now", "--detach", stdin="n\n")
    assert "to 2 active subscribers" in refused.output and refused.exit_code == 2
    assert count(site, SendRun) == 0
    accepted = invoke(config, "send", "now", "--detach", stdin="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert count(site, SendRun) == 1


# --- the way out of a send that cannot prepare its message ----------------------------------


def _stuck_send(config: Config, engine: Engine) -> int:
    """A started send whose subject holds a line break (stored by an older version, before
    the checks), as the sender finds it: it pauses at once, nobody gets anything."""
    add_readers(engine, ["ana@example.org", "bea@example.org"])
    with transaction(engine) as session:
        run_id = sends.publish_now(session, config, NOW).run_id
        session.execute(update(SendRun).values(subject="Numéro 1\r\nBcc: x@example.org"))
    return run_id


async def test_a_stuck_send_is_prepared_again_and_delivered(
    config: Config, site: Engine, smtp_server: SMTPServer
) -> None:
    """The sender pauses a send it cannot prepare; `send reprepare --subject` renders it
    again and the resumed send reaches everyone with the new subject."""
    run_id = _stuck_send(config, site)
    await run_sender(config, site, stop_when_idle=True)
    with transaction(site) as session:
        run = session.get(SendRun, run_id)
        assert run is not None and run.status == "paused"
        assert "cannot prepare the message" in run.pause_reason
    assert smtp_server.handler.recipients() == []
    bad = invoke(config, "send", "reprepare", "--subject", "Encore\x1b[31m", "--detach")
    assert bad.exit_code == 2 and "control characters" in bad.output
    result = invoke(config, "send", "reprepare", "--subject", "Numéro 1, corrigé", "--detach")
    assert result.exit_code == 0, result.output
    await run_sender(config, site, stop_when_idle=True)
    assert sorted(smtp_server.handler.recipients()) == ["ana@example.org", "bea@example.org"]
    subjects = {m.parsed()["subject"] for m in smtp_server.handler.received()}
    assert subjects == {"Numéro 1, corrigé"}


async def test_a_stuck_send_is_cancelled_from_the_dashboard(
    config: Config, site: Engine, smtp_server: SMTPServer
) -> None:
    """Cancelling a stuck send from its page withdraws the issue (number free again, out of
    the archive) and puts its links back at the head of the queue; nobody gets mail."""
    run_id = _stuck_send(config, site)
    await run_sender(config, site, stop_when_idle=True)
    admin = signed_in(config, site)
    page = admin.client.get(f"/admin/sends/{run_id}")
    assert f"/admin/sends/{run_id}/cancel" in page.text
    queue(site, 1)  # a link queued after the issue was assembled
    response = admin.post(f"/admin/sends/{run_id}/cancel")
    assert response.status_code == 303  # type: ignore[attr-defined]
    with transaction(site) as session:
        titles = [link.title for link in queued_links(session)]
        assert titles == ["Lien 0", "Lien 1", "Lien 0"]
        assert session.scalars(select(Issue)).all() == []
        assert sends.preview_send(session, config, NOW).issue_number == 1
    assert admin.client.get("/archive/1").status_code == 404
    assert smtp_server.handler.recipients() == []
    again = admin.post(f"/admin/sends/{run_id}/cancel")
    assert again.status_code == 409  # type: ignore[attr-defined]


def test_a_running_or_reached_send_cannot_be_cancelled(config: Config, site: Engine) -> None:
    """Cancel and reprepare refuse a send that is running, or that somebody already got."""
    run_id = _stuck_send(config, site)
    with pytest.raises(ConflictError, match="must be paused"), transaction(site) as session:
        sends.cancel_send(session, config, run_id, NOW)
    with transaction(site) as session:
        session.execute(update(SendRun).values(status="paused"))
        session.execute(update(Delivery).where(Delivery.id == 1).values(status="sent"))
    with pytest.raises(ConflictError, match="already got"), transaction(site) as session:
        sends.reprepare_send(session, config, run_id, NOW, subject="Bon")


def test_api_reprepares_and_cancels(config: Config, site: Engine, token: str) -> None:
    """POST /api/sends/{id}/reprepare refuses a control character (422) and accepts a clean
    subject; POST /api/sends/{id}/cancel withdraws a paused send (200 with the links count)."""
    run_id = _stuck_send(config, site)
    with transaction(site) as session:
        session.execute(update(SendRun).values(status="paused"))
    client = make_client(config, site)
    auth = {"authorization": f"Bearer {token}"}
    bad = client.post(f"/api/sends/{run_id}/reprepare", json={"subject": "a\x00b"}, headers=auth)
    assert bad.status_code == 422
    good = client.post(f"/api/sends/{run_id}/reprepare", json={"subject": "Bon"}, headers=auth)
    assert good.status_code == 200 and good.json()["subject"] == "Bon"
    client.post(f"/api/sends/{run_id}/pause", json={}, headers=auth)
    cancelled = client.post(f"/api/sends/{run_id}/cancel", headers=auth)
    assert cancelled.json() == {"issue_number": 1, "links_requeued": 2}


def test_control_characters_are_refused_before_anything_is_stored(
    config: Config, site: Engine
) -> None:
    """A NUL in the draft subject, an ESC in a link title or a subscriber's name is a 422
    naming the field, and nothing is stored."""
    admin = signed_in(config, site)
    for path, data in [
        ("/admin/issue/draft", {"subject": "a\x00b", "intro": ""}),
        ("/admin/issue/links", {"url": "https://example.org/x", "title": "\x1b[31mrouge"}),
        ("/admin/subscribers/add", {"email": "x@example.org", "name": "Zo\x00é"}),
    ]:
        response = admin.post(path, data)
        assert response.status_code == 422, path  # type: ignore[attr-defined]
        assert "caractères de contrôle" in response.text  # type: ignore[attr-defined]
    with transaction(site) as session, pytest.raises(InvalidInputError):
        queue_link(session, url="https://example.org/\x9b31m", title="t", source="", now=NOW)
    run_id = _stuck_send(config, site)
    with transaction(site) as session, pytest.raises(InvalidInputError):
        sends.pause_send(session, run_id, "\x1b]0;pwned\x07", NOW)
