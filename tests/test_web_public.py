"""The public pages through the ASGI app, with a real SQLite file and a real SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from sqlalchemy import Engine, func, select

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import make_engine, transaction, upgrade_database
from newsletter.web.security import RequestLimiter
from subscribers.models import ConsentEvent, Subscriber
from subscribers.tokens import make_confirm_token, make_unsubscribe_token
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer
from tests.subscriber_helpers import (
    client_for,
    csrf_from,
    html_text,
    link_in,
    list_unsubscribe_path,
    plain_text,
    send_issue,
)

BASE = "https://liens.example.org"


def subscriber(engine: Engine, email: str) -> Subscriber | None:
    with transaction(engine) as session:
        return session.scalars(
            select(Subscriber).where(Subscriber.email_key == email.lower())
        ).one_or_none()


def consent_kinds(engine: Engine) -> list[tuple[str, str]]:
    with transaction(engine) as session:
        rows = session.execute(select(ConsentEvent.kind, ConsentEvent.source).order_by("id"))
        return [(str(kind), str(source)) for kind, source in rows]


async def test_subscribe_confirm_welcome_and_one_click_unsubscribe(
    public_site: tuple[Config, Engine], smtp_server: SMTPServer
) -> None:
    """A visitor subscribes, confirms from the emailed link, gets a welcome email holding the
    latest issue with their own links, and leaves with the mail client's one-click POST."""
    config, engine = public_site
    number = send_issue(engine, config)
    async with client_for(config, engine) as browser:
        token = await csrf_from(browser)
        response = await browser.post(
            "/subscribe", data={"csrf_token": token, "email": "Ada@Example.ORG", "name": "Ada"}
        )
        assert response.status_code == 200
        [confirmation] = smtp_server.wait_for(1)
        assert confirmation.rcpt_tos == ["Ada@example.org"]
        assert "List-Unsubscribe" not in confirmation.parsed()
        confirm_path = link_in(plain_text(confirmation), BASE, "/confirm/")
        assert confirm_path in html_text(confirmation)

        page = await browser.get(confirm_path)  # a scanner's GET changes nothing
        assert page.status_code == 200 and 'method="post"' in page.text
        pending = subscriber(engine, "ada@example.org")
        assert pending is not None and pending.status == "pending"

        token = await csrf_from(browser, confirm_path)
        confirmed = await browser.post(confirm_path, data={"csrf_token": token})
        assert confirmed.status_code == 200
        active = subscriber(engine, "ada@example.org")
        assert active is not None and active.status == "active"

    welcome = smtp_server.wait_for(2)[1]
    text = plain_text(welcome)
    own_link = list_unsubscribe_path(welcome, BASE)
    assert welcome.parsed()["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "démocratie en ville" in text and f"/archive/{number}" in text
    assert "@@" not in text and "@@" not in html_text(welcome)
    assert own_link in text and own_link in html_text(welcome)

    async with client_for(config, engine) as mail_client:  # no cookie, no CSRF token
        response = await mail_client.post(
            own_link,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200 and "location" not in response.headers
    gone = subscriber(engine, "ada@example.org")
    assert gone is not None and gone.status == "unsubscribed"
    assert [kind for kind, _ in consent_kinds(engine)] == ["requested", "confirmed", "unsubscribed"]
    assert consent_kinds(engine)[-1] == ("unsubscribed", "one-click")


MULTIPART = (
    b"--AaB03x\r\n"
    b'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
    b"One-Click\r\n"
    b"--AaB03x--\r\n"
)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click"),
        ("multipart/form-data; boundary=AaB03x", MULTIPART),
    ],
    ids=["gmail-urlencoded", "yahoo-multipart"],
)
async def test_rfc8058_one_click_post_unsubscribes_at_once(
    public_site: tuple[Config, Engine], content_type: str, body: bytes
) -> None:
    """An RFC 8058 POST, urlencoded or multipart, unsubscribes with 200 and no redirect."""
    config, engine = public_site
    sub_id = add_active(engine, "reader@example.org")
    path = f"/u/{make_unsubscribe_token(config.secret_key, sub_id)}"
    async with client_for(config, engine) as client:
        response = await client.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code == 200
    assert "location" not in response.headers
    found = subscriber(engine, "reader@example.org")
    assert found is not None and found.status == "unsubscribed"


