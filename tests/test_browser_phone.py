"""Every admin page on a phone (390 px) in headless Chromium, and every admin and public page
read in French: no page is wider than the screen, the menu folds behind one button, and no
page shows a string of the English catalogue or a CLI flag."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select, update

from newsletter import content
from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import Delivery, Issue, IssueStatus, RunStatus, SendRun
from newsletter.sending.catcher import catcher_dir, store_message
from newsletter.sending.publish import publish_next_issue
from newsletter.services.schedule import pause_schedule
from newsletter.web.app import create_app
from subscribers.models import Subscriber
from subscribers.tokens import make_confirm_token, make_unsubscribe_token
from tests.admin_support import EMAIL, PASSWORD, add_readers, open_site
from tests.conftest import ConfigFactory
from tests.harness import free_port
from tests.web_support import ServerThread
from tools import messages

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
ADMIN_PAGES = [
    "/admin/issue",
    "/admin/issue/send",
    "/admin/sends",
    "/admin/sends/1",
    "/admin/schedule",
    "/admin/subscribers",
    "/admin/inbound",
    "/admin/clicks",
    "/admin/feeds",
    "/admin/intake/share?url=https://example.org/un-partage&title=Un%20partage",
]
# Words that are the same in both languages, or names, are not evidence of English.
CLI_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


@dataclass
class Site:
    config: Config
    base: str
    outbox_message: str
    confirm_token: str
    unsubscribe_token: str


def english_phrases() -> list[str]:
    """The English msgids whose French differs, cut at their placeholders: each piece of two
    words or more is a phrase that must never show on a French page."""
    phrases: set[str] = set()
    for message in messages.read_catalogue(messages.catalogue_file("fr"), "fr"):
        english = [message.id] if isinstance(message.id, str) else list(message.id)
        french = [message.string] if isinstance(message.string, str) else list(message.string)
        for piece in (
            p for msgid in english if msgid not in french for p in PLACEHOLDER.split(msgid)
        ):
            piece = piece.strip(" .:;,!?()…·—-")
            if len(piece.split()) >= 2:
                phrases.add(piece)
    return sorted(phrases)


def seed_site(config: Config) -> tuple[str, str, str]:
    """A site with readers, a sent issue, a running one, a pause, queued links and a caught
    message; returns the caught message's name and a reader's confirm and unsubscribe tokens."""
    engine, _ = open_site(config)
    add_readers(engine, [f"lecteur{n}@exemple.fr" for n in range(3)])
    now = utc_now()
    with transaction(engine) as session:
        for n in range(2):
            content.queue_link(
                session,
                url=f"https://example.org/un-article-au-titre-assez-long-pour-un-telephone/{n}",
                title=f"Le vote électronique en question, épisode {n}",
                source="Le Monde",
                excerpt="Un extrait écrit pour le test, assez long pour passer à la ligne.",
                tags=["démocratie", "numérique"],
                now=now,
            )
        publish_next_issue(session, config, now)
        session.execute(update(Delivery).values(status="sent", sent_at=now))
        session.execute(update(SendRun).values(status=RunStatus.DONE, finished_at=now))
        session.execute(update(Issue).values(status=IssueStatus.SENT, sent_at=now))
        content.queue_link(
            session,
            url="https://example.org/a",
            title="Des données ouvertes",
            source="",
            excerpt="",
            tags=[],
            now=now,
        )
        today = now.astimezone(config.timezone).date()
        pause_schedule(
            session,
            config,
            until=today + timedelta(days=22),
            reason="Pause estivale",
            notify=False,
            now=now,
        )
        reader = session.scalars(select(Subscriber)).first()
        assert reader is not None
        confirm = make_confirm_token(config.secret_key, reader.id, now)
        unsubscribe = make_unsubscribe_token(config.secret_key, reader.id)
        html = session.scalars(select(Issue.html)).one()
    engine.dispose()
    message = EmailMessage()
    message["From"], message["To"] = "liens@example.org", "lecteur0@exemple.fr"
    message["Subject"] = "Les liens CivicTech n° 1"
    message.set_content("Bonjour.\n")
    message.add_alternative(html, subtype="html")
    stored = store_message(catcher_dir(config), message.as_bytes(), now)
    return stored.name, confirm, unsubscribe


@pytest.fixture
def site(make_config: ConfigFactory, sqlite_url: str) -> Iterator[Site]:
    port = free_port()
    config = make_config(
        sqlite_url,
        smtp__host="",
        smtp__catcher_port=free_port(),
        schedule__enabled=False,
        web__base_url=f"http://127.0.0.1:{port}",
    )
    name, confirm, unsubscribe = seed_site(config)
    from newsletter.db import make_engine

    engine = make_engine(config.database_url)
    with ServerThread(create_app(config, engine), port):
        yield Site(config, f"http://127.0.0.1:{port}", name, confirm, unsubscribe)
    engine.dispose()


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/admin/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/admin/login'] button")
    page.wait_for_url(f"{base}/admin/issue")


def overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when it fits)."""
    width: int = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return width


