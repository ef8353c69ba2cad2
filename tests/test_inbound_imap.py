"""The IMAP poll against a real Dovecot on loopback: classified mail is recorded, acted on and
moved to the processed folder; unclassified mail stays, unread and undeleted; a second poll
reads nothing again."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import MailboxError
from newsletter.inbound.models import InboundMessage
from newsletter.services.inbound_intake import poll_imap
from subscribers.models import Subscriber
from tests.conftest import ConfigFactory
from tests.imap_support import PASSWORD, USER, Dovecot, running_dovecot
from tests.inbound_support import T1, arf, dsn, sent_run


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from running_dovecot()


@pytest.fixture
def mailbox_config(
    dovecot: Dovecot, make_config: ConfigFactory, sqlite_url: str, request: pytest.FixtureRequest
) -> Config:
    # One folder per test: the server lives for the module.
    folder = "Bounces" + str(abs(hash(request.node.name)) % 10**8)
    _imap(dovecot).create(folder)
    return make_config(
        sqlite_url,
        bounces__imap_host="127.0.0.1",
        bounces__imap_port=dovecot.port,
        bounces__imap_tls="none",
        bounces__imap_user=USER,
        bounces__imap_password=PASSWORD,
        bounces__imap_folder=folder,
        bounces__imap_processed_folder=folder + ".done",
    )


@pytest.fixture
def mailbox_engine(mailbox_config: Config) -> Iterator[Engine]:
    from newsletter.db import make_engine, upgrade_database

    engine = make_engine(mailbox_config.database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()


def _imap(dovecot: Dovecot) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", dovecot.port)
    client.login(USER, PASSWORD)
    return client


def _append(dovecot: Dovecot, folder: str, raw: bytes) -> None:
    client = _imap(dovecot)
    try:
        typ, _ = client.append(folder, None, None, raw)
        assert typ == "OK"
    finally:
        client.logout()


def _folder(dovecot: Dovecot, folder: str) -> list[tuple[bytes, bytes]]:
    """(flags, subject line) of every message in ``folder``."""
    client = _imap(dovecot)
    try:
        client.select(folder, readonly=True)
        _, data = client.uid("SEARCH", "ALL")
        out = []
        for uid in data[0].split():
            _, fetched = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            meta, body = fetched[0]  # type: ignore[misc]
            out.append((meta, body.strip()))
        return out
    finally:
        client.logout()


def _status(engine: Engine, subscriber_id: int) -> str:
    with transaction(engine) as session:
        person = session.get(Subscriber, subscriber_id)
        assert person is not None
        return person.status


def test_poll_moves_classified_and_keeps_unclassified(
    dovecot: Dovecot, mailbox_config: Config, mailbox_engine: Engine
) -> None:
    """A DSN and a complaint are acted on and moved to the processed folder; a human's
    message stays in the folder, unread; a second poll finds nothing new."""
    config, engine = mailbox_config, mailbox_engine
    run_id = sent_run(engine, 2)
    with transaction(engine) as session:
        first, second = session.scalars(select(Subscriber.id).order_by(Subscriber.id))
    folder = str(config.get("bounces", "imap_folder"))
    _append(dovecot, folder, dsn(config, run_id, first, "reader0@example.net"))
    _append(dovecot, folder, b"From: a@example.net\r\nSubject: Merci !\r\n\r\nBravo.\r\n")
    _append(dovecot, folder, arf(config, run_id, second, "reader1@example.net"))
    report = poll_imap(engine, config, now_fn=lambda: T1)
    assert (report.fetched, report.moved, report.kept) == (3, 2, 1)
    assert (_status(engine, first), _status(engine, second)) == ("bounced", "unsubscribed")
    left = _folder(dovecot, folder)
    assert [subject for _, subject in left] == [b"Subject: Merci !"]
    assert b"\\Seen" not in left[0][0] and b"\\Deleted" not in left[0][0]
    moved = _folder(dovecot, folder + ".done")
    assert len(moved) == 2
    again = poll_imap(engine, config, now_fn=lambda: T1)
    assert (again.fetched, again.moved) == (0, 0)
    with transaction(engine) as session:
        kinds = list(session.scalars(select(InboundMessage.kind).order_by(InboundMessage.id)))
    assert kinds == ["hard_bounce", "unclassified", "complaint"]


def test_poll_after_a_lost_cursor_records_nothing_twice(
    dovecot: Dovecot, mailbox_config: Config, mailbox_engine: Engine
) -> None:
    """When the cursor is lost (or UIDVALIDITY changes), the unclassified messages read again
    are recognised and not recorded twice."""
    config, engine = mailbox_config, mailbox_engine
    folder = str(config.get("bounces", "imap_folder"))
    _append(dovecot, folder, b"Subject: one\r\n\r\nx\r\n")
    poll_imap(engine, config, now_fn=lambda: T1)
    with transaction(engine) as session:
        from newsletter.inbound.models import ImapCursor

        for cursor in session.scalars(select(ImapCursor)):
            session.delete(cursor)
    report = poll_imap(engine, config, now_fn=lambda: T1)
    assert (report.fetched, report.moved, report.kept) == (1, 0, 1)
    with transaction(engine) as session:
        assert len(list(session.scalars(select(InboundMessage.id)))) == 1


def test_wrong_password_is_a_mailbox_error(
    make_config: ConfigFactory, sqlite_url: str, dovecot: Dovecot, mailbox_engine: Engine
) -> None:
    """A refused login raises ``MailboxError`` naming the problem; nothing is recorded."""
    config = make_config(
        sqlite_url,
        bounces__imap_host="127.0.0.1",
        bounces__imap_port=dovecot.port,
        bounces__imap_tls="none",
        bounces__imap_user=USER,
        bounces__imap_password="wrong",
    )
    with pytest.raises(MailboxError, match="cannot read the IMAP mailbox"):
        poll_imap(mailbox_engine, config, now_fn=lambda: T1)