def add_active(engine: Engine, email: str) -> int:
    now = utc_now()
    with transaction(engine) as session:
        row = Subscriber(
            email=email,
            email_key=email.lower(),
            name="",
            status="active",
            source="test",
            language="fr",
            created_at=now,
            confirmed_at=now,
            soft_bounces=0,
        )
        session.add(row)
        session.flush()
        return row.id


async def test_bad_tokens_get_400_and_change_nothing(public_site: tuple[Config, Engine]) -> None:
    """Forged, truncated and other-purpose tokens get a 400 page; nobody is unsubscribed."""
    config, engine = public_site
    sub_id = add_active(engine, "keep@example.org")
    good = make_unsubscribe_token(config.secret_key, sub_id)
    confirm_token = make_confirm_token(config.secret_key, sub_id, utc_now())
    forged = make_unsubscribe_token("another-secret-entirely-0123456789", sub_id)
    async with client_for(config, engine) as client:
        for token in (good[:-3], forged, confirm_token, "nonsense"):
            for method in ("GET", "POST"):
                response = await client.request(
                    method, f"/u/{token}", content=b"List-Unsubscribe=One-Click"
                )
                assert response.status_code == 400, (token, method)
        page = await client.get(f"/confirm/{good}")
        assert page.status_code == 400
    found = subscriber(engine, "keep@example.org")
    assert found is not None and found.status == "active"
    assert consent_kinds(engine) == []


async def test_get_on_unsubscribe_link_only_shows_a_button(
    public_site: tuple[Config, Engine],
) -> None:
    """GET /u/TOKEN shows a one-button form and a way back, and unsubscribes nobody."""
    config, engine = public_site
    sub_id = add_active(engine, "scanned@example.org")
    async with client_for(config, engine) as client:
        page = await client.get(f"/u/{make_unsubscribe_token(config.secret_key, sub_id)}")
    assert page.status_code == 200
    assert 'method="post"' in page.text and 'href="/"' in page.text
    found = subscriber(engine, "scanned@example.org")
    assert found is not None and found.status == "active"


async def test_subscribe_answer_is_the_same_for_every_state_and_throttled(
    public_site: tuple[Config, Engine], smtp_server: SMTPServer
) -> None:
    """New, pending, active and unsubscribed addresses get the same page; a pending address
    gets at most one confirmation per interval."""
    config, engine = public_site
    add_active(engine, "active@example.org")
    gone_id = add_active(engine, "gone@example.org")
    async with client_for(config, engine) as client:
        await client.post(f"/u/{make_unsubscribe_token(config.secret_key, gone_id)}")
        token = await csrf_from(client)
        bodies = []
        for email in (
            "new@example.org",
            "NEW@example.org",
            "active@example.org",
            "gone@example.org",
        ):
            response = await client.post("/subscribe", data={"csrf_token": token, "email": email})
            assert response.status_code == 200
            bodies.append(response.text)
    assert len(set(bodies)) == 1
    messages = smtp_server.wait_for(2)
    assert sorted(r for m in messages for r in m.rcpt_tos) == [
        "gone@example.org",
        "new@example.org",
    ]


async def test_expired_confirmation_offers_a_new_link(
    public_site: tuple[Config, Engine], smtp_server: SMTPServer
) -> None:
    """An expired link shows a button that sends a fresh confirmation, which then works."""
    config, engine = public_site
    async with client_for(config, engine) as client:
        token = await csrf_from(client)
        await client.post("/subscribe", data={"csrf_token": token, "email": "late@example.org"})
        smtp_server.wait_for(1)
        found = subscriber(engine, "late@example.org")
        assert found is not None
        with transaction(engine) as session:  # the first email went out long ago
            row = session.get(Subscriber, found.id)
            assert row is not None
            row.confirmation_sent_at = utc_now() - timedelta(days=8)
        old = make_confirm_token(config.secret_key, found.id, utc_now() - timedelta(days=8))
        page = await client.get(f"/confirm/{old}")
        assert page.status_code == 410 and f"/confirm/{old}/renew" in page.text
        refused = await client.post(f"/confirm/{old}", data={"csrf_token": token})
        assert refused.status_code == 410
        renewed = await client.post(f"/confirm/{old}/renew", data={"csrf_token": token})
        assert renewed.status_code == 200
        fresh = link_in(plain_text(smtp_server.wait_for(2)[1]), BASE, "/confirm/")
        assert fresh != f"/confirm/{old}"
        await client.post(fresh, data={"csrf_token": token})
    confirmed = subscriber(engine, "late@example.org")
    assert confirmed is not None and confirmed.status == "active"


