"""The public pages served by a real uvicorn server on loopback, over real HTTP."""

from __future__ import annotations

import json
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
def test_unsubscribe_bench_runs_at_small_size(tmp_path: Path) -> None:
    """bench/web_unsubscribe.py runs the minimal app and `newsletter serve`, alone and during
    a send through smtp-sink, and every POST answered 200 unsubscribed its person."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "figures.json"
    argv = [sys.executable, str(root / "bench" / "web_unsubscribe.py")]
    argv += ["--subscribers", "40", "--concurrency", "4", "--max-seconds", "30"]
    argv += ["--send", "200", "--during-rate", "20", "--rounds", "1", "--json", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "req/s" in result.stdout and "p99" in result.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    web = {phase["name"]: phase for phase in figures["web"]}
    assert web["minimal"]["statuses"] == {"200": 40}
    assert web["ours"]["statuses"] == {"200": 40}
    if figures["send"]:  # Postfix's smtp-sink is installed
        assert [send["name"] for send in figures["send"]] == ["send alone", "send + one-click"]
        assert all(send["rate"] > 0 for send in figures["send"])
        assert set(web["send + one-click"]["statuses"]) == {"200"}
