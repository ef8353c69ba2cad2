"""The delivery ledger, claim side: one row per (send run, subscriber), claimed under a short
lease by an owner (host, pid and a random token per claim), renewed while the owner lives, and
taken back when it stops. What happened to a claimed row is written by
``newsletter.sending.outcomes``; runs are started and moved along in ``newsletter.sending.runs``.

A row goes ``pending`` -> ``sending`` (claimed) -> ``sent`` | ``retry`` | ``failed`` |
``bounced`` | ``skipped``. Every function here is synchronous and takes a ``Session``; the async
sender calls them through a thread (design decision 8). A sender that dies leaves its rows
``sending``: a claim on the same host whose process is gone is taken back by the next claim at
once, any other when its lease (20 s, renewed by a live sender) has run out. Outcomes are
written only where the claim token still matches, so an owner that lost its claim (paused
process, slow relay) changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.db import READ_ONLY
from newsletter.models import ClaimRecovery, Delivery, DeliveryStatus, RunStatus, SendRun
from subscribers.models import Subscriber, SubscriberStatus

NOT_SUBSCRIBED = "no longer subscribed"


@dataclass(frozen=True)
class Owner:
    """Who holds a claim: the host and process id of a sender."""

    host: str
    pid: int

    @classmethod
    def this_process(cls) -> Owner:
        return cls(socket.gethostname()[:255], os.getpid())


@dataclass(frozen=True)
class Claim:
    """A delivery this worker now holds under a lease; ``token`` names this claim."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int
    token: str


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` of this host is still running (a zombie counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


# The claim's statements, built once: a claim is a handful of cheap indexed queries, and
# building them with the ORM at every claim cost more CPU than SQLite's work.
_DELIVERY = Delivery.__table__
_SUBSCRIBER = Subscriber.__table__
assert isinstance(_DELIVERY, Table) and isinstance(_SUBSCRIBER, Table)
_D = _DELIVERY.c
_RUN_STATUS = select(SendRun.status).where(SendRun.id == bindparam("run_id"))
_STOPPED = (
    select(_D.claim_pid)
    .where(
        _D.run_id == bindparam("run_id"),
        _D.status == DeliveryStatus.SENDING,
        _D.claim_host == bindparam("host"),
    )
    .distinct()
)
_ACTIVE_NAMES = select(_SUBSCRIBER.c.id, _SUBSCRIBER.c.name).where(
    _SUBSCRIBER.c.id.in_(bindparam("ids", expanding=True)),
    _SUBSCRIBER.c.status == SubscriberStatus.ACTIVE,
)
_TAKE = (
    update(_DELIVERY)
    .where(_D.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=DeliveryStatus.SENDING,
        lease_until=bindparam("lease_until"),
        updated_at=bindparam("now"),
        claim_token=bindparam("token"),
        claim_host=bindparam("host"),
        claim_pid=bindparam("pid"),
    )
)
_SKIP = (
    update(_DELIVERY)
    .where(_D.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=DeliveryStatus.SKIPPED,
        lease_until=None,
        updated_at=bindparam("now"),
        last_error=NOT_SUBSCRIBED,
    )
)


def _due(state: ColumnElement[bool]) -> Select[Any]:
    return (
        select(
            _D.id, _D.subscriber_id, _D.email, _D.attempts, _D.status, _D.claim_pid, _D.claim_host
        )
        .where(_D.run_id == bindparam("run_id"), state)
        .order_by(_D.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=_DELIVERY)
    )


# Rows held by a sender whose lease ran out, due retries, pending rows (see ``_due_rows``).
_DUE_EXPIRED = _due(and_(_D.status == DeliveryStatus.SENDING, _D.lease_until < bindparam("now")))
_DUE_RETRY = _due(and_(_D.status == DeliveryStatus.RETRY, _D.next_attempt_at <= bindparam("now")))
_DUE_PENDING = _due(_D.status == DeliveryStatus.PENDING)


def stopped_pids(session: Session, run_id: int, owner: Owner) -> list[int]:
    """Pids on ``owner``'s host holding ``sending`` rows of ``run_id`` that are not running."""
    pids = session.connection().execute(_STOPPED, {"run_id": run_id, "host": owner.host})
    return [pid for (pid,) in pids if pid is not None and pid != owner.pid and not pid_running(pid)]


def claim_batch(
    session: Session,
    run_id: int,
    *,
    limit: int,
    now: datetime,
    lease: timedelta,
    owner: Owner | None = None,
) -> list[Claim]:
    """Take up to ``limit`` due deliveries of a running run for ``owner`` (default: this
    process), under one new claim token: rows held by a stopped sender (its process gone from
    this host, or its lease expired), retries whose time has come, then pending rows. Rows
    taken back are counted in ``claim_recovery``. Recipients who are no longer active are
    marked ``skipped`` instead of returned. On PostgreSQL the rows are locked with ``FOR
    UPDATE SKIP LOCKED`` so concurrent workers take disjoint batches; SQLite serialises
    writers with ``BEGIN IMMEDIATE``."""
    owner = owner or Owner.this_process()
    connection = session.connection()
    status = connection.execute(_RUN_STATUS, {"run_id": run_id}).scalar()
    if status != RunStatus.RUNNING:
        return []
    rows = _due_rows(session, run_id, limit, now, owner.host, stopped_pids(session, run_id, owner))
    if not rows:
        return []
    _count_recovered(session, run_id, rows, now)
    people = _active_names(session, [r.subscriber_id for r in rows if r.subscriber_id])
    token = secrets.token_hex(16)
    claims = [
        Claim(r.id, r.subscriber_id, r.email, people[r.subscriber_id], r.attempts, token)
        for r in rows
        if r.subscriber_id in people
    ]
    skipped = [r.id for r in rows if r.subscriber_id not in people]
    if skipped:
        connection.execute(_SKIP, {"ids": skipped, "now": now})
    if claims:
        values = {"lease_until": now + lease, "now": now, "token": token}
        values |= {"host": owner.host, "pid": owner.pid, "ids": [c.delivery_id for c in claims]}
        connection.execute(_TAKE, values)
    return claims


def renew_leases(
    session: Session, tokens: Sequence[str], *, now: datetime, lease: timedelta
) -> None:
    """The heartbeat: extend the lease of the rows still held (``sending``) under ``tokens``."""
    if tokens:
        session.execute(
            update(Delivery)
            .where(Delivery.claim_token.in_(tokens), Delivery.status == DeliveryStatus.SENDING)
            .values(lease_until=now + lease)
        )


class SubscriptionCheck:
    """Which of some subscribers are still active, asked right before each message, so it must
    be cheap: one plain SELECT on a connection kept for the purpose, without SQLAlchemy and
    without a thread. On SQLite (WAL) a read takes no lock, so it runs on the event loop
    (~20 us); on PostgreSQL it goes through psycopg's async connection in autocommit mode.
    (A Session in a thread per message cost ~0.9 ms of CPU and the sender a third of its
    rate.) Other backends fall back to a thread. One question at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite: Any = None
        self._postgres: Any = None
        self._fallback: Connection | None = None

    async def __call__(self, subscriber_ids: Sequence[int]) -> set[int]:
        if not subscriber_ids:
            return set()
        params = (SubscriberStatus.ACTIVE.value, *subscriber_ids)
        dialect = self.engine.dialect.name
        if dialect == "sqlite":
            if self._sqlite is None:
                self._sqlite = await asyncio.to_thread(self._open_sqlite)
            rows = self._sqlite.execute(_active_query("?", len(subscriber_ids)), params)
        elif dialect == "postgresql":
            if self._postgres is None:
                self._postgres = await self._open_postgres()
            cursor = await self._postgres.execute(_active_query("%s", len(subscriber_ids)), params)
            rows = await cursor.fetchall()
        else:
            rows = await asyncio.to_thread(self._through_sqlalchemy, params)
        return {int(row[0]) for row in rows}

    def at_once(self, subscriber_ids: Sequence[int]) -> set[int] | None:
        """The answer without waiting where the backend allows it (SQLite, once its connection
        is open), else None."""
        if self._sqlite is None:
            return None
        params = (SubscriberStatus.ACTIVE.value, *subscriber_ids)
        rows = self._sqlite.execute(_active_query("?", len(subscriber_ids)), params)
        return {int(row[0]) for row in rows}

    def _open_sqlite(self) -> Any:
        # A connection of its own, in autocommit mode: each SELECT is its own read.
        database = self.engine.url.database or ""
        return sqlite3.connect(database, check_same_thread=False, isolation_level=None)

    async def _open_postgres(self) -> Any:
        import psycopg

        url = self.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        return await psycopg.AsyncConnection.connect(conninfo, autocommit=True)

    def _through_sqlalchemy(self, params: tuple[Any, ...]) -> list[Any]:
        if self._fallback is None:
            self._fallback = self.engine.connect().execution_options(**{READ_ONLY: True})
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        try:
            query = _active_query(mark, len(params) - 1)
            return list(self._fallback.exec_driver_sql(query, params).all())
        finally:
            self._fallback.rollback()

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._postgres is not None:
            await self._postgres.close()
        if self._fallback is not None:
            self._fallback.close()
        self._sqlite = self._postgres = self._fallback = None


def _active_query(mark: str, count: int) -> str:
    marks = ", ".join([mark] * count)
    return f"SELECT id FROM {Subscriber.__tablename__} WHERE status = {mark} AND id IN ({marks})"


DueRow = Row[int, int | None, str, int, str, int | None, str]


def _due_rows(
    session: Session, run_id: int, limit: int, now: datetime, host: str, stopped: list[int]
) -> list[DueRow]:
    """Rows held by a stopped sender, then due retries, then pending rows, oldest first within
    each state: one query per state, each an ordered range of ``ix_delivery_run_status`` that
    stops at ``limit``. (One OR across the states made SQLite read and sort every row of the
    run at each claim: quadratic in the number of recipients.)"""
    states = [_DUE_EXPIRED, _DUE_RETRY, _DUE_PENDING]
    if stopped:
        # Rare (a sender of this host died): the same query, also taking its rows back.
        gone = and_(_D.claim_host == host, _D.claim_pid.in_(stopped))
        expired = _D.lease_until < bindparam("now")
        states[0] = _due(and_(_D.status == DeliveryStatus.SENDING, or_(expired, gone)))
    connection = session.connection()
    rows: list[DueRow] = []
    for state in states:
        if len(rows) >= limit:
            break
        params = {"run_id": run_id, "now": now, "limit": limit - len(rows)}
        rows += connection.execute(state, params).all()
    return rows


def _count_recovered(session: Session, run_id: int, rows: list[DueRow], now: datetime) -> None:
    taken = Counter((r.claim_host, r.claim_pid) for r in rows if r.status == DeliveryStatus.SENDING)
    for (host, pid), count in taken.items():
        # One row per stopped sender, however many claims it takes to bring its rows back.
        known = session.scalar(
            select(ClaimRecovery).where(
                ClaimRecovery.run_id == run_id, ClaimRecovery.host == host, ClaimRecovery.pid == pid
            )
        )
        if known is None:
            session.add(ClaimRecovery(run_id=run_id, host=host, pid=pid, count=count, taken_at=now))
        else:
            known.count += count
            known.taken_at = now


def _active_names(session: Session, subscriber_ids: Sequence[int]) -> dict[int, str]:
    if not subscriber_ids:
        return {}
    rows = session.connection().execute(_ACTIVE_NAMES, {"ids": list(subscriber_ids)})
    return {row.id: row.name for row in rows}
