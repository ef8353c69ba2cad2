"""The async sender against a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import transaction
from newsletter.models import Delivery, Issue, IssueStatus, RunStatus, SendRun
from newsletter.returnpath import DeliveryRef, ReturnPurpose, read_return_address
from newsletter.sending.builders import BuildFn, RunMessage
from newsletter.sending.ledger import Claim
from newsletter.sending.publish import publish_next_issue
from newsletter.sending.service import (
    SenderOptions,
    delivery_service,
    run_progress,
    run_sender,
    start_send_run,
)
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.tokens import read_unsubscribe_token
from tests.conftest import TEST_SECRET
from tests.delivery_support import T0, add_subscribers, delivery_counts, simple_factory
from tests.harness import SMTPServer

FAST = SenderOptions(batch_size=10, workers=3, poll_interval=0.01)


def start(engine: Engine, key: str = "issue:1", text: str = "Bonjour") -> int:
    with transaction(engine) as session:
        return start_send_run(
            session,
            key=key,
            kind="digest",
            subject="Les liens CivicTech #1",
            html=f"<p>{text}</p><a href='@@UNSUBSCRIBE_URL@@'>x</a>",
            text=f"{text}\n@@UNSUBSCRIBE_URL@@",
            issue_id=None,
            now=T0,
        ).id


async def test_every_active_subscriber_gets_one_personal_message(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """Each active subscriber receives exactly one message whose List-Unsubscribe carries
    their own token, and the run is done afterwards."""
    ids = add_subscribers(engine, 25)
    add_subscribers(engine, 3, status=SubscriberStatus.PENDING, start=25)
    run_id = start(engine)
    stats = await run_sender(config, engine, options=FAST)
    received = smtp_server.received()
    assert stats.sent == 25 and len(received) == 25
    by_rcpt = {m.rcpt_tos[0]: m for m in received}
    assert set(by_rcpt) == {f"reader{i}@example.net" for i in range(25)}
    for i, subscriber_id in enumerate(ids):
        message = by_rcpt[f"reader{i}@example.net"]
        # VERP: the envelope sender is a signed return address naming this very delivery.
        assert message.mail_from.startswith("bounces+")
        assert message.mail_from.endswith("@example.org")
        assert read_return_address(config, message.mail_from) == DeliveryRef(
            ReturnPurpose.BOUNCE, run_id, subscriber_id
        )
        assert message.parsed()["From"].addresses[0].addr_spec == "liens@example.org"
        header = message.parsed()["List-Unsubscribe"]
        token = re.search(r"https://liens\.example\.org/u/([^>]+)>", header)
        assert token and read_unsubscribe_token(TEST_SECRET, token.group(1)) == subscriber_id
        mailto = re.search(r"<mailto:([^?>]+)\?subject=unsubscribe>", header)
        assert mailto and mailto.group(1).startswith("unsubscribe+")
        assert read_return_address(config, mailto.group(1)) == DeliveryRef(
            ReturnPurpose.UNSUBSCRIBE, run_id, subscriber_id
        )
        assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in message.data
    assert delivery_counts(engine, run_id) == {"sent": 25}
    with transaction(engine) as session:
        run = session.get(SendRun, run_id)
        assert run is not None and run.status == RunStatus.DONE


async def test_unsubscribe_mid_send_gets_nothing_more(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """A subscriber who unsubscribes while the send is under way, after their delivery was
    claimed, is skipped at send time."""
    ids = add_subscribers(engine, 30)
    run_id = start(engine)
    leaver = ids[-1]

    def factory(config: Config, message: RunMessage) -> BuildFn:
        build = simple_factory(config, message)

        def build_and_leave(claim: Claim, now: datetime) -> bytes:
            if claim.subscriber_id == ids[0]:  # the first message: the last reader leaves
                with transaction(engine) as session:
                    session.execute(
                        update(Subscriber)
                        .where(Subscriber.id == leaver)
                        .values(status=SubscriberStatus.UNSUBSCRIBED)
                    )
            return build(claim, now)

        return build_and_leave

    # One batch holds everyone, so only the check at send time can catch the leaver.
    options = SenderOptions(batch_size=30, workers=1, poll_interval=0.01)
    await run_sender(config, engine, options=options, message_factory=factory)
    recipients = smtp_server.handler.recipients()
    assert "reader29@example.net" not in recipients
    assert len(recipients) == len(set(recipients)) == 29
    assert delivery_counts(engine, run_id) == {"sent": 29, "skipped": 1}


async def test_rate_limit_spaces_messages(
    make_config: object, sqlite_url: str, smtp_server: SMTPServer
) -> None:
    """With ``[smtp] rate`` = 40/s, 12 messages over 4 connections take at least 11/40 s."""
    config = make_config(sqlite_url, smtp_port=smtp_server.port, smtp__rate=40.0)  # type: ignore[operator]
    from newsletter.db import make_engine, upgrade_database

    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    add_subscribers(engine, 12)
    start(engine)
    began = time.monotonic()
    await run_sender(config, engine, options=SenderOptions(batch_size=3, workers=4))
    assert time.monotonic() - began >= 11 / 40
    assert len(smtp_server.received()) == 12
    engine.dispose()


async def test_publish_next_issue_sends_the_digest_and_marks_it_sent(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """publish_next_issue assembles, renders and starts the run; sending marks the issue sent."""
    add_subscribers(engine, 4)
    with transaction(engine) as session:
        queue_link(
            session,
            url="https://www.nextinpact.com/article/budget-participatif",
            title="Budgets participatifs : ce qui marche",
            source="Next INpact",
            excerpt="Un bilan chiffré des budgets participatifs dans vingt villes.",
            now=T0,
        )
    with transaction(engine) as session:
        issue = publish_next_issue(session, config, T0).issue
        number, issue_id = issue.number, issue.id
        assert issue.html and issue.text
    with transaction(engine) as session:  # publishing twice is impossible: the queue is empty
        run = session.scalars(select(SendRun)).one()
        assert run.key == f"issue:{number}"
    await run_sender(config, engine, options=FAST)
    received = smtp_server.received()
    assert len(received) == 4
    assert all(
        "Budgets participatifs" in m.parsed().get_body(("plain",)).get_content()  # type: ignore[union-attr]
        for m in received
    )
    with transaction(engine) as session:
        stored = session.get(Issue, issue_id)
        assert stored is not None and stored.status == IssueStatus.SENT
        progress = run_progress(session, run.id, T0)
        assert progress.counts == {"sent": 4} and progress.open == 0


async def test_delivery_service_picks_up_runs_started_while_it_runs(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """The serve-time service sends a run started after it began, and stops cleanly."""
    add_subscribers(engine, 6)
    async with delivery_service(config, engine, SenderOptions(poll_interval=0.02)) as task:
        await asyncio.to_thread(start, engine)
        await asyncio.to_thread(smtp_server.wait_for, 6)
        assert not task.done()
    assert task.done()
    assert Counter(smtp_server.handler.recipients()) == {
        f"reader{i}@example.net": 1 for i in range(6)
    }


async def test_slow_batches_keep_their_lease(
    make_config: object, sqlite_url: str, smtp_server: SMTPServer
) -> None:
    """A batch that takes longer than the lease (low rate: 2 s for a 1 s lease) is kept by the
    heartbeat, so a second sender does not take the same recipients: everyone gets exactly one
    message."""
    config = make_config(sqlite_url, smtp_port=smtp_server.port, smtp__rate=10.0)  # type: ignore[operator]
    from newsletter.db import make_engine, upgrade_database

    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    add_subscribers(engine, 40)
    start(engine)
    options = SenderOptions(
        batch_size=20, workers=1, poll_interval=0.01, lease=timedelta(milliseconds=1000)
    )
    await asyncio.gather(
        run_sender(config, engine, options=options, message_factory=simple_factory),
        run_sender(config, engine, options=options, message_factory=simple_factory),
    )
    assert Counter(smtp_server.handler.recipients()) == {
        f"reader{i}@example.net": 1 for i in range(40)
    }
    engine.dispose()


async def test_a_recipient_whose_message_cannot_be_built_is_failed_alone(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """A name with a line break (header injection) fails that delivery with the reason;
    everyone else gets the message."""
    ids = add_subscribers(engine, 6)
    with transaction(engine) as session:
        session.execute(
            update(Subscriber).where(Subscriber.id == ids[2]).values(name="Eve\r\nBcc: x@evil")
        )
    run_id = start(engine)
    stats = await run_sender(config, engine, options=FAST)
    assert stats.sent == 5 and stats.failed == 1
    assert "reader2@example.net" not in smtp_server.handler.recipients()
    assert all(b"evil" not in m.data for m in smtp_server.received())
    assert delivery_counts(engine, run_id) == {"sent": 5, "failed": 1}
    with transaction(engine) as session:
        error = session.scalar(select(Delivery.last_error).where(Delivery.status == "failed"))
        assert error is not None and error.startswith("message not built")


async def test_a_message_that_cannot_be_prepared_pauses_the_run(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """When the run's message cannot be prepared at all, the run pauses with the reason and
    nobody is marked failed."""
    from newsletter.errors import HeaderInjectionError

    add_subscribers(engine, 4)
    run_id = start(engine)

    def broken(config: Config, message: RunMessage) -> BuildFn:
        raise HeaderInjectionError("line breaks are not allowed", "[list] name")

    stats = await run_sender(config, engine, options=FAST, message_factory=broken)
    assert stats.paused_runs == [run_id] and smtp_server.received() == []
    assert set(delivery_counts(engine, run_id)) <= {"pending", "retry"}
    with transaction(engine) as session:
        run = session.get(SendRun, run_id)
        assert run is not None and run.status == RunStatus.PAUSED
        assert run.pause_reason.startswith("cannot prepare the message: [list] name")


async def test_delivery_service_restarts_after_a_database_error(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """A database error inside the serve-time sender is logged and the sender starts again;
    the send still completes, everyone once."""
    from sqlalchemy.exc import OperationalError

    add_subscribers(engine, 8)
    start(engine)
    failures = {"left": 1}

    def flaky(config: Config, message: RunMessage) -> BuildFn:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return simple_factory(config, message)

    options = SenderOptions(poll_interval=0.02, lease=timedelta(milliseconds=1000))
    async with delivery_service(
        config, engine, options, restart_delay=0.05, message_factory=flaky
    ) as task:
        await asyncio.to_thread(smtp_server.wait_for, 8)
        assert not task.done()
    assert failures["left"] == 0
    assert Counter(smtp_server.handler.recipients()) == {
        f"reader{i}@example.net": 1 for i in range(8)
    }


async def test_outcomes_waiting_for_their_commit_are_recorded_when_a_task_fails(
    config: Config, engine: Engine, smtp_server: SMTPServer
) -> None:
    """When the sender stops on an error (here: the second run's message cannot be prepared,
    the database having failed), the 250s still waiting for their group commit are recorded
    before it raises, so the restarted sender does not send those messages again."""
    from sqlalchemy.exc import OperationalError

    add_subscribers(engine, 8)
    first = start(engine, key="issue:1")
    second = start(engine, key="issue:2", text="Deuxième")

    def failing_second(config: Config, message: RunMessage) -> BuildFn:
        if message.run_id == second:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return simple_factory(config, message)

    # Long group window: the first run's 250s are still waiting when the second run fails.
    slow_commits = SenderOptions(
        batch_size=10,
        workers=1,
        poll_interval=0.01,
        commit_interval=30.0,
        commit_limit=100,
        lease=timedelta(seconds=1),  # the second run's claims come back soon after
    )
    with pytest.raises(OperationalError):
        await run_sender(config, engine, options=slow_commits, message_factory=failing_second)
    assert delivery_counts(engine, first) == {"sent": 8}
    await run_sender(config, engine, options=FAST, message_factory=simple_factory)
    assert delivery_counts(engine, second) == {"sent": 8}
    assert Counter(smtp_server.handler.recipients()) == {
        f"reader{i}@example.net": 2 for i in range(8)
    }
