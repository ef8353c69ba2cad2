"""The IMAP poll over TLS against a real Dovecot on loopback with a self-signed certificate:
implicit TLS and STARTTLS read, record and move the bounce when the certificate is trusted,
and a certificate the system does not trust stops the poll before the password is sent."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select

from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.errors import MailboxError
from newsletter.inbound.imap import Mailbox
from newsletter.inbound.models import InboundMessage
from newsletter.services.inbound_intake import poll_imap
from subscribers.models import Subscriber
from tests.conftest import ConfigFactory
from tests.imap_support import PASSWORD, USER, Dovecot, running_dovecot
from tests.inbound_support import T1, dsn, sent_run


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    yield from running_dovecot(tls=True)


def _trusting(dovecot: Dovecot) -> ssl.SSLContext:
    """A default client context (hostname and chain checked) that trusts the test's CA."""
    return ssl.create_default_context(cafile=str(dovecot.cert))


def _site(
    dovecot: Dovecot,
    make_config: ConfigFactory,
    sqlite_url: str,
    tls: str,
    folder: str,
    host: str = "127.0.0.1",
) -> tuple[Config, Engine]:
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.tls_port, ssl_context=_trusting(dovecot))
    client.login(USER, PASSWORD)
    client.create(folder)
    client.logout()
    config = make_config(
        sqlite_url,
        bounces__imap_host=host,
        bounces__imap_port=dovecot.tls_port if tls == "tls" else dovecot.port,
        bounces__imap_tls=tls,
        bounces__imap_user=USER,
        bounces__imap_password=PASSWORD,
        bounces__imap_folder=folder,
        bounces__imap_processed_folder=folder + ".done",
    )
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    return config, engine


def _append(dovecot: Dovecot, folder: str, raw: bytes) -> None:
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.tls_port, ssl_context=_trusting(dovecot))
    client.login(USER, PASSWORD)
    try:
        assert client.append(folder, None, None, raw)[0] == "OK"
    finally:
        client.logout()


def _count(dovecot: Dovecot, folder: str) -> int:
    client = imaplib.IMAP4_SSL("127.0.0.1", dovecot.tls_port, ssl_context=_trusting(dovecot))
    client.login(USER, PASSWORD)
    try:
        typ, data = client.select(folder, readonly=True)
        assert typ == "OK"
        return int(data[0] or 0)
    finally:
        client.logout()


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_poll_over_tls_records_and_moves_the_bounce(
    dovecot: Dovecot, make_config: ConfigFactory, sqlite_url: str, tls: str
) -> None:
    """With the certificate trusted, a poll over implicit TLS or STARTTLS records the DSN,
    bounces the subscriber and moves the message to the processed folder."""
    folder = f"TLS{tls}"
    config, engine = _site(dovecot, make_config, sqlite_url, tls, folder)
    run_id = sent_run(engine, 1)
    with transaction(engine) as session:
        person = session.scalars(select(Subscriber.id)).one()
    _append(dovecot, folder, dsn(config, run_id, person, "reader0@example.net"))
    report = poll_imap(
        engine,
        config,
        now_fn=lambda: T1,
        mailbox_factory=lambda settings: Mailbox(settings, _trusting(dovecot)),
    )
    assert (report.fetched, report.moved, report.kept) == (1, 1, 0)
    with transaction(engine) as session:
        rows = session.execute(select(InboundMessage.source, InboundMessage.kind)).all()
        assert [tuple(r) for r in rows] == [("imap", "hard_bounce")]
        assert session.get(Subscriber, person).status == "bounced"  # type: ignore[union-attr]
    assert (_count(dovecot, folder), _count(dovecot, folder + ".done")) == (0, 1)
    engine.dispose()


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_an_untrusted_certificate_stops_the_poll(
    dovecot: Dovecot, make_config: ConfigFactory, sqlite_url: str, tls: str
) -> None:
    """The poll as ``serve`` runs it (the system's trust store) refuses the self-signed
    certificate with a ``MailboxError``: nothing is recorded and the message stays."""
    folder = f"Untrusted{tls}"
    config, engine = _site(dovecot, make_config, sqlite_url, tls, folder)
    _append(dovecot, folder, b"From: a@example.net\r\nSubject: x\r\n\r\nx\r\n")
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        poll_imap(engine, config, now_fn=lambda: T1)
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 0
    assert _count(dovecot, folder) == 1
    engine.dispose()


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_a_certificate_for_another_host_stops_the_poll(
    dovecot: Dovecot, make_config: ConfigFactory, sqlite_url: str, tls: str
) -> None:
    """A trusted certificate that does not name the address the poll connects to (the
    server answers on 127.0.0.2, its certificate is for 127.0.0.1 and localhost) is refused
    like an untrusted one: the host name is checked, not only the chain."""
    folder = f"Elsewhere{tls}"
    config, engine = _site(dovecot, make_config, sqlite_url, tls, folder, host="127.0.0.2")
    _append(dovecot, folder, b"From: a@example.net\r\nSubject: x\r\n\r\nx\r\n")
    with pytest.raises(MailboxError, match="mismatch"):
        poll_imap(
            engine,
            config,
            now_fn=lambda: T1,
            mailbox_factory=lambda settings: Mailbox(settings, _trusting(dovecot)),
        )
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 0
    assert _count(dovecot, folder) == 1
    engine.dispose()
