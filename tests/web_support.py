"""Helpers for the tests that go over real HTTP or drive a real browser: headless Chromium
through playwright, and uvicorn serving the app on loopback in a background thread."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp

from tests.harness import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _skip_or_fail(reason: str) -> None:
    # CI installs Chromium and playwright, so a missing one there is a broken setup, not a skip.
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(f"browser tests skipped: {reason}")


def chromium_or_skip() -> str:
    """The Chromium executable; skips the test (fails it in CI) when there is none."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not found:
        _skip_or_fail(f"no Chromium at {CHROMIUM} (apt install chromium)")
    assert found
    return found


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A headless Chromium browser (playwright's sync API), closed on exit."""
    executable = chromium_or_skip()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_until_started(
    started: Callable[[], bool], thread: threading.Thread, timeout: float
) -> None:
    """Wait for a server thread to report it is listening; raise if it died or took too long."""
    deadline = time.monotonic() + timeout
    while not started():
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)


class ServerThread:
    """uvicorn in a background thread, stopped by flagging ``should_exit``."""

    def __init__(self, app: ASGIApp, port: int) -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        wait_until_started(lambda: self.server.started, self.thread, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