async def test_bad_input_honeypot_csrf_size_and_rate_limit(
    public_site: tuple[Config, Engine], smtp_server: SMTPServer
) -> None:
    """Invalid address -> 400 form with a message; honeypot -> same page, nothing stored;
    no CSRF -> 403; oversized body -> 413; too many sign-ups from one IP -> 429."""
    config, engine = public_site
    async with client_for(config, engine, subscribe_limiter=RequestLimiter(4, 600)) as client:
        token = await csrf_from(client)
        bad = await client.post("/subscribe", data={"csrf_token": token, "email": "not-an-address"})
        assert bad.status_code == 400
        assert 'value="not-an-address"' in bad.text and 'class="error"' in bad.text
        empty = await client.post("/subscribe", data={"csrf_token": token, "email": ""})
        assert empty.status_code == 400
        bot = await client.post(
            "/subscribe",
            data={"csrf_token": token, "email": "bot@example.org", "website": "http://spam"},
        )
        assert bot.status_code == 200
        no_csrf = await client.post("/subscribe", data={"email": "x@example.org"})
        assert no_csrf.status_code == 403
        huge = await client.post("/subscribe", data={"csrf_token": token, "email": "a" * 20000})
        assert huge.status_code == 413
        limited = await client.post(
            "/subscribe", data={"csrf_token": token, "email": "r@example.org"}
        )
        assert limited.status_code == 429
    with transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert smtp_server.received() == []


async def test_resubscribe_keeps_old_unsubscribe_link_valid(
    public_site: tuple[Config, Engine], smtp_server: SMTPServer
) -> None:
    """After leaving and confirming again, the unsubscribe link from an old email still works."""
    config, engine = public_site
    sub_id = add_active(engine, "back@example.org")
    old_link = f"/u/{make_unsubscribe_token(config.secret_key, sub_id)}"
    async with client_for(config, engine) as client:
        await client.post(old_link)
        token = await csrf_from(client)
        await client.post("/subscribe", data={"csrf_token": token, "email": "back@example.org"})
        confirm = link_in(plain_text(smtp_server.wait_for(1)[0]), BASE, "/confirm/")
        await client.post(confirm, data={"csrf_token": token})
        again = subscriber(engine, "back@example.org")
        assert again is not None and again.status == "active"
        await client.post(old_link, content=b"List-Unsubscribe=One-Click")
    final = subscriber(engine, "back@example.org")
    assert final is not None and final.status == "unsubscribed"
    kinds = [kind for kind, _ in consent_kinds(engine)]
    assert kinds == ["unsubscribed", "requested", "resubscribed", "unsubscribed"]


async def test_pages_headers_archive_and_feed(public_site: tuple[Config, Engine]) -> None:
    """Every page carries the security headers; sent issues show in the archive and feed."""
    config, engine = public_site
    number = send_issue(engine, config)
    async with client_for(config, engine) as client:
        home = await client.get("/")
        archive = await client.get("/archive")
        issue = await client.get(f"/archive/{number}")
        missing = await client.get(f"/archive/{number + 1}")
        feed = await client.get("/feed.xml")
        css = await client.get("/static/public.css")
    for response in (home, archive, issue, feed):
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in home.text and 'name="website"' in home.text
    assert f'href="/archive/{number}"' in home.text and f'href="/archive/{number}"' in archive.text
    assert "Le Monde" in issue.text and "Trois semaines de liens." in issue.text
    assert missing.status_code == 404
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert f"{BASE}/archive/{number}" in feed.text and "&#171;" not in feed.text
    assert css.status_code == 200
    entries = ElementTree.fromstring(feed.content).findall("{http://www.w3.org/2005/Atom}entry")
    assert [e.findtext("{http://www.w3.org/2005/Atom}title") for e in entries] == [
        f"Les liens de la semaine #{number}"
    ]


