"""The delivery ledger on SQLite and PostgreSQL: snapshot, claims, leases, outcomes, runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from newsletter.db import transaction
from newsletter.errors import ConflictError
from newsletter.models import Delivery, Issue, IssueStatus, RunStatus, SendRun
from newsletter.sending.ledger import claim_batch
from newsletter.sending.outcomes import (
    DeliveryOutcome,
    DeliveryOutcomeKind,
    RetryPolicy,
    record_outcomes,
)
from newsletter.sending.runs import finish_run_if_complete, pause_run, resume_run, start_send_run
from subscribers.models import ConsentEvent, Subscriber, SubscriberStatus
from tests.delivery_support import T0, add_subscribers, delivery_counts

LEASE = timedelta(minutes=5)
POLICY = RetryPolicy(
    max_attempts=3, base_delay=timedelta(seconds=10), soft_bounce_limit=2, secret="k" * 32
)


def start(engine: Engine, key: str = "issue:1", issue_id: int | None = None) -> int:
    with transaction(engine) as session:
        run = start_send_run(
            session,
            key=key,
            kind="digest",
            subject="Les liens #1",
            html="<p>x</p>",
            text="x",
            issue_id=issue_id,
            now=T0,
        )
        return run.id


def claim(engine: Engine, run_id: int, limit: int = 100, at: timedelta = timedelta()) -> list:
    with transaction(engine) as session:
        return claim_batch(session, run_id, limit=limit, now=T0 + at, lease=LEASE)


def record(engine: Engine, outcomes: list[DeliveryOutcome], at: timedelta = timedelta()) -> None:
    with transaction(engine) as session:
        record_outcomes(session, outcomes, now=T0 + at, policy=POLICY)


def test_snapshot_holds_active_subscribers_once_and_key_is_idempotent(engine: Engine) -> None:
    """Starting a run snapshots every active subscriber; starting the same key again adds
    nothing."""
    add_subscribers(engine, 5)
    add_subscribers(engine, 2, status=SubscriberStatus.UNSUBSCRIBED, start=5)
    first = start(engine)
    again = start(engine)
    assert first == again
    assert delivery_counts(engine, first) == {"pending": 5}
    with transaction(engine) as session:
        assert session.scalar(select(SendRun.status)) == RunStatus.RUNNING


def test_claims_are_disjoint_and_expired_leases_are_claimed_again(engine: Engine) -> None:
    """Two claims never return the same row while a lease holds; after expiry it returns."""
    add_subscribers(engine, 5)
    run_id = start(engine)
    a = claim(engine, run_id, limit=3)
    b = claim(engine, run_id, limit=3)
    assert len(a) == 3 and len(b) == 2
    assert not {c.delivery_id for c in a} & {c.delivery_id for c in b}
    assert claim(engine, run_id) == []
    again = claim(engine, run_id, at=LEASE + timedelta(seconds=1))
    assert {c.delivery_id for c in again} == {c.delivery_id for c in a + b}
    assert a[0].name.startswith("Reader ")


def test_unsubscribed_before_claim_is_skipped(engine: Engine) -> None:
    """A subscriber who left after the snapshot is skipped, not claimed."""
    ids = add_subscribers(engine, 3)
    run_id = start(engine)
    with transaction(engine) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == ids[1])
            .values(status=SubscriberStatus.UNSUBSCRIBED)
        )
    claims = claim(engine, run_id)
    assert [c.subscriber_id for c in claims] == [ids[0], ids[2]]
    assert delivery_counts(engine, run_id) == {"sending": 2, "skipped": 1}


def test_outcomes_move_rows_and_subscribers(engine: Engine) -> None:
    """Sent, retry with backoff, failed after max attempts (soft bounce), bounced (hard)."""
    ids = add_subscribers(engine, 3)
    run_id = start(engine)
    c = claim(engine, run_id)
    record(
        engine,
        [
            DeliveryOutcome(c[0], DeliveryOutcomeKind.SENT),
            DeliveryOutcome(c[1], DeliveryOutcomeKind.TEMPORARY, "451 later"),
            DeliveryOutcome(c[2], DeliveryOutcomeKind.PERMANENT, "550 no user"),
        ],
    )
    assert delivery_counts(engine, run_id) == {"sent": 1, "retry": 1, "bounced": 1}
    with transaction(engine) as session:
        retry = session.scalars(select(Delivery).where(Delivery.status == "retry")).one()
        assert retry.next_attempt_at == T0 + timedelta(seconds=10)
        assert retry.attempts == 1 and retry.last_error == "451 later"
        assert session.get(Subscriber, ids[2]).status == SubscriberStatus.BOUNCED  # type: ignore[union-attr]
        event = session.scalars(select(ConsentEvent)).one()
        assert (event.subscriber_id, event.kind) == (ids[2], "bounced")
        assert event.detail == "hard bounce: 550 no user" and len(event.address_hash) == 64
    # Not due before its backoff; due after; two more temporary failures exhaust it.
    assert claim(engine, run_id, at=timedelta(seconds=9)) == []
    for attempt, wait in ((2, 10), (3, 40)):
        again = claim(engine, run_id, at=timedelta(seconds=wait))
        assert len(again) == 1 and again[0].attempts == attempt - 1
        out = DeliveryOutcome(again[0], DeliveryOutcomeKind.TEMPORARY, "451")
        record(engine, [out], at=timedelta(seconds=wait))
    assert delivery_counts(engine, run_id) == {"sent": 1, "failed": 1, "bounced": 1}
    with transaction(engine) as session:
        soft = session.get(Subscriber, ids[1])
        assert soft is not None and soft.soft_bounces == 1 and soft.status == "active"
        assert finish_run_if_complete(session, run_id, T0)


def test_soft_bounce_limit_marks_subscriber_bounced_and_sent_resets_it(engine: Engine) -> None:
    """Soft bounces in a row reach the limit -> bounced; a delivered message resets the count."""
    ids = add_subscribers(engine, 2)
    with transaction(engine) as session:
        session.execute(update(Subscriber).values(soft_bounces=1))
    run_id = start(engine)
    c = claim(engine, run_id)
    policy = RetryPolicy(max_attempts=1, soft_bounce_limit=2, secret="k" * 32)
    with transaction(engine) as session:
        record_outcomes(
            session,
            [
                DeliveryOutcome(c[0], DeliveryOutcomeKind.TEMPORARY, "452"),
                DeliveryOutcome(c[1], DeliveryOutcomeKind.SENT),
            ],
            now=T0,
            policy=policy,
        )
    with transaction(engine) as session:
        first, second = session.get(Subscriber, ids[0]), session.get(Subscriber, ids[1])
        assert first is not None and second is not None
        assert (first.status, first.soft_bounces) == ("bounced", 2)
        assert (second.status, second.soft_bounces) == ("active", 0)
        event = session.scalars(select(ConsentEvent)).one()
        assert (event.subscriber_id, event.detail) == (ids[0], "2 soft bounces in a row")


def test_pause_stops_claims_and_resume_makes_retries_due(engine: Engine) -> None:
    """A paused run is not claimed; resuming makes waiting retries due at once."""
    add_subscribers(engine, 2)
    run_id = start(engine)
    c = claim(engine, run_id, limit=1)
    record(engine, [DeliveryOutcome(c[0], DeliveryOutcomeKind.TEMPORARY, "4")])
    with transaction(engine) as session:
        pause_run(session, run_id, "summer", T0)
    assert claim(engine, run_id) == []
    with transaction(engine) as session:
        resume_run(session, run_id, T0)
    assert len(claim(engine, run_id)) == 2  # the pending one and the retry, due now


def test_released_rows_keep_their_attempts(engine: Engine) -> None:
    """A message never attempted (relay unreachable) goes back without spending an attempt."""
    add_subscribers(engine, 1)
    run_id = start(engine)
    c = claim(engine, run_id)
    record(engine, [DeliveryOutcome(c[0], DeliveryOutcomeKind.RELEASED, "down")])
    again = claim(engine, run_id)
    assert again[0].attempts == 0


def test_finishing_marks_run_done_and_issue_sent(engine: Engine) -> None:
    """When no delivery is open the run is done and its issue is marked sent."""
    add_subscribers(engine, 1)
    with transaction(engine) as session:
        issue = Issue(number=1, subject="s", intro="", status="assembled", created_at=T0)
        session.add(issue)
        session.flush()
        issue_id = issue.id
    run_id = start(engine, issue_id=issue_id)
    c = claim(engine, run_id)
    with transaction(engine) as session:
        assert not finish_run_if_complete(session, run_id, T0)
    record(engine, [DeliveryOutcome(c[0], DeliveryOutcomeKind.SENT)])
    with transaction(engine) as session:
        assert finish_run_if_complete(session, run_id, T0 + timedelta(minutes=1))
    with transaction(engine) as session:
        issue = session.get(Issue, issue_id)
        run = session.get(SendRun, run_id)
        assert issue is not None and issue.status == IssueStatus.SENT
        assert issue.sent_at == T0 + timedelta(minutes=1)
        assert run is not None and run.status == RunStatus.DONE
        with pytest.raises(ConflictError):
            pause_run(session, run_id, "late", T0)


def test_progress_counts_rate_eta_and_last_errors(engine: Engine) -> None:
    """run_progress reports counts per state, the recent rate, the ETA and recent errors."""
    from newsletter.sending.service import run_progress

    add_subscribers(engine, 10)
    run_id = start(engine)
    c = claim(engine, run_id, limit=5)
    sent = [DeliveryOutcome(x, DeliveryOutcomeKind.SENT) for x in c[:4]]
    late = DeliveryOutcome(c[4], DeliveryOutcomeKind.TEMPORARY, "451 busy")
    record(engine, [*sent, late], at=timedelta(seconds=2))
    with transaction(engine) as session:
        progress = run_progress(session, run_id, T0 + timedelta(seconds=4))
    assert progress.counts == {"sent": 4, "retry": 1, "pending": 5}
    assert (progress.total, progress.open, progress.finished) == (10, 6, 4)
    assert progress.rate == 2.0  # 4 messages in the 2 s since the first of the last minute
    assert progress.eta == timedelta(seconds=3)
    assert progress.last_errors == (("reader4@example.net", "451 busy"),)
    with transaction(engine) as session:
        later = run_progress(session, run_id, T0 + timedelta(minutes=5))
    assert later.rate == 0.0 and later.eta is None


def test_sent_at_is_the_time_of_the_servers_reply(engine: Engine) -> None:
    """Each sent row keeps the time its 250 came, not the time the batch was committed."""
    add_subscribers(engine, 2)
    run_id = start(engine)
    c = claim(engine, run_id)
    first, second = (T0 + timedelta(seconds=n) for n in (1, 2))
    record(
        engine,
        [
            DeliveryOutcome(c[0], DeliveryOutcomeKind.SENT, at=first),
            DeliveryOutcome(c[1], DeliveryOutcomeKind.SENT, at=second),
        ],
        at=timedelta(seconds=30),
    )
    with transaction(engine) as session:
        rows = session.execute(select(Delivery.sent_at, Delivery.attempts).order_by(Delivery.id))
        assert [tuple(r) for r in rows] == [(first, 1), (second, 1)]
