"""The sending commands end to end: CLI -> database -> real SMTP server."""

from __future__ import annotations

import csv
import io

from click.testing import CliRunner, Result
from sqlalchemy import Engine, func, select

from newsletter.cli import main
from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import transaction
from newsletter.models import Delivery, SendRun
from newsletter.sending.service import start_send_run
from tests.delivery_support import T0, add_subscribers
from tests.harness import SMTPServer


def invoke(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config.path), *args])


def queue_one(engine: Engine) -> None:
    with transaction(engine) as session:
        queue_link(
            session,
            url="https://www.lemonde.fr/pixels/article/2026/11/20/civic-tech",
            title="La civic tech cherche son modèle économique",
            source="Le Monde",
            excerpt="Subventions, dons ou services payants : trois pistes, aucune évidente.",
            now=T0,
        )


def test_send_now_sends_the_issue_and_deliveries_lists_it(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """`send now` delivers the next issue to every active subscriber; `deliveries 1` lists
    each recipient with its state, as text or CSV."""
    add_subscribers(engine, 5)
    queue_one(engine)
    result = invoke(config, "send", "now", "--yes")
    assert result.exit_code == 0, result.output
    assert "5 recipients" in result.output and "5/5 finished" in result.output
    assert len(smtp_server.received()) == 5
    listed = invoke(config, "deliveries", "1", "--format", "csv")
    assert listed.exit_code == 0, listed.output
    rows = list(csv.DictReader(io.StringIO(listed.output)))
    assert {r["email"] for r in rows} == {f"reader{i}@example.net" for i in range(5)}
    assert {r["status"] for r in rows} == {"sent"}
    failed = invoke(config, "deliveries", "1", "--status", "failed")
    assert failed.exit_code == 0 and "0 deliveries." in failed.output
    missing = invoke(config, "deliveries", "7")
    assert missing.exit_code == 2 and "issue #7 has not been sent" in missing.output


def test_send_test_marks_the_subject_and_records_nothing(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """`send test EMAIL` mails the real next issue, subject marked, without any ledger row."""
    add_subscribers(engine, 3)
    queue_one(engine)
    result = invoke(config, "send", "test", "redaction@example.org")
    assert result.exit_code == 0, result.output
    (message,) = smtp_server.received()
    assert message.rcpt_tos == ["redaction@example.org"]
    subject = str(message.parsed()["Subject"])
    assert subject.startswith("[Aperçu] ") and subject.endswith("#1")
    assert b"civic tech cherche son mod" in message.data.replace(b"=\r\n", b"")
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(SendRun)) == 0
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def test_pause_status_resume(config: Config, engine: Engine, smtp_server: SMTPServer) -> None:
    """A paused run shows its reason in `send status` and sends nothing until `send resume`."""
    add_subscribers(engine, 4)
    with transaction(engine) as session:
        start_send_run(
            session,
            key="notice:1",
            kind="notice",
            subject="Pause estivale",
            html="<p>x @@UNSUBSCRIBE_URL@@</p>",
            text="x @@UNSUBSCRIBE_URL@@",
            issue_id=None,
            now=T0,
        )
    paused = invoke(config, "send", "pause", "--reason", "relire l'intro")
    assert paused.exit_code == 0, paused.output
    worker = invoke(config, "worker", "--once")
    assert worker.exit_code == 0 and "Sent 0" in worker.output
    status = invoke(config, "send", "status")
    assert "paused" in status.output and "relire l'intro" in status.output
    assert "pending 4" in status.output
    resumed = invoke(config, "send", "resume")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(smtp_server.handler.recipients()) == sorted(
        f"reader{i}@example.net" for i in range(4)
    )
    done = invoke(config, "send", "status")
    assert ": done" in done.output and "sent 4" in done.output
    again = invoke(config, "send", "pause")
    assert again.exit_code == 2 and "already finished" in again.output


def test_status_without_any_send_is_a_clear_error(config: Config, engine: Engine) -> None:
    """`send status` before any send says so and exits 2."""
    result = invoke(config, "send", "status")
    assert result.exit_code == 2 and "no send has been started yet" in result.output


def test_the_send_and_subscriber_commands_speak_french(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """In a French locale, `send now`, `send test`, `send status`, `subscribers show` and
    `subscribers stats` print French sentences, field names and status words."""
    add_subscribers(engine, 2)
    queue_one(engine)
    french = {"LANGUAGE": "fr"}

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["--config", str(config.path), *args], env=french)
        assert result.exit_code == 0, result.output
        return result.output

    tried = run("send", "test", "redaction@example.org")
    assert "Test de «\u202f" in tried and "envoyé à redaction@example.org" in tried
    sent = run("send", "now", "--yes")
    assert "2 destinataires (envoi 1)" in sent and "Numéro 1 «\u202f" in sent
    assert "envoyé 2" in run("send", "status")
    shown = run("subscribers", "show", "reader0@example.net")
    assert "adresse\u202f: reader0@example.net" in shown and "état\u202f: actif" in shown
    assert "recipients" not in sent and "status:" not in shown
    assert "actif\u202f: 2" in run("subscribers", "stats")
