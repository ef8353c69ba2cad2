"""One-click unsubscribe: `newsletter serve` against a minimal app, alone and during a send.

In one run, on loopback, with a lean raw HTTP/1.1 keep-alive client (``bench/httpload.py``;
httpx would be the bottleneck) and C connections (default 32):

1. ``minimal``: a minimal Starlette + uvicorn app doing the same SQLite UPDATE + INSERT per
   RFC 8058 POST (``bench/minimal_app.py``), over N subscribers: the yardstick;
2. ``ours``: `newsletter serve` over N subscribers, the same POSTs (`POST /u/TOKEN`, body
   ``List-Unsubscribe=One-Click``, as Gmail sends them);
3. ``send alone``: `newsletter serve` sending a 40-link issue to S subscribers (default
   20,000) through Postfix's ``smtp-sink``, no web load: the send rate;
4. ``send + one-click``: the same send, while one-click POSTs arrive at R per second
   (open loop, default 100/s, for people outside the send): p99 and the send's rate.

Phases 3 and 4 run in turn ``--rounds`` times (default 3): a send of 20,000 lasts about ten
seconds here, and one pair alone swings by several points with the machine. The drop is
taken between the two kinds' median rates, the p99 from the worst loaded round.

Every phase checks that each POST answered 200 left its subscriber unsubscribed, and each
send that the sink counted exactly S messages.

    .venv/bin/python bench/web_unsubscribe.py [--subscribers 5000] [--send 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ISSUE_INTRO,
    SmtpSink,
    clean_env,
    find_postfix_tool,
    free_port,
    insert_subscribers,
    issue_links,
    write_config,
)
from bench.httpload import LoadResult, run_load

BODY = b"List-Unsubscribe=One-Click"
TARGETS = {"share": 0.60, "p99": 0.050, "send_p99": 0.100, "send_drop": 0.15}


@dataclass
class WebFigures:
    name: str
    requests: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]


@dataclass
class SendFigures:
    name: str
    messages: int
    seconds: float
    rate: float


def web_figures(name: str, result: LoadResult) -> WebFigures:
    return WebFigures(
        name,
        len(result.latencies),
        result.elapsed,
        result.rate,
        result.percentile(0.50) * 1000,
        result.percentile(0.99) * 1000,
        max(result.latencies, default=0.0) * 1000,
        result.statuses,
    )


# --- data -------------------------------------------------------------------------------------


@dataclass
class Database:
    folder: Path
    db_url: str
    config_path: Path
    paths: list[str]  # one unsubscribe path per subscriber the web load may hit

    @property
    def file(self) -> Path:
        return self.folder / "newsletter.db"


def prepare(work: Path, name: str, *, web: int, send: int, smtp_port: int) -> Database:
    """A migrated SQLite database: ``send`` active subscribers and a queued 40-link issue
    (when ``send`` > 0; ``publish`` starts its send), then ``web`` more subscribers for the
    web load (still pending when there is a send, so they are not among its recipients)."""
    from sqlalchemy import select

    from newsletter.clock import utc_now
    from newsletter.config import load_config
    from newsletter.content import queue_link, set_intro
    from newsletter.db import make_engine, transaction, upgrade_database
    from subscribers.models import Subscriber
    from subscribers.tokens import make_unsubscribe_token

    folder = work / name
    folder.mkdir()
    db_url = f"sqlite:///{folder / 'newsletter.db'}"
    config_path = write_config(folder, db_url=db_url, smtp_port=smtp_port, max_connections=4)
    config = load_config(config_path, environ={})
    engine = make_engine(db_url)
    try:
        upgrade_database(engine)
        if send:
            insert_subscribers(engine, send)
            now = utc_now()
            with transaction(engine) as session:
                for link in issue_links(40):
                    queue_link(session, now=now, **link)
                set_intro(session, ISSUE_INTRO, now)
        insert_subscribers(engine, web, first=send, status="pending" if send else "active")
        with engine.connect() as conn:
            query = select(Subscriber.id).where(Subscriber.id > send).order_by(Subscriber.id)
            ids = list(conn.scalars(query))
    finally:
        engine.dispose()
    paths = [f"/u/{make_unsubscribe_token(config.secret_key, i)}" for i in ids]
    return Database(folder, db_url, config_path, paths)


def publish(db: Database) -> None:
    """Start the send of the queued issue (``newsletter serve`` picks it up)."""
    from newsletter.clock import utc_now
    from newsletter.config import load_config
    from newsletter.db import make_engine, read_transaction, transaction
    from newsletter.services import sends

    config = load_config(db.config_path, environ={})
    engine = make_engine(db.db_url)
    now = utc_now()
    try:
        # As `send now` does: render first, then a short write transaction stores it.
        with read_transaction(engine) as session:
            issue = sends.issue_to_publish(session, config, now)
        prepared = sends.prepare_issue(config, issue)
        with transaction(engine) as session:
            sends.publish_now(session, config, now, prepared=prepared)
    finally:
        engine.dispose()


def unsubscribed_count(db: Database) -> int:
    import sqlite3

    with sqlite3.connect(db.file) as conn:
        row = conn.execute("SELECT count(*) FROM subscriber WHERE status = 'unsubscribed'")
        return int(row.fetchone()[0])


# --- servers ----------------------------------------------------------------------------------


class Server:
    """A child process serving HTTP on 127.0.0.1:port, stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log_path = log
        self.log = log.open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=self.log)

    def wait_until_up(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        print(self.log_path.read_text(errors="replace")[-3000:])
        raise SystemExit("the server did not come up (its log is above)")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_serve(db: Database) -> Server:
    port = free_port()
    newsletter = str(Path(sys.executable).with_name("newsletter"))
    argv = [newsletter, "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = Server(argv, clean_env(db.config_path), port, db.folder / "serve.log")
    server.wait_until_up()
    return server


def start_minimal(db: Database, secret: str) -> Server:
    port = free_port()
    script = str(Path(__file__).resolve().parent / "minimal_app.py")
    argv = [sys.executable, script, str(db.file), secret, str(port)]
    server = Server(argv, clean_env(db.config_path), port, db.folder / "minimal.log")
    server.wait_until_up()
    return server


# --- phases -----------------------------------------------------------------------------------


def closed_loop(server: Server, db: Database, connections: int, max_seconds: float) -> LoadResult:
    async def load() -> LoadResult:
        return await run_load(
            "127.0.0.1",
            server.port,
            db.paths,
            body=BODY,
            connections=connections,
            max_seconds=max_seconds,
        )

    return asyncio.run(load())


def check_unsubscribed(name: str, db: Database, result: LoadResult) -> None:
    gone = unsubscribed_count(db)
    ok = result.statuses.get(200, 0)
    if gone != ok or set(result.statuses) != {200}:
        raise SystemExit(f"{name}: {ok} answers 200 ({result.statuses}) but {gone} unsubscribed")


def web_phase(
    work: Path, name: str, args: argparse.Namespace, secret: str, minimal: bool
) -> WebFigures:
    db = prepare(work, name, web=args.subscribers, send=0, smtp_port=free_port())
    server = start_minimal(db, secret) if minimal else start_serve(db)
    try:
        result = closed_loop(server, db, args.concurrency, args.max_seconds)
    finally:
        server.stop()
    check_unsubscribed(name, db, result)
    return web_figures(name, result)


async def watch_send(sink: SmtpSink, start: int, target: int, state: dict[str, float]) -> None:
    """Note when the sink got its first and its ``target``-th message after ``start``."""
    while True:
        seen = sink.messages() - start
        now = time.perf_counter()
        if seen > 0 and "first" not in state:
            state["first"], state["first_count"] = now, seen
        if seen >= target:
            state["last"] = now
            return
        await asyncio.sleep(0.02)


def send_phase(
    work: Path, name: str, sink: SmtpSink, args: argparse.Namespace, load_rate: float
) -> tuple[SendFigures, WebFigures | None]:
    """Serve a database, start a send there; with ``load_rate`` > 0, POST one-click
    unsubscribes (of people outside the send) at that rate from before the send starts
    until it is done."""
    web = int(load_rate * args.max_seconds * 4) if load_rate else 0
    db = prepare(work, name, web=web, send=args.send, smtp_port=sink.port)
    state: dict[str, float] = {}
    before = sink.messages()

    async def run(port: int) -> LoadResult | None:
        watcher = asyncio.create_task(watch_send(sink, before, args.send, state))
        result = None
        publishing = asyncio.create_task(asyncio.to_thread(publish, db))
        if load_rate:
            result = await run_load(
                "127.0.0.1",
                port,
                db.paths,
                body=BODY,
                connections=args.concurrency,
                rate=load_rate,
                max_seconds=args.max_seconds * 4,
                until=lambda: "last" in state,
            )
        await publishing
        await asyncio.wait_for(watcher, timeout=args.max_seconds * 4)
        return result

    server = start_serve(db)
    try:
        result = asyncio.run(run(server.port))
    finally:
        server.stop()
    # The rate counts from the first message the sink saw to the last one of the send.
    messages = args.send - int(state["first_count"])
    seconds = state["last"] - state["first"]
    send = SendFigures(name, messages, seconds, messages / seconds if seconds else 0.0)
    if result is None:
        return send, None
    check_unsubscribed(name, db, result)
    return send, web_figures(name, result)


# --- report -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n== one-click unsubscribe (SQLite, loopback, {args.concurrency} connections, "
        f"raw HTTP/1.1 keep-alive client) =="
    )
    for web in figures["web"]:
        print(
            f"  {web['name']:<28} {web['requests']:>7} requests {web['seconds']:6.1f} s "
            f"{web['rate']:8.0f} req/s  p50 {web['p50_ms']:6.1f} ms  p99 {web['p99_ms']:6.1f} ms"
            f"  max {web['max_ms']:6.1f} ms  {web['statuses']}"
        )
    for send in figures["send"]:
        print(
            f"  {send['name']:<28} {send['messages']:>7} messages {send['seconds']:6.1f} s "
            f"{send['rate']:8.1f} msg/s"
        )
    for line in figures["verdicts"]:
        print(line)


def verdicts(figures: dict[str, Any]) -> list[str]:
    web = {w["name"]: w for w in figures["web"]}
    minimal, ours = web["minimal"], web["ours"]
    share = ours["rate"] / minimal["rate"] if minimal["rate"] else 0.0
    lines = [
        f"ours / minimal app: {share:.1%} (target >= 60%: {verdict(share >= TARGETS['share'])})",
        f"ours p99 alone: {ours['p99_ms']:.1f} ms (target < 50 ms: "
        f"{verdict(ours['p99_ms'] < TARGETS['p99'] * 1000)})",
    ]
    alone = [s["rate"] for s in figures["send"] if s["name"].startswith("send alone")]
    loaded = [s["rate"] for s in figures["send"] if s["name"].startswith("send + one-click")]
    during = [w["p99_ms"] for w in figures["web"] if w["name"].startswith("send + one-click")]
    if alone and loaded and during:
        # The median of each kind's rounds, and the worst round's p99.
        alone_rate, loaded_rate = statistics.median(alone), statistics.median(loaded)
        drop = 1 - loaded_rate / alone_rate if alone_rate else 1.0
        p99 = max(during)
        lines.append(
            f"one-click p99 during the send (worst of {len(during)}): {p99:.1f} ms "
            f"(target < 100 ms: {verdict(p99 < TARGETS['send_p99'] * 1000)})"
        )
        lines.append(
            f"send rate drop under one-click load: {drop:.1%}, medians {alone_rate:.0f} and "
            f"{loaded_rate:.0f} msg/s of {len(alone)} rounds "
            f"(target <= 15%: {verdict(drop <= TARGETS['send_drop'])})"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000, help="POSTs per web phase")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP connections")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound per web phase")
    parser.add_argument("--send", type=int, default=20_000, help="recipients of the send")
    parser.add_argument(
        "--during-rate", type=float, default=100.0, help="one-click POSTs/s during the send"
    )
    parser.add_argument("--no-send", action="store_true", help="skip the send phases")
    parser.add_argument(
        "--rounds", type=int, default=3, help="send alone / send + one-click pairs, in turn"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.common import BENCH_SECRET

    figures: dict[str, Any] = {"web": [], "send": []}
    with tempfile.TemporaryDirectory(prefix="bench-unsub-") as tmp:
        work = Path(tmp)
        for name, minimal in (("minimal", True), ("ours", False)):
            figures["web"].append(asdict(web_phase(work, name, args, BENCH_SECRET, minimal)))
            print(f"[bench] {figures['web'][-1]}", flush=True)
        has_sink = find_postfix_tool("smtp-sink") is not None
        if not args.no_send and not has_sink:
            print("[bench] send phases skipped: Postfix's smtp-sink is not installed")
        if not args.no_send and has_sink:
            with SmtpSink() as sink:
                for round_ in range(1, args.rounds + 1):
                    # Alone and loaded in turn: a slow patch of the machine then touches
                    # both kinds rather than one.
                    for kind, rate in (("send alone", 0.0), ("send + one-click", args.during_rate)):
                        name = kind if args.rounds == 1 else f"{kind} #{round_}"
                        send, web = send_phase(work, name, sink, args, rate)
                        figures["send"].append(asdict(send))
                        print(f"[bench] {figures['send'][-1]}", flush=True)
                        if web is not None:
                            figures["web"].append(asdict(web))
                            print(f"[bench] {figures['web'][-1]}", flush=True)
    figures["verdicts"] = verdicts(figures)
    report(figures, args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