async def test_journey_through_a_real_digest(
    public_site: tuple[Config, Engine], smtp_server: SMTPServer
) -> None:
    """Subscribe and confirm on the site, receive the published digest from the sender, leave
    with the digest's one-click header, and get nothing from the next issue."""
    from newsletter.content import queue_link
    from newsletter.sending.publish import publish_next_issue
    from newsletter.sending.sender import run_sender

    config, engine = public_site
    async with client_for(config, engine) as browser:
        token = await csrf_from(browser)
        await browser.post("/subscribe", data={"csrf_token": token, "email": "dora@example.org"})
        confirm = link_in(plain_text(smtp_server.wait_for(1)[0]), BASE, "/confirm/")
        await browser.post(confirm, data={"csrf_token": token})
    smtp_server.wait_for(2)  # the welcome email

    def publish(title: str) -> None:
        with transaction(engine) as session:
            queue_link(
                session,
                url="https://example.org/" + title.replace(" ", "-"),
                title=title,
                source="We Demain",
                now=utc_now(),
            )
            publish_next_issue(session, config, utc_now())

    publish("LaPrimaire.org poursuit sa route")
    await run_sender(config, engine, stop_when_idle=True)
    digest = smtp_server.wait_for(3)[2]
    assert digest.rcpt_tos == ["dora@example.org"]
    assert "LaPrimaire.org poursuit sa route" in plain_text(digest)
    one_click = list_unsubscribe_path(digest, BASE)
    assert one_click in plain_text(digest)  # the visible footer link is the same
    async with client_for(config, engine) as mail_client:
        response = await mail_client.post(
            one_click,
            content=MULTIPART,
            headers={"content-type": "multipart/form-data; boundary=AaB03x"},
        )
    assert response.status_code == 200
    async with client_for(config, engine) as reader:
        archive = await reader.get("/archive")
    assert "/archive/1" in archive.text  # the sent issue is on the web
    publish("Politique : la révolution citoyenne qui vient")
    await run_sender(config, engine, stop_when_idle=True)
    assert len(smtp_server.received()) == 3


async def test_pages_speak_the_list_language(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> None:
    """French by default; `[list] language = "en"` gives English pages."""
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    french = make_config(sqlite_url, smtp_port=smtp_server.port)
    english = make_config(sqlite_url, smtp_port=smtp_server.port, list__language="en")
    async with client_for(french, engine) as client:
        assert "S’inscrire" in (await client.get("/")).text
    async with client_for(english, engine) as client:
        page = (await client.get("/")).text
        assert "Subscribe" in page and "S’inscrire" not in page
    engine.dispose()


async def test_streamed_oversized_body_gets_413(public_site: tuple[Config, Engine]) -> None:
    """A body streamed without Content-Length is cut off with 413 once over the limit."""
    config, engine = public_site

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"email=" + b"a" * 1000 + b"&"

    async with client_for(config, engine) as client:
        response = await client.post(
            "/subscribe",
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"


def test_rate_limiter_window_slides() -> None:
    """A key gets `limit` hits per window; hits older than the window stop counting."""
    limiter = RequestLimiter(limit=2, window=60)
    assert limiter.allow("203.0.113.7", now=0) and limiter.allow("203.0.113.7", now=10)
    assert not limiter.allow("203.0.113.7", now=59)
    assert limiter.allow("198.51.100.1", now=59)  # another address has its own budget
    assert limiter.allow("203.0.113.7", now=60.5)  # the hit at 0 left the window
    assert not limiter.allow("203.0.113.7", now=61)


async def test_relay_failure_does_not_change_the_answer(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """With the relay down, /subscribe still answers the same page; the person is pending and
    can ask again once the interval passed."""
    from tests.harness import free_port

    config = make_config(sqlite_url, smtp_port=free_port())  # nothing listens there
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    async with client_for(config, engine) as client:
        token = await csrf_from(client)
        response = await client.post(
            "/subscribe", data={"csrf_token": token, "email": "down@example.org"}
        )
    assert response.status_code == 200 and 'class="error"' not in response.text
    found = subscriber(engine, "down@example.org")
    assert found is not None and found.status == "pending"
    engine.dispose()
