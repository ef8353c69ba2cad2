"""Web security: the sign-in lockout holds against parallel guesses, sign-out ends the session
on the server, the CSRF token is bound to the session and renewed at sign-in, X-Forwarded-For
is believed only from trusted proxies, a used confirmation link does not subscribe again
someone who left since, and the CLI's CSV report is formula-safe."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from newsletter.cli import main
from newsletter.cli.serve import proxy_options
from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import transaction
from newsletter.errors import TokenError
from newsletter.services import sends
from newsletter.web.app import create_app
from subscribers import optin
from subscribers.models import ConsentEvent, Subscriber, SubscriberStatus
from subscribers.store import ConsentContext
from tests.admin_support import (
    EMAIL,
    NOW,
    PASSWORD,
    add_readers,
    csrf_from,
    make_client,
    open_site,
    sign_in,
)
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer

CONTEXT = ConsentContext(source="test", ip="", user_agent="", consent_text_version="1")


@pytest.fixture
def site(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> tuple[Config, Engine]:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine, _ = open_site(config)
    return config, engine


async def test_parallel_wrong_passwords_are_counted_before_checking(
    site: tuple[Config, Engine],
) -> None:
    """Of 60 wrong-password sign-ins sent at once, at most 5 get their password checked
    (401); the others are refused before checking (429), and so is the right password."""
    config, engine = site
    app = create_app(config, engine)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=config.base_url) as client:
        csrf = csrf_from((await client.get("/admin/login")).text)
        data = {"csrf_token": csrf, "email": EMAIL, "password": "wrong"}
        answers = await asyncio.gather(*(client.post("/admin/login", data=data) for _ in range(60)))
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(401) <= 5 and statuses.count(401) + statuses.count(429) == 60
        right = await client.post("/admin/login", data={**data, "password": PASSWORD})
        assert right.status_code == 429


def test_sign_out_ends_the_session_on_the_server(site: tuple[Config, Engine]) -> None:
    """A session cookie copied before sign-out no longer opens the dashboard afterwards."""
    admin = sign_in(make_client(*site))
    copied = dict(admin.client.cookies)
    assert admin.post("/admin/logout").status_code == 303  # type: ignore[attr-defined]
    thief = make_client(*site)
    thief.cookies.update(copied)
    page = thief.get("/admin/issue")
    # Sent to sign in again (and brought back to the page afterwards, 508d1ac).
    assert page.status_code == 303
    assert page.headers["location"] == "/admin/login?next=%2Fadmin%2Fissue"


def test_csrf_token_is_renewed_at_sign_in_and_bound_to_the_session(
    site: tuple[Config, Engine],
) -> None:
    """The token of the sign-in page stops working once signed in; a token from another
    session of the same editor is refused too."""
    client = make_client(*site)
    before = csrf_from(client.get("/admin/login").text)
    admin = sign_in(client)
    assert admin.csrf != before
    draft = {"subject": "Objet", "intro": ""}
    stale = client.post("/admin/issue/draft", data={"csrf_token": before, **draft})
    assert stale.status_code == 403
    other = sign_in(make_client(*site))
    foreign = client.post("/admin/issue/draft", data={"csrf_token": other.csrf, **draft})
    assert foreign.status_code == 403
    assert admin.post("/admin/issue/draft", draft).status_code == 303  # type: ignore[attr-defined]


async def _subscribe_from(config: Config, engine: Engine, forwarded: str) -> str:
    app = create_app(config, engine)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=config.base_url) as client:
        page = await client.get("/")
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        await client.post(
            "/subscribe",
            data={"csrf_token": csrf, "email": "ana@example.org", "name": ""},
            headers={"x-forwarded-for": forwarded},
        )
    with transaction(engine) as session:
        return str(
            session.scalars(select(ConsentEvent.ip).order_by(ConsentEvent.id.desc())).first()
        )


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> None:
    """By default the consent log records the peer, whatever X-Forwarded-For says, and uvicorn
    runs with proxy headers off; with the peer in `[web] trusted_proxies` the nearest
    untrusted forwarded address is recorded."""
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine, _ = open_site(config)
    assert await _subscribe_from(config, engine, "203.0.113.9") == "127.0.0.1"
    assert proxy_options(config) == {"proxy_headers": False, "forwarded_allow_ips": None}
    trusting = make_config(
        sqlite_url, smtp_port=smtp_server.port, web__trusted_proxies="127.0.0.1, 10.0.0.0/8"
    )
    with transaction(engine) as session:
        for subscriber in session.scalars(select(Subscriber)):
            subscriber.confirmation_sent_at = None  # let the second request record consent
    ip = await _subscribe_from(trusting, engine, "198.51.100.1, 203.0.113.9, 10.1.2.3")
    assert ip == "203.0.113.9"
    assert proxy_options(trusting)["proxy_headers"] is True


def test_confirmation_link_does_nothing_after_an_unsubscribe(
    site: tuple[Config, Engine],
) -> None:
    """Someone who confirmed, then unsubscribed, stays unsubscribed when the old confirmation
    link is used again within its validity; a renewal sends them nothing either."""
    config, engine = site
    with transaction(engine) as session:
        mail = optin.request_subscription(
            session, config, email="ana@example.org", name="Ana", context=CONTEXT, now=NOW
        )
        assert mail is not None
        token = mail.confirm_url.rsplit("/", 1)[1]
        optin.confirm_subscription(session, config, token, context=CONTEXT, now=NOW)
        subscriber = session.scalars(select(Subscriber)).one()
        leave = optin.unsubscribe_url(config, subscriber.id).rsplit("/", 1)[1]
        later = NOW + timedelta(hours=1)
        optin.unsubscribe(session, config, leave, context=CONTEXT, now=later)
    with transaction(engine) as session, pytest.raises(TokenError):
        optin.confirm_subscription(
            session, config, token, context=CONTEXT, now=later + timedelta(hours=1)
        )
    with transaction(engine) as session:
        assert session.scalars(select(Subscriber)).one().status == SubscriberStatus.UNSUBSCRIBED
        renewed = optin.renew_confirmation(session, config, token, now=later + timedelta(days=9))
        assert renewed is None


def test_cli_delivery_report_csv_neutralises_formulas(site: tuple[Config, Engine]) -> None:
    """`deliveries N --format csv` prefixes a cell that a spreadsheet would run as a formula."""
    config, engine = site
    formulas = ["=sum.a1@example.org", "+cmd@example.org", "-2+3@example.org"]
    add_readers(engine, [*formulas, "ana@example.org"])
    with transaction(engine) as session:
        queue_link(session, url="https://example.org/a", title="Un", source="", now=NOW)
        sends.publish_now(session, config, NOW)
    result = CliRunner().invoke(
        main, ["--config", str(config.path), "deliveries", "1", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    emails = [row["email"] for row in csv.DictReader(io.StringIO(result.output))]
    assert sorted(emails) == sorted(["'" + email for email in formulas] + ["ana@example.org"])
