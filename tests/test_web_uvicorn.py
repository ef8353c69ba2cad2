"""The public pages served by a real uvicorn server on loopback, over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from newsletter.config import Config
from tests.harness import SMTPServer
from tests.subscriber_helpers import CSRF, link_in, list_unsubscribe_path, plain_text, status_of

BASE = "https://liens.example.org"


def test_journey_over_http(served: tuple[Config, str], smtp_server: SMTPServer) -> None:
    """Subscribe, confirm and one-click unsubscribe against uvicorn over TCP on 127.0.0.1."""
    config, url = served
    with httpx.Client(base_url=url, timeout=10) as browser:
        home = browser.get("/")
        assert home.status_code == 200 and "nl_csrf" in browser.cookies
        token = CSRF.search(home.text)
        assert token
        sent = browser.post(
            "/subscribe", data={"csrf_token": token.group(1), "email": "http@example.org"}
        )
        assert sent.status_code == 200
        confirm = link_in(plain_text(smtp_server.wait_for(1)[0]), BASE, "/confirm/")
        page = browser.get(confirm)
        found = CSRF.search(page.text)
        assert found
        assert browser.post(confirm, data={"csrf_token": found.group(1)}).status_code == 200
    assert status_of(config, "http@example.org") == "active"
    welcome = smtp_server.wait_for(2)[1]
    one_click = list_unsubscribe_path(welcome, BASE)
    response = httpx.post(
        url + one_click,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert status_of(config, "http@example.org") == "unsubscribed"
    too_big = httpx.post(url + "/subscribe", content=b"x" * 100_000)
    assert too_big.status_code == 413


@pytest.mark.slow
def test_unsubscribe_bench_runs_at_small_size() -> None:
    """bench/web_unsubscribe.py runs against `newsletter serve` and every POST unsubscribes."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [
            sys.executable,
            str(root / "bench" / "web_unsubscribe.py"),
            "--subscribers",
            "40",
            "--concurrency",
            "4",
            "--max-seconds",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "requests/s" in result.stdout and "p99" in result.stdout
    assert "40 of 40 subscribers unsubscribed (40 answered 200)" in result.stdout
