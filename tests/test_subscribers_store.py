"""The subscriber store and opt-in workflow on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import InvalidInputError, NotFoundError, TokenError
from subscribers import optin, store
from subscribers.io import ImportRow, import_rows, parse_import
from subscribers.models import ConsentEvent, Subscriber, SubscriberStatus, Suppression
from subscribers.tokens import ExpiredTokenError
from tests.subscriber_helpers import T0

WEB = store.ConsentContext(
    source="web", ip="198.51.100.4", user_agent="Firefox/140", consent_text_version="2026-11"
)


def subscribe(engine: Engine, config: Config, email: str, at: timedelta = timedelta()) -> object:
    with transaction(engine) as session:
        return optin.request_subscription(
            session, config, email=email, name="Ada", context=WEB, now=T0 + at
        )


def token_of(mail: object) -> str:
    assert isinstance(mail, optin.ConfirmationMail)
    return mail.confirm_url.rsplit("/", 1)[1]


def test_addresses_are_normalised_and_unique_case_insensitively(
    engine: Engine, config: Config
) -> None:
    """Two spellings of one address are one subscriber; the database refuses a duplicate key."""
    subscribe(engine, config, "Ada.Lovelace@EXAMPLE.org")
    subscribe(engine, config, "ada.lovelace@example.ORG")
    with transaction(engine) as session:
        [row] = session.scalars(select(Subscriber)).all()
        assert row.email == "Ada.Lovelace@example.org"
        assert row.email_key == "ada.lovelace@example.org"
    with pytest.raises(IntegrityError), transaction(engine) as session:
        store.create_subscriber(
            session,
            email="ADA.LOVELACE@example.org",
            name="",
            status=SubscriberStatus.ACTIVE,
            source="x",
            language="fr",
            now=T0,
        )


@pytest.mark.parametrize("bad", ["", "no-at-sign", "a@b", "x" * 300 + "@example.org", "a@@b.org"])
def test_invalid_addresses_are_refused_and_nothing_is_stored(
    engine: Engine, config: Config, bad: str
) -> None:
    """An invalid address raises InvalidInputError naming the email field; no row is written."""
    with pytest.raises(InvalidInputError) as caught:
        subscribe(engine, config, bad)
    assert caught.value.where == "email"
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_confirmation_throttle_and_consent_log(engine: Engine, config: Config) -> None:
    """One confirmation per interval per address; each request and confirmation is logged with
    IP, user agent, source and consent text version."""
    first = subscribe(engine, config, "ada@example.org")
    assert subscribe(engine, config, "ada@example.org", timedelta(minutes=5)) is None
    again = subscribe(engine, config, "ada@example.org", timedelta(minutes=16))
    assert first is not None and again is not None
    with transaction(engine) as session:
        welcome = optin.confirm_subscription(
            session, config, token_of(again), context=WEB, now=T0 + timedelta(minutes=20)
        )
    assert isinstance(welcome, optin.WelcomeMail) and welcome.latest_issue is None
    assert subscribe(engine, config, "ada@example.org", timedelta(hours=2)) is None  # active
    with transaction(engine) as session:
        events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [e.kind for e in events] == ["requested", "requested", "confirmed"]
        assert {(e.ip, e.user_agent, e.source, e.consent_text_version) for e in events} == {
            ("198.51.100.4", "Firefox/140", "web", "2026-11")
        }


def test_confirmation_tokens_expire_and_can_be_renewed(engine: Engine, config: Config) -> None:
    """A week-old link raises ExpiredTokenError; a renewal gives a fresh, working link."""
    mail = subscribe(engine, config, "late@example.org")
    later = T0 + timedelta(days=8)
    with pytest.raises(ExpiredTokenError), transaction(engine) as session:
        optin.confirm_subscription(session, config, token_of(mail), context=WEB, now=later)
    with transaction(engine) as session:
        fresh = optin.renew_confirmation(session, config, token_of(mail), now=later)
    with transaction(engine) as session:
        optin.confirm_subscription(session, config, token_of(fresh), context=WEB, now=later)
        row = store.get_subscriber(session, "late@example.org")
        assert row.status == "active" and row.confirmed_at == later
    with pytest.raises(TokenError), transaction(engine) as session:
        optin.confirm_subscription(session, config, "WzEsMl0.forged", context=WEB, now=later)


def test_erase_keeps_only_a_keyed_hash_and_blocks_reimport(engine: Engine, config: Config) -> None:
    """Erasure deletes the row, blanks IP and user agent in the log, keeps a suppression hash;
    an import then skips the address and counts it."""
    mail = subscribe(engine, config, "gone@example.org")
    with transaction(engine) as session:
        optin.confirm_subscription(session, config, token_of(mail), context=WEB, now=T0)
        digest = store.erase_person(session, config.secret_key, "GONE@example.org", T0)
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
        assert session.get(Suppression, digest) is not None
        events = session.scalars(select(ConsentEvent)).all()
        assert {e.address_hash for e in events} == {digest}
        assert all(e.ip == "" and e.user_agent == "" and e.subscriber_id is None for e in events)
        assert "gone@example.org" not in digest
        with pytest.raises(NotFoundError):
            store.export_person(session, "gone@example.org")
        rows = [ImportRow(2, "gone@example.org"), ImportRow(3, "new@example.org")]
        report = import_rows(
            session, config.secret_key, rows, confirmed=True, source="salon", language="fr", now=T0
        )
    assert report.added == 1 and report.skipped_erased == [2]


def test_import_reports_each_row_and_skips_unsubscribed(engine: Engine, config: Config) -> None:
    """A listmonk export: added, updated, blocklisted/unsubscribed skipped, bad rows numbered."""
    text = (
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        "1,new@example.org,Nina,{},enabled,,\n"
        "2,not-an-address,Bad,{},enabled,,\n"
        "3,blocked@example.org,Bo,{},blocklisted,,\n"
        "4,left@example.org,Lee,{},enabled,,\n"
        "5,NEW@example.org,Nina Simone,{},enabled,,\n"
    )
    with transaction(engine) as session:
        left = store.create_subscriber(
            session,
            email="left@example.org",
            name="",
            status=SubscriberStatus.UNSUBSCRIBED,
            source="web",
            language="fr",
            now=T0,
        )
        assert left.id
        report = import_rows(
            session,
            config.secret_key,
            parse_import(text, "auto"),
            confirmed=True,
            source="listmonk 2025",
            language="fr",
            now=T0,
        )
        assert (report.added, report.updated) == (1, 1)
        assert report.skipped_unsubscribed == [4, 5]
        assert [n for n, _ in report.invalid] == [3]
        assert store.get_subscriber(session, "new@example.org").name == "Nina Simone"
        assert store.get_subscriber(session, "left@example.org").status == "unsubscribed"
        assert store.find_subscriber(session, "blocked@example.org") is None


def test_confirmed_import_needs_a_consent_source(engine: Engine, config: Config) -> None:
    """Importing already-consented addresses without saying where consent came from fails."""
    with pytest.raises(InvalidInputError), transaction(engine) as session:
        import_rows(
            session,
            config.secret_key,
            [ImportRow(1, "a@example.org")],
            confirmed=True,
            source=" ",
            language="fr",
            now=T0,
        )


def test_erased_person_may_come_back_through_double_opt_in(engine: Engine, config: Config) -> None:
    """After erasure, the person's own confirmed sign-up lifts the suppression."""
    with transaction(engine) as session:
        store.create_subscriber(
            session,
            email="phoenix@example.org",
            name="",
            status=SubscriberStatus.ACTIVE,
            source="x",
            language="fr",
            now=T0,
        )
        store.erase_person(session, config.secret_key, "phoenix@example.org", T0)
        assert store.is_suppressed(session, config.secret_key, "phoenix@example.org")
    mail = subscribe(engine, config, "phoenix@example.org", timedelta(days=1))
    with transaction(engine) as session:
        optin.confirm_subscription(
            session, config, token_of(mail), context=WEB, now=T0 + timedelta(days=1)
        )
        assert not store.is_suppressed(session, config.secret_key, "phoenix@example.org")
        assert store.get_subscriber(session, "phoenix@example.org").status == "active"


def test_accented_local_parts_are_refused_and_international_domains_kept_as_punycode() -> None:
    """An address the relay cannot carry is refused at signup with a reason; an accented
    domain is stored in the ASCII form the message headers need."""
    with pytest.raises(InvalidInputError) as refused:
        store.normalise_address("Élodie@example.org")
    assert refused.value.where == "email"
    assert store.normalise_address("lea@exämple.fr") == "lea@xn--exmple-cua.fr"
