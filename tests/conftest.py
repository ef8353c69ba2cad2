"""Shared fixtures: a fresh SQLite file per test, a real PostgreSQL cluster per session, a real
SMTP server (aiosmtpd) per test, and a config file pointing at them.

Tests that take ``db_url`` (or ``engine``/``config``) run on both SQLite and PostgreSQL. Outside
CI the PostgreSQL variants skip with a visible reason when no server can be started; in CI
(``CI=true``) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from newsletter.config import Config, load_config, render_config_file
from newsletter.db import make_engine, upgrade_database
from newsletter.web.app import create_app
from tests.harness import (
    IN_CI,
    ExternalPostgres,
    PostgresCluster,
    PostgresUnavailable,
    RecordingHandler,
    SMTPServer,
    free_port,
)
from tests.web_support import ServerThread, headless_chromium

# The command line speaks the user's locale; tests read its English unless they ask otherwise.
os.environ["LANGUAGE"] = "en"

TEST_SECRET = "test-secret-key-not-for-production-0123456789abcdef"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server for the session: ``NEWSLETTER_TEST_PG_URL`` or a throwaway cluster."""
    external = os.environ.get("NEWSLETTER_TEST_PG_URL")
    if external:
        yield ExternalPostgres(external)
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
    except (PostgresUnavailable, OSError, KeyError) as exc:
        cluster.stop()
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but could not start: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: no server could be started ({exc})")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'newsletter.db'}"
    server = request.getfixturevalue("postgres")
    return str(server.create_database())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'newsletter.db'}"


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server on loopback that records the bytes of every message it accepts."""
    with SMTPServer(RecordingHandler()) as server:
        yield server


ConfigFactory = Callable[..., Config]


@pytest.fixture
def make_config(tmp_path: Path) -> ConfigFactory:
    """Write a ``newsletter.toml`` in the test's folder and load it, isolated from the real
    environment. Keyword arguments are ``table__key=value`` overrides."""

    def factory(db_url: str, smtp_port: int | None = None, **overrides: Any) -> Config:
        values: dict[str, dict[str, Any]] = {
            "list": {
                "name": "Les liens CivicTech",
                "id_domain": "liens.example.org",
                "from_address": "liens@example.org",
                "from_name": "Les liens CivicTech",
                "postal_address": "12 rue de la Paix, 75002 Paris, France",
            },
            "web": {"base_url": "https://liens.example.org", "secret_key": TEST_SECRET},
            "database": {"url": db_url},
            "smtp": {"host": "127.0.0.1", "port": smtp_port or 2525, "tls": "none", "timeout": 5.0},
        }
        for name, value in overrides.items():
            table, key = name.split("__", 1)
            values.setdefault(table, {})[key] = value
        path = tmp_path / "newsletter.toml"
        path.write_text(render_config_file(values), encoding="utf-8")
        return load_config(path, environ={})

    return factory


@pytest.fixture
def sqlite_site(make_config: ConfigFactory, sqlite_url: str) -> Iterator[tuple[Config, Engine]]:
    """A config on a migrated SQLite file, and its engine."""
    config = make_config(sqlite_url)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    yield config, engine
    engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend."""
    eng = make_engine(db_url)
    upgrade_database(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def config(make_config: ConfigFactory, db_url: str, smtp_server: SMTPServer) -> Config:
    """A config on each backend whose relay is the test's SMTP server."""
    return make_config(db_url, smtp_port=smtp_server.port)


@pytest.fixture
def public_site(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> Iterator[tuple[Config, Engine]]:
    """A config whose relay is the test's SMTP server, and its migrated SQLite file."""
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine = make_engine(sqlite_url)
    upgrade_database(engine)
    yield config, engine
    engine.dispose()


@pytest.fixture
def served(public_site: tuple[Config, Engine]) -> Iterator[tuple[Config, str]]:
    """The app on ``public_site``, served by uvicorn on loopback: its config and URL."""
    config, engine = public_site
    port = free_port()
    with ServerThread(create_app(config, engine), port):
        yield config, f"http://127.0.0.1:{port}"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium; the test skips without it (fails in CI)."""
    with headless_chromium() as chromium:
        yield chromium
