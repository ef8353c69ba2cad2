"""Take the README's screenshots with headless Chromium: the dashboard and the Sunday email,
each at 375 px (a phone) and 700 px wide, into docs/.

    .venv/bin/python tools/screenshots.py            # writes docs/dashboard-375.png, ...

Everything runs on loopback from a temporary folder: a fresh site with the example links,
served by uvicorn in a thread; the email is the sample issue of tools/sample_issue.py.
Needs Chromium (/usr/bin/chromium) and playwright, like the browser tests.
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from newsletter.db import make_engine, transaction, upgrade_database  # noqa: E402
from newsletter.editors import add_editor  # noqa: E402
from newsletter.examples import queue_example_content  # noqa: E402
from newsletter.web.app import create_app  # noqa: E402
from tools.sample_issue import build_sample, sample_config  # noqa: E402

DOCS = ROOT / "docs"
WIDTHS = (375, 700)
EDITOR, PASSWORD = "editrice@example.org", "une phrase de passe assez longue"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(app: Any, port: int) -> uvicorn.Server:
    """uvicorn on loopback in a daemon thread; returns once it accepts connections."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server


def take(folder: Path) -> list[Path]:
    """Build the site in ``folder``, then screenshot the dashboard and the email."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    config = sample_config(
        folder,
        {
            "smtp": {"host": ""},
            "web": {"base_url": f"http://127.0.0.1:{port}"},
            "database": {"url": "sqlite:///site.db"},
        },
    )
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    with transaction(engine) as session:
        add_editor(session, email=EDITOR, password=PASSWORD, now=datetime.now(UTC))
    queue_example_content(engine)
    (folder / "email").mkdir()
    email_html = build_sample(sample_config(folder / "email"), 6).html
    server = serve(create_app(config, engine), port)
    written: list[Path] = []
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/admin/login")
                page.fill("input[name=email]", EDITOR)
                page.fill("input[name=password]", PASSWORD)
                page.click("form[action='/admin/login'] button")
                page.wait_for_url("**/admin/issue")
                written.append(DOCS / f"dashboard-{width}.png")
                page.screenshot(path=str(written[-1]))
                page.close()
                # The email in a blank page of its own (not under the dashboard's CSP), offline.
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.route("**/*", lambda route: route.abort())
                page.set_content(email_html)
                written.append(DOCS / f"email-{width}.png")
                page.screenshot(path=str(written[-1]), full_page=True)
                page.close()
            browser.close()
    finally:
        server.should_exit = True
        engine.dispose()
    return written


def main() -> int:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for path in take(Path(folder)):
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
