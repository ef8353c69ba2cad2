"""The inbound processor on both backends: every message recorded, bounces, complaints and
mailto unsubscribes acted on the exact delivery they name, idempotently; forgeries and hostile
mail recorded and acted on never."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import NotYetError
from newsletter.inbound.models import InboundAction, InboundKind, InboundMessage
from newsletter.models import Delivery, RunStatus, SendRun
from newsletter.services.inbound import deliverability, list_inbound, receive_message
from subscribers.io import ImportRow, import_rows
from subscribers.models import ConsentEvent, Subscriber
from tests.conftest import ConfigFactory
from tests.inbound_support import (
    T1,
    arf,
    auto_reply,
    bounce_address,
    dsn,
    mailto_unsubscribe,
    sent_run,
    soft_dsn,
    unsubscribe_address,
)
from tests.test_inbound_classify import HOSTILE


def _receive(engine: Engine, config: Config, raw: bytes, *to: str, at: timedelta = timedelta()):
    return receive_message(engine, config, raw, source="lmtp", envelope_to=list(to), now=T1 + at)


def _state(engine: Engine, subscriber_id: int) -> tuple[str, list[str], list[str]]:
    """(subscriber status, their delivery statuses, their consent-log kinds)."""
    with transaction(engine) as session:
        person = session.get(Subscriber, subscriber_id)
        assert person is not None
        deliveries = session.scalars(
            select(Delivery.status).where(Delivery.subscriber_id == subscriber_id)
        )
        events = session.scalars(
            select(ConsentEvent.kind)
            .where(ConsentEvent.subscriber_id == subscriber_id)
            .order_by(ConsentEvent.id)
        )
        return person.status, list(deliveries), list(events)


def _ids(engine: Engine) -> list[int]:
    with transaction(engine) as session:
        return list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))


def _inbound_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def test_hard_bounce_marks_delivery_and_subscriber_once(config: Config, engine: Engine) -> None:
    """A hard-bounce DSN marks its delivery bounced with the reason and its subscriber bounced
    with one consent-log event; the same DSN again changes nothing."""
    run_id = sent_run(engine, 3)
    first, other, _ = _ids(engine)
    raw = dsn(config, run_id, first, "reader0@example.net")
    received = _receive(engine, config, raw, bounce_address(config, run_id, first))
    assert (received.kind, received.action) == ("hard_bounce", "bounced")
    assert _state(engine, first) == ("bounced", ["bounced"], ["bounced"])
    assert _state(engine, other) == ("active", ["sent"], [])
    with transaction(engine) as session:
        delivery = session.scalars(select(Delivery).where(Delivery.subscriber_id == first)).one()
        assert "5.1.1" in delivery.last_error and "User unknown" in delivery.last_error
        row = session.get(InboundMessage, received.id)
        assert row is not None and (row.run_id, row.subscriber_id) == (run_id, first)
    again = _receive(engine, config, raw, bounce_address(config, run_id, first))
    assert again.duplicate and again.id == received.id
    # A second, different DSN for the same delivery (another relay's copy): nothing changes.
    other_copy = dsn(config, run_id, first, "reader0@example.net", shape="gmail")
    third = _receive(engine, config, other_copy)
    assert third.action == "already"
    assert _state(engine, first) == ("bounced", ["bounced"], ["bounced"])
    assert _inbound_count(engine) == 2


def test_soft_bounces_n_within_d_days(
    make_config: ConfigFactory, db_url: str, engine: Engine
) -> None:
    """Soft bounces from distinct sends count towards the limit within the window; repeated
    delay notices for one send count once; a stale one has expired."""
    config = make_config(db_url, bounces__soft_bounce_limit=2, bounces__soft_bounce_days=10)
    runs = [sent_run(engine, 1, key="issue:1")]
    runs += [sent_run(engine, 0, key=f"issue:{n}") for n in (2, 3)]
    person = _ids(engine)[0]

    def soft(run_id: int, at: timedelta, shape: str = "postfix"):
        raw = soft_dsn(config, run_id, person, "reader0@example.net", shape)
        return _receive(engine, config, raw, at=at)

    # Run 1's soft bounce is 20 days old by the time of the others: expired.
    assert soft(runs[0], timedelta(days=-20)).action == "soft_counted"
    assert soft(runs[1], timedelta()).action == "soft_counted"
    assert soft(runs[1], timedelta(hours=4), shape="gmail").action == "soft_counted"
    assert _state(engine, person)[0] == "active"
    assert soft(runs[2], timedelta(days=1)).action == "soft_limit"
    status, _, events = _state(engine, person)
    assert (status, events) == ("bounced", ["bounced"])


def test_complaint_unsubscribes_at_once_and_import_never_re_adds(
    config: Config, engine: Engine
) -> None:
    """An ARF complaint unsubscribes the person at once, logged ``complained``; a later
    import of the same address does not re-add them."""
    run_id = sent_run(engine, 2)
    person = _ids(engine)[0]
    received = _receive(engine, config, arf(config, run_id, person, "reader0@example.net"))
    assert (received.kind, received.action) == ("complaint", "complained")
    assert _state(engine, person) == ("unsubscribed", ["sent"], ["complained"])
    assert (
        _receive(engine, config, arf(config, run_id, person, "x", to="fbl2@example.org")).action
        == "already"
    )
    with transaction(engine) as session:
        report = import_rows(
            session,
            config.secret_key,
            [ImportRow(2, "reader0@example.net")],
            confirmed=True,
            source="old export",
            language="fr",
            now=T1,
        )
        assert report.skipped_unsubscribed
    assert _state(engine, person)[0] == "unsubscribed"
    figures = _figures(engine, run_id)
    assert figures["complained"] == 1 and figures["unsubscribed"] == 1


def _figures(engine: Engine, run_id: int) -> dict[str, object]:
    with transaction(engine) as session:
        return deliverability(session, run_id).as_dict()


def test_mailto_unsubscribe_acts_like_one_click(config: Config, engine: Engine) -> None:
    """A message to unsubscribe+TOKEN unsubscribes that person with an ``unsubscribed``
    consent event whose source says mailto; a second one changes nothing."""
    run_id = sent_run(engine, 2)
    person = _ids(engine)[0]
    address = unsubscribe_address(config, run_id, person)
    received = _receive(engine, config, mailto_unsubscribe(address), address)
    assert (received.kind, received.action) == ("unsubscribe", "unsubscribed")
    assert _state(engine, person) == ("unsubscribed", ["sent"], ["unsubscribed"])
    with transaction(engine) as session:
        event = session.scalars(select(ConsentEvent)).one()
        assert event.source == "inbound:lmtp" and f"send {run_id}" in event.detail
    raw = mailto_unsubscribe(address).replace(b"unsub.1", b"unsub.2")
    assert _receive(engine, config, raw, address).action == "already"


@pytest.mark.parametrize("case", ["forged", "other list", "none"])
def test_forgery_changes_nothing(
    config: Config, engine: Engine, make_config: ConfigFactory, db_url: str, case: str
) -> None:
    """A DSN, complaint or mailto whose token is forged, from another list or missing is
    recorded as unclassified and changes nobody."""
    run_id = sent_run(engine, 1)
    person = _ids(engine)[0]
    other = make_config(db_url, web__secret_key="another-list-secret-0123456789abcdef0123")
    good = bounce_address(config, run_id, person)
    address = {
        "forged": good.replace(good.partition("@")[0][-5:], "zzzzz"),
        "other list": bounce_address(other, run_id, person),
        "none": "liens@example.org",
    }[case]
    forged_original = f"Return-Path: <{address}>\r\n"
    messages = [
        dsn(config, run_id, person, "reader0@example.net", to=address),
        arf(config, run_id, person, "reader0@example.net", original=forged_original),
        mailto_unsubscribe(address.replace("bounces+", "unsubscribe+")),
    ]
    for raw in messages:
        received = _receive(engine, config, raw, address)
        assert (received.kind, received.action) == ("unclassified", "none")
    assert _state(engine, person) == ("active", ["sent"], [])
    assert _inbound_count(engine) == 3


def test_dsn_for_an_unknown_run_is_recorded_unclassified(config: Config, engine: Engine) -> None:
    """A correctly signed DSN for a send that does not exist here is recorded unclassified."""
    sent_run(engine, 1)
    person = _ids(engine)[0]
    received = _receive(engine, config, dsn(config, 999, person, "reader0@example.net"))
    assert received.kind == "unclassified" and "unknown delivery" in received.detail
    assert _state(engine, person) == ("active", ["sent"], [])


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_mail_is_recorded_whole(config: Config, engine: Engine, case: str) -> None:
    """Hostile MIME is recorded, byte for byte, as unclassified; nothing is lost."""
    received = _receive(engine, config, HOSTILE[case], "bounces@example.org")
    assert received.kind == "unclassified"
    with transaction(engine) as session:
        row = session.get(InboundMessage, received.id)
        assert row is not None and row.raw == HOSTILE[case] and row.size == len(HOSTILE[case])


def test_auto_reply_is_recorded_and_ignored(config: Config, engine: Engine) -> None:
    """An out-of-office reply is recorded as ignored and acts on nobody."""
    sent_run(engine, 1)
    received = _receive(engine, config, auto_reply("liens@example.org"))
    assert (received.kind, received.action) == ("auto_reply", "ignored")
    with transaction(engine) as session:
        rows = list_inbound(session)
    assert [(r.kind, r.subject) for r in rows] == [
        ("auto_reply", "Réponse automatique : Les liens CivicTech #1")
    ]


def test_hard_bounce_rate_over_threshold_pauses_the_run(
    make_config: ConfigFactory, db_url: str, engine: Engine
) -> None:
    """When a running send's hard-bounce rate passes the threshold (once enough messages
    were delivered), it pauses with the reason; below it, it keeps running."""
    config = make_config(db_url, bounces__rate_min_sent=20, bounces__max_hard_bounce_rate=0.05)
    run_id = sent_run(engine, 40)
    with transaction(engine) as session:
        run = session.get(SendRun, run_id)
        assert run is not None
        run.status = RunStatus.RUNNING
    people = _ids(engine)
    for n, person in enumerate(people[:2]):  # 2 of 40 = 5%: not over
        raw = dsn(config, run_id, person, f"reader{n}@example.net")
        assert not _receive(engine, config, raw).paused_run
    raw = dsn(config, run_id, people[2], "reader2@example.net")
    received = _receive(engine, config, raw)
    assert received.paused_run and "hard-bounce rate 7.5%" in received.detail
    with transaction(engine) as session:
        run = session.get(SendRun, run_id)
        assert run is not None and run.status == RunStatus.PAUSED
        assert "hard-bounce rate" in run.pause_reason
    figures = _figures(engine, run_id)
    assert figures["hard_bounced"] == 3 and figures["delivered"] == 37
    assert figures["hard_bounce_rate"] == 0.075


def test_complaint_rate_over_threshold_pauses_the_run(
    make_config: ConfigFactory, db_url: str, engine: Engine
) -> None:
    """One complaint in 100 delivered (1%) is over Gmail's 0.3%: the running send pauses."""
    config = make_config(db_url, bounces__rate_min_sent=100)
    run_id = sent_run(engine, 100)
    with transaction(engine) as session:
        run = session.get(SendRun, run_id)
        assert run is not None
        run.status = RunStatus.RUNNING
    person = _ids(engine)[5]
    received = _receive(engine, config, arf(config, run_id, person, "reader5@example.net"))
    assert received.action == InboundAction.COMPLAINED and received.paused_run
    assert "complaint rate" in received.detail
    assert received.kind == InboundKind.COMPLAINT


def test_dsn_overtaking_the_senders_record_is_deferred(config: Config, engine: Engine) -> None:
    """A hard bounce for a delivery the sender has not recorded yet (still ``sending``) is
    refused with ``NotYetError``, recording nothing; handed again once the sender recorded
    the 250, it acts."""
    run_id = sent_run(engine, 1)
    person = _ids(engine)[0]
    with transaction(engine) as session:
        session.execute(update(Delivery).where(Delivery.run_id == run_id).values(status="sending"))
    raw = dsn(config, run_id, person, "reader0@example.net")
    with pytest.raises(NotYetError):
        _receive(engine, config, raw)
    assert _inbound_count(engine) == 0 and _state(engine, person)[0] == "active"
    with transaction(engine) as session:
        session.execute(update(Delivery).where(Delivery.run_id == run_id).values(status="sent"))
    assert _receive(engine, config, raw).action == "bounced"
    assert _state(engine, person) == ("bounced", ["bounced"], ["bounced"])
