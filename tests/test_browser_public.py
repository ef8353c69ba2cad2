"""The subscribe, confirm and unsubscribe pages driven in headless Chromium (no JavaScript of
ours runs; the pages are plain forms)."""

from __future__ import annotations

from typing import Any

import pytest

from newsletter.config import Config
from tests.harness import SMTPServer
from tests.subscriber_helpers import link_in, plain_text, status_of

pytestmark = pytest.mark.browser

BASE = "https://liens.example.org"


def test_subscribe_confirm_unsubscribe_in_chromium(
    browser: Any, served: tuple[Config, str], smtp_server: SMTPServer
) -> None:
    """A person fills the French form in Chromium, confirms from the email and unsubscribes
    with the page's button; the stylesheet loads under the CSP."""
    config, url = served
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
    assert status_of(config, "chromium@example.org") == "unsubscribed"
