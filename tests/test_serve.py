"""`newsletter serve`: a real process serving /healthz and /outbox, with the embedded catcher
storing what it receives; the outbox shows messages as HTML (sandboxed) and text."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from newsletter.config import Config
from newsletter.db import make_engine, upgrade_database
from newsletter.sending.catcher import MailCatcher, list_caught
from newsletter.web.app import create_app
from tests.conftest import ConfigFactory
from tests.harness import free_port

NEWSLETTER = str(Path(sys.executable).with_name("newsletter"))


def caught_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Les liens <liens@example.org>"
    message["To"] = "camille@example.net"
    message["Subject"] = "Les liens de la semaine #3 « test »"
    message.set_content("Bonjour, voici le texte.\n")
    message.add_alternative("<p>Bonjour <b>HTML</b><script>alert(1)</script></p>", subtype="html")
    return message


@pytest.fixture
def catcher_config(make_config: ConfigFactory, sqlite_url: str) -> Config:
    config = make_config(
        sqlite_url,
        smtp__host="",
        smtp__catcher_port=free_port(),
        web__port=free_port(),
        schedule__enabled=False,
    )
    engine = make_engine(config.database_url)
    upgrade_database(engine)
    engine.dispose()
    return config


@pytest.fixture
def server(catcher_config: Config) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    process = subprocess.Popen(
        [NEWSLETTER, "--config", str(catcher_config.path), "serve", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{catcher_config.get('web', 'port')}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
            pytest.fail(f"serve did not start:\n{output}")
        time.sleep(0.1)  # polling a starting process, not waiting for time to pass
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def test_serve_process_healthz_outbox_and_catcher(
    server: subprocess.Popen[bytes], catcher_config: Config
) -> None:
    """A message sent with smtplib to the catcher is stored, listed at /outbox and viewable
    as HTML (CSP sandbox) and text, and logged in one line; with no editor yet, serve prints
    the command that creates one; SIGTERM stops the process cleanly."""
    base = f"http://127.0.0.1:{catcher_config.get('web', 'port')}"
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    assert "Aucun message intercepté" in httpx.get(f"{base}/outbox").text
    port = int(catcher_config.get("smtp", "catcher_port"))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(caught_message())
    listing = httpx.get(f"{base}/outbox").text
    assert "Les liens de la semaine #3 « test »" in listing
    folder = catcher_config.resolve_path("outbox")
    [stored] = list_caught(folder)
    assert stored.to == "camille@example.net"
    html = httpx.get(f"{base}/outbox/{stored.name}/html")
    assert html.status_code == 200
    assert "<b>HTML</b>" in html.text
    assert html.headers["content-security-policy"].startswith("sandbox ")
    assert "allow-scripts" not in html.headers["content-security-policy"]
    assert "script-src" not in html.headers["content-security-policy"]
    text = httpx.get(f"{base}/outbox/{stored.name}/text")
    assert text.text.strip() == "Bonjour, voici le texte."
    page = httpx.get(f"{base}/outbox/{stored.name}").text
    assert "camille@example.net" in page and "<script>" not in page
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=20) == 0
    assert server.stdout is not None
    output = server.stdout.read().decode(errors="replace")
    assert "editors add you@example.org --password-stdin" in output  # the next step
    caught = [line for line in output.splitlines() if "mail.log" in line or "caught a" in line]
    assert len(caught) == 1 and f"/outbox/{stored.name}" in caught[0]  # one line per message


async def test_outbox_refuses_remote_clients_bad_names_and_relay_mode(
    catcher_config: Config, make_config: ConfigFactory, sqlite_url: str
) -> None:
    """/outbox is 404 to a non-loopback client, for a name the catcher did not write, and when
    a real relay is configured."""
    folder = catcher_config.resolve_path("outbox")
    catcher = MailCatcher(folder, port=0)
    await catcher.start()
    try:
        await _send_with_aiosmtplib(catcher.port)
    finally:
        await catcher.stop()
    [stored] = list_caught(folder)
    engine = make_engine(catcher_config.database_url)
    app = create_app(catcher_config, engine)
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=local, base_url="http://t") as client:
        assert (await client.get(f"/outbox/{stored.name}")).status_code == 200
        assert (await client.get("/outbox/..%2Fnewsletter.toml/raw")).status_code == 404
        assert (await client.get("/outbox/newsletter.toml/raw")).status_code == 404
    async with httpx.AsyncClient(transport=remote, base_url="http://t") as client:
        assert (await client.get("/outbox")).status_code == 404
    relay = create_app(make_config(sqlite_url, smtp__host="127.0.0.1"), engine)
    transport = httpx.ASGITransport(app=relay, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/outbox")).status_code == 404
    engine.dispose()


async def _send_with_aiosmtplib(port: int) -> None:
    import aiosmtplib

    await aiosmtplib.send(caught_message(), hostname="127.0.0.1", port=port)
