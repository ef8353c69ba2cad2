"""The dashboard in a real browser (headless Chromium) against a real uvicorn server on
loopback with the delivery worker running: sign in, queue two links, preview, send a test that
arrives at the SMTP server, pause the schedule until a date and see the slots change, send the
issue and watch the send finish."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.sending.service import delivery_service
from newsletter.web.app import create_app
from tests.admin_support import EMAIL, PASSWORD, add_readers, open_site
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer, free_port
from tests.web_support import wait_until_started

pytestmark = pytest.mark.browser

READERS = ["ana@example.org", "bea@example.org"]


class LiveServer:
    """uvicorn and the delivery worker in one asyncio loop, in a background thread."""

    def __init__(self, config: Config, engine: Engine, port: int) -> None:
        self.config, self.engine, self.port = config, engine, port
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        async with delivery_service(self.config, self.engine):
            app = create_app(self.config, self.engine)
            self.server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
            )
            await self.server.serve()

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until_started(
            lambda: self.server is not None and self.server.started, self.thread, timeout=20
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def live(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> Iterator[LiveServer]:
    port = free_port()
    config = make_config(
        sqlite_url, smtp_port=smtp_server.port, web__base_url=f"http://127.0.0.1:{port}"
    )
    engine, _ = open_site(config)
    add_readers(engine, READERS)
    with LiveServer(config, engine, port) as server:
        yield server
    engine.dispose()


def test_editor_journey_in_a_browser(
    browser: Any, live: LiveServer, smtp_server: SMTPServer
) -> None:
    """Sign in, queue two links, preview (live as the intro is typed), test, pause the
    schedule, send and watch it finish."""
    from playwright.sync_api import expect

    base = f"http://127.0.0.1:{live.port}"
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base}/admin/")
    assert page.url.endswith("/admin/login")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/admin/login'] button")
    page.wait_for_url(f"{base}/admin/issue")

    for n, title in enumerate(["Le vote électronique en question", "Des données ouvertes"]):
        form = page.locator("#add-link")
        form.locator("input[name=url]").fill(f"https://example.org/{n}")
        form.locator("input[name=title]").fill(title)
        form.locator("input[name=source]").fill("Le Monde")
        form.locator("textarea[name=excerpt]").fill("Un extrait écrit pour le test.")
        form.locator("button:not([formaction])").click()
        page.wait_for_url(f"{base}/admin/issue?done=added")
    preview = page.frame_locator("iframe.preview")
    assert "Des données ouvertes" in preview.locator("body").inner_text()
    page.fill("#draft-form textarea[name=intro]", "Bonne lecture, et bel automne !")
    expect(preview.locator("body")).to_contain_text("bel automne", timeout=10_000)

    page.click("form[action='/admin/issue/test'] button")
    page.wait_for_url(f"{base}/admin/issue?done=tested")
    (test_mail,) = smtp_server.wait_for(1)
    assert test_mail.rcpt_tos == [EMAIL]

    until = (utc_now().astimezone(live.config.timezone).date() + timedelta(days=22)).isoformat()
    page.goto(f"{base}/admin/schedule")
    assert page.locator("tr.slot-paused").count() == 0
    page.fill("#pause-form input[name=until]", until)
    page.fill("#pause-form input[name=reason]", "Pause estivale")
    page.click("#pause-form button")
    page.wait_for_url(f"{base}/admin/schedule?done=paused")
    assert page.locator("tr.slot-paused").count() >= 3
    assert "Pause estivale" in page.locator("#pause-state").inner_text()

    page.goto(f"{base}/admin/issue/send")
    assert page.locator("#recipient-count").inner_text() == "2"
    page.click("form[action='/admin/issue/send'] button")
    page.wait_for_url(f"{base}/admin/sends/*")
    page.wait_for_selector("#run-status[data-status=done]", timeout=30_000)
    assert page.locator("#count-sent").inner_text() == "2"
    recipients = sorted(r for m in smtp_server.received()[1:] for r in m.rcpt_tos)
    assert recipients == READERS
    page.close()
