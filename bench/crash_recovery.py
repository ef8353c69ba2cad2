"""What a crash costs: duplicates per SIGKILL and seconds until the rest of the send is done.

Against a real SMTP server (aiosmtpd on loopback, which records every recipient) and a real
database (a SQLite file, and a throwaway PostgreSQL cluster), sender processes
(``tests/fault_worker.py``, the product's ``run_sender``) are SIGKILLed mid-send:

- ``restart``: one sender, killed at five points (early, mid-batch, just after a group commit,
  while retries wait for their backoff, in the final batch), a new one started at once each
  time, as ``send resume`` would. Per kill: the messages the server accepted that the ledger
  had not recorded (each is sent again), and the seconds from the kill until every row the
  dead sender held is recorded by the new one.
- ``survivor``: several senders share the send (2 on SQLite, 3 on PostgreSQL); one is killed;
  seconds from the kill until the survivors have recorded every row it held, and until the
  send is done.
- ``other host``: the killed sender's claims are relabelled as another host's, so only the end
  of its lease (20 s) lets them go; seconds until they are recorded.

Usage: ``python bench/crash_recovery.py [--n 3000] [--no-postgres]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import start_postgres  # noqa: E402

BATCH, WORKERS = 20, 2
Ready = Callable[[Any, Any], bool]


def spawn(config_path: Path, **options: float) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "tests.fault_worker", str(config_path)]
    argv += ["--batch", str(BATCH), "--workers", str(WORKERS)]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def kill_when(process: subprocess.Popen[str], server: Any, engine: Any, ready: Ready) -> float:
    deadline = time.monotonic() + 300
    while not ready(server, engine):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the sender finished or stalled before it could be killed")
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return time.monotonic()


def ledger(engine: Any) -> tuple[set[str], dict[int, int], int]:
    """Emails recorded sent, rows still ``sending`` per pid, rows in ``retry``."""
    from sqlalchemy import func, select

    from newsletter.db import read_transaction
    from newsletter.models import Delivery

    with read_transaction(engine) as session:
        sent = set(session.scalars(select(Delivery.email).where(Delivery.status == "sent")))
        held = session.execute(
            select(Delivery.claim_pid, func.count())
            .where(Delivery.status == "sending")
            .group_by(Delivery.claim_pid)
        ).all()
        retry = session.scalar(select(func.count()).where(Delivery.status == "retry"))
    return sent, {int(pid or 0): int(n) for pid, n in held}, int(retry or 0)


def wait_released(engine: Any, pid: int, since: float, timeout: float = 120) -> float:
    """Seconds from ``since`` until no row is held by ``pid`` any more."""
    while ledger(engine)[1].get(pid):
        if time.monotonic() - since > timeout:
            raise RuntimeError(f"rows of pid {pid} still held after {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - since


def received(n: int) -> Ready:
    return lambda server, engine: len(server.received()) >= n


def after_commit(n: int) -> Ready:
    seen: list[int] = []

    def ready(server: Any, engine: Any) -> bool:
        if len(server.received()) < n:
            return False
        seen.append(len(ledger(engine)[0]))
        return len(seen) > 1 and seen[-1] > seen[-2]

    return ready


def retries_waiting(n: int) -> Ready:
    return lambda server, engine: len(server.received()) >= n and ledger(engine)[2] > 0


class Send:
    """A fresh database with ``n`` subscribers and a started run, and its config file."""

    def __init__(self, folder: Path, db_url: str, smtp_port: int, n: int) -> None:
        from newsletter.config import load_config, render_config_file
        from newsletter.db import make_engine, upgrade_database
        from tests.delivery_support import add_subscribers
        from tests.test_faults import start

        values = {
            "list": {"name": "Les liens", "id_domain": "liens.example.org",
                     "from_address": "liens@example.org", "from_name": "Les liens",
                     "postal_address": "12 rue de la Paix, 75002 Paris"},
            "web": {"base_url": "https://liens.example.org", "secret_key": "b" * 48},
            "database": {"url": db_url},
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "tls": "none", "timeout": 30.0},
        }  # fmt: skip
        self.path = folder / "newsletter.toml"
        self.path.write_text(render_config_file(values), encoding="utf-8")
        self.config = load_config(self.path, environ={})
        self.engine = make_engine(db_url)
        upgrade_database(self.engine)
        add_subscribers(self.engine, n)
        self.run_id = start(self.engine)
        self.n = n

    def duplicates(self, server: Any) -> int:
        counts = Counter(server.handler.recipients())
        missing = self.n - len(counts)
        if missing:
            raise RuntimeError(f"{missing} recipients got nothing")
        return sum(counts.values()) - self.n


def restart_scenario(send: Send, server: Any) -> dict[str, Any]:
    n = send.n
    points: dict[str, Ready] = {
        "early": received(n // 20),
        "mid-batch": received(n // 4 + BATCH // 2),
        "after a group commit": after_commit(n * 2 // 5),
        "during retry backoff": retries_waiting(n * 3 // 5),
        "final batch": received(n - 8),
    }
    process = spawn(send.path, retry_ms=300)
    result: dict[str, Any] = {}
    for name, ready in points.items():
        dead = process.pid
        killed = kill_when(process, server, send.engine, ready)
        resent = len(set(server.handler.recipients()) - ledger(send.engine)[0])
        process = spawn(send.path, retry_ms=300)
        result[name] = {"resent": resent, "recovered_s": wait_released(send.engine, dead, killed)}
    process.communicate(timeout=300)
    result["duplicates"] = send.duplicates(server)
    return result


def survivor_scenario(send: Send, server: Any, senders: int) -> dict[str, Any]:
    processes = [spawn(send.path) for _ in range(senders)]
    dead = processes[0].pid
    killed = kill_when(processes[0], server, send.engine, received(send.n // 3))
    resent = len(set(server.handler.recipients()) - ledger(send.engine)[0])
    recovered = wait_released(send.engine, dead, killed)
    for process in processes[1:]:
        process.communicate(timeout=300)
    done = time.monotonic() - killed
    return {"senders": senders, "resent": resent, "recovered_s": recovered, "done_s": done,
            "duplicates": send.duplicates(server)}  # fmt: skip


def other_host_scenario(send: Send, server: Any) -> dict[str, Any]:
    from sqlalchemy import update

    from newsletter.db import transaction
    from newsletter.models import Delivery

    process = spawn(send.path)
    dead = process.pid
    killed = kill_when(process, server, send.engine, received(send.n // 3))
    with transaction(send.engine) as session:
        session.execute(
            update(Delivery).where(Delivery.status == "sending").values(claim_host="elsewhere")
        )
    successor = spawn(send.path)
    recovered = wait_released(send.engine, dead, killed)
    successor.communicate(timeout=300)
    return {"recovered_s": recovered, "duplicates": send.duplicates(server)}


def backend(name: str, make_url: Callable[[], str], n: int, senders: int) -> dict[str, Any]:
    from tests.delivery_support import FaultHandler
    from tests.harness import SMTPServer
    from tests.test_faults import number

    def data(address: str, tries: int) -> str | None:
        # One recipient in 13 is deferred once (451), so retries wait for their backoff.
        return "451 4.3.0 try again" if number(address) % 13 == 5 and tries == 1 else None

    figures: dict[str, Any] = {}
    scenarios: dict[str, Callable[[Send, Any], dict[str, Any]]] = {
        "restart": restart_scenario,
        "survivor": lambda send, server: survivor_scenario(send, server, senders),
        "other host": other_host_scenario,
    }
    for scenario, run in scenarios.items():
        with (
            tempfile.TemporaryDirectory() as tmp,
            SMTPServer(FaultHandler(data_reply=data)) as server,
        ):
            send = Send(Path(tmp), make_url() or f"sqlite:///{tmp}/n.db", server.port, n)
            try:
                figures[scenario] = run(send, server)
            finally:
                send.engine.dispose()
        print(f"  {name:10} {scenario:10} {json.dumps(figures[scenario])}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="recipients (default 3,000)")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    print(f"== crash recovery: {args.n} recipients, {WORKERS} connections per sender ==")
    results = {"sqlite": backend("SQLite", lambda: "", args.n, 2)}
    if not args.no_postgres:
        cluster = start_postgres()
        try:
            results["postgres"] = backend("PostgreSQL", cluster.create_database, args.n, 3)
        finally:
            cluster.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
