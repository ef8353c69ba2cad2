"""The subscribe, confirm and unsubscribe pages driven in headless Chromium (no JavaScript of
ours runs; the pages are plain forms)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import Config
from newsletter.db import make_engine, upgrade_database
from newsletter.web.app import create_app
from tests.conftest import IN_CI, ConfigFactory
from tests.harness import SMTPServer, free_port
from tests.subscriber_helpers import ServerThread, link_in, plain_text, status_of

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BASE = "https://liens.example.org"


def chromium_or_skip() -> str:
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found:
        return found
    if IN_CI:
        pytest.fail("Chromium is required in CI but /usr/bin/chromium is missing")
    pytest.skip("browser tests skipped: no Chromium at /usr/bin/chromium (apt install chromium)")


@pytest.fixture
def served(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> Iterator[tuple[Config, str]]:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    port = free_port()
    with ServerThread(create_app(config, engine), port):
        yield config, f"http://127.0.0.1:{port}"
    engine.dispose()


def test_subscribe_confirm_unsubscribe_in_chromium(
    served: tuple[Config, str], smtp_server: SMTPServer
) -> None:
    """A person fills the French form in Chromium, confirms from the email and unsubscribes
    with the page's button; the stylesheet loads under the CSP."""
    executable = chromium_or_skip()
    sync_api = pytest.importorskip("playwright.sync_api")
    config, url = served
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 375, "height": 740})  # a phone
            page.goto(url + "/")
            page.fill("#email", "chromium@example.org")
            page.fill("#name", "Chloé")
            page.click("button[type=submit]")
            assert "Vérifiez votre boîte de réception" in page.content()

            confirm = link_in(plain_text(smtp_server.wait_for(1)[0]), BASE, "/confirm/")
            page.goto(url + confirm)
            color = page.eval_on_selector("button", "b => getComputedStyle(b).backgroundColor")
            assert color == "rgb(11, 92, 173)"  # public.css applied
            page.click("text=Confirmer mon inscription")
            assert "Inscription confirmée" in page.content()
            assert status_of(config, "chromium@example.org") == "active"

            welcome = plain_text(smtp_server.wait_for(2)[1])
            page.goto(url + link_in(welcome, BASE, "/u/"))
            assert status_of(config, "chromium@example.org") == "active"  # GET did nothing
            page.click("text=Me désabonner")
            assert "Vous êtes désabonné·e" in page.content()
        finally:
            browser.close()
    assert status_of(config, "chromium@example.org") == "unsubscribed"
