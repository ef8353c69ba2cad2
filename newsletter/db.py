"""Storage plumbing: the declarative base, engines, one transaction per command or request,
and Alembic migrations.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL through psycopg 3 is the
scale-out engine. Models live with their domain (``newsletter.models``, ``subscribers.models``);
``newsletter.schema`` gathers them for Alembic.

Two kinds of transaction (datasette's seam): ``read_transaction`` never waits for a writer
(on SQLite a plain deferred ``BEGIN`` under WAL reads a snapshot, and the connection is
``query_only`` so a write in it fails loudly), and ``transaction``, the write transaction,
which on SQLite takes the write lock up front and queues on a per-process lock first. Keep
write transactions short: render, sign and send outside them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from newsletter.errors import ConfigError
from newsletter.resources import MIGRATIONS_DIR

# Stable constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores naive UTC, we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout.

    Raises ``ConfigError`` for a URL SQLAlchemy cannot use.
    """
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
            event.listen(engine, "connect", _configure_sqlite)
            event.listen(engine, "begin", _begin_sqlite)
            _WRITE_LOCKS[engine] = threading.RLock()
        else:
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
    except Exception as exc:  # SQLAlchemy raises several types for a bad URL
        raise ConfigError(
            "[database] url: cannot use %(url)r: %(error)s", url=url, error=str(exc)
        ) from None
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# Execution option naming a read transaction (see ``read_transaction``).
READ_ONLY = "newsletter_read_only"

# SQLite engine -> the lock its write transactions take in this process (see ``transaction``).
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_READERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def _begin_sqlite(connection: Any) -> None:
    read_only = bool(connection.get_execution_options().get(READ_ONLY, False))
    if connection.info.get(READ_ONLY, False) != read_only:
        connection.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
        connection.info[READ_ONLY] = read_only
    # A reader's deferred BEGIN reads a WAL snapshot and never waits for the writer. A
    # writer's BEGIN IMMEDIATE takes the write lock up front, so two writers queue on
    # busy_timeout instead of one failing with "database is locked" when it upgrades a
    # read lock.
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _write_lock(engine: Engine) -> AbstractContextManager[Any]:
    return _WRITE_LOCKS.get(engine) or nullcontext()


def _reader(engine: Engine) -> Engine:
    """``engine`` with read transactions (same pool, same connections)."""
    reader = _READERS.get(engine)
    if reader is None:
        reader = engine.execution_options(**{READ_ONLY: True})
        _READERS[engine] = reader
    return reader


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One write unit of work: commit on success, roll back on any exception (and re-raise).

    On SQLite the writers of this process take turns on a lock before ``BEGIN IMMEDIATE``:
    a thread waiting on it wakes as soon as the writer before it is done, whereas threads
    queued on ``busy_timeout`` sleep in growing steps (up to 100 ms) and pile up latency.
    Do slow work (rendering, signing, network) before or after, never inside."""
    with (
        _write_lock(engine),
        Session(engine, expire_on_commit=False) as session,
        session.begin(),
    ):
        yield session


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Session]:
    """A unit of work that only reads: it sees one consistent snapshot and never waits for
    a writer (SQLite WAL). On SQLite, writing in it raises ``OperationalError``."""
    with Session(_reader(engine), expire_on_commit=False) as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` (idempotent). Raises ``ConfigError`` when
    the database cannot be opened or was migrated by a newer version of the program."""
    from alembic import command

    current_revision(engine)
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` before any migration). Raises
    ``ConfigError`` when the database cannot be opened (a directory, garbage, a server that
    does not answer) or its revision is unknown to this program (a newer version migrated
    it)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise ConfigError(
            "[database] url: cannot open the database: %(error)s",
            error=str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__,
        ) from None
    if revision is not None and revision not in known_revisions(engine):
        raise ConfigError(
            "the database was migrated by a newer version of the newsletter (schema "
            "%(revision)s): upgrade the program, or use a backup made before",
            revision=revision,
        )
    return revision


def head_revision(engine: Engine) -> str | None:
    """The revision this program's migrations end at (the schema its models declare)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def known_revisions(engine: Engine) -> set[str]:
    """Every schema revision this program's migrations know."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config(engine))
    return {script.revision for script in scripts.walk_revisions()}