def all_pages(site: Site) -> list[str]:
    return [
        *ADMIN_PAGES,
        "/outbox",
        f"/outbox/{site.outbox_message}",
    ]


def test_every_admin_page_fits_a_phone(browser: Any, site: Site) -> None:
    """At 390 px no admin page (nor the outbox) is wider than the screen, and the menu is
    folded behind a button that opens it, without JavaScript."""
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site.base}/admin/login")
    assert overflow(page) <= 0, "/admin/login"
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", "wrong password")
    page.click("form[action='/admin/login'] button")
    assert page.input_value("input[name=email]") == EMAIL  # kept after a wrong password
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/admin/login'] button")
    page.wait_for_url(f"{site.base}/admin/issue")
    widths = {}
    for path in all_pages(site):
        page.goto(site.base + path)
        widths[path] = overflow(page)
    assert widths == dict.fromkeys(all_pages(site), 0)
    page.goto(f"{site.base}/admin/sends")
    assert not page.locator("header nav").is_visible()
    page.click("label.menu-button")
    assert page.locator("header nav a[href='/admin/schedule']").is_visible()
    context.close()


def test_outbox_opens_on_the_message_html_with_clickable_links(browser: Any, site: Site) -> None:
    """A caught message opens on its HTML, whose links work, and lists its links."""
    page = browser.new_page(viewport=PHONE)
    page.goto(f"{site.base}/outbox")
    page.click("#caught a")
    frame = page.frame_locator("#message-html")
    assert "Le vote électronique en question" in frame.locator("body").inner_text()
    archive = page.locator("#message-links a", has_text="navigateur")
    assert archive.get_attribute("href") == f"{site.base}/archive/1"
    with page.expect_navigation():
        frame.locator("a", has_text="navigateur").first.click()
    assert page.url == f"{site.base}/archive/1"
    page.close()


def test_every_page_speaks_french(browser: Any, site: Site) -> None:
    """No admin or public page shows an English catalogue string or a CLI flag."""
    phrases = english_phrases()
    assert "Send now" in phrases and "View in your browser" in phrases
    page = browser.new_page(viewport=PHONE)
    sign_in(page, site.base)
    public = [
        "/",
        "/archive",
        "/archive/1",
        f"/confirm/{site.confirm_token}",
        f"/u/{site.unsubscribe_token}",
        "/nowhere",
    ]
    found: dict[str, list[str]] = {}
    for path in [*all_pages(site), *public]:
        page.goto(site.base + path)
        texts = [page.locator("body").inner_text(), page.title()]
        texts += page.eval_on_selector_all(
            "[title], [placeholder], [aria-label], [data-label]",
            "els => els.flatMap(e => ['title', 'placeholder', 'aria-label', 'data-label']"
            ".map(a => e.getAttribute(a) || ''))",
        )
        text = "\n".join(texts)
        bad = [p for p in phrases if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text)]
        bad += CLI_FLAG.findall(text)
        bad += re.findall(r"\w[:;!?](?=\s)|\w [:;!?](?=\s|$)", text)
        if bad:
            found[path] = bad
    assert found == {}
    page.close()
