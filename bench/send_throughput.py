"""Send throughput and memory: our sender against the machine's ceiling and the naive pipeline.

In one run, against one Postfix ``smtp-sink`` on a free loopback port, at the same
concurrency and message size, it measures:

1. ``smtp-source`` with persistent sessions: the ceiling of this machine;
2. the naive pipeline on a sample (per recipient: jinja2 + premailer + EmailMessage +
   ``aiosmtplib.send`` on a new connection, see ``bench/naive.py``);
3. our sender end to end from the SQLite ledger (a separate process, so its peak RSS is its
   own), at N recipients and at N/10;
3b. the same at N with DKIM on (a 2048-bit RSA key: every message signed, as real senders
   do), against smtp-source at that (slightly larger) signed size;
4. our sender from PostgreSQL with two worker processes sharing the send (a throwaway
   cluster on loopback).

Every phase is checked: the sink must count exactly one message per recipient and the ledger
must hold every delivery as ``sent``. Usage: ``python bench/send_throughput.py --n 50000``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ISSUE_INTRO,
    POSTFIX_HELP,
    Measured,
    SmtpSink,
    clean_env,
    find_postfix_tool,
    insert_subscribers,
    issue_links,
    listening_ports,
    reap,
    run_smtp_source,
    spawn,
    start_postgres,
    write_config,
    write_dkim_key,
)


def worker_argv() -> list[str]:
    """`newsletter worker --once`: the product's own sender process, exiting when done."""
    script = Path(sys.executable).parent / "newsletter"
    if script.exists():
        return [str(script), "worker", "--once"]
    code = "import sys; from newsletter.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "worker", "--once"]


@dataclass(frozen=True)
class PreparedSend:
    run_id: int
    recipients: int
    message_bytes: int
    snapshot_seconds: float


def _publish(session: Any, config: Any, now: Any) -> int:
    """Assemble, render and start the send of the next issue; return the run's id."""
    from newsletter.sending import publish_next_issue

    return publish_next_issue(session, config, now).run.id


def message_size(config: Any, engine: Any, run_id: int) -> int:
    """Wire bytes of our message for one recipient of the run."""
    from newsletter.clock import utc_now
    from newsletter.db import transaction
    from newsletter.models import SendRun
    from newsletter.sending.message import MessageTemplate, Recipient
    from newsletter.sending.render import RenderedEmail
    from subscribers.tokens import make_unsubscribe_token

    with transaction(engine) as session:
        run = session.get(SendRun, run_id)
        assert run is not None
        rendered = RenderedEmail(subject=run.subject, html=run.html, text=run.text)
    template = MessageTemplate.prepare(config, rendered, list_mail=True)
    token = make_unsubscribe_token(config.secret_key, 1)
    recipient = Recipient("lecteur.0000001@example.org", "", f"{config.base_url}/u/{token}")
    data = template.for_recipient(recipient, utc_now())
    signed = data.startswith(b"DKIM-Signature: ")
    if signed != bool(config.get("smtp", "dkim_key_file")):
        raise BenchFailure(f"DKIM signature expected: {not signed}, found: {signed}")
    return len(data)


def prepare_send(config_path: Path, n: int) -> PreparedSend:
    """A migrated database with ``n`` active subscribers, a 40-link issue and its send run."""
    from newsletter.clock import utc_now
    from newsletter.config import load_config
    from newsletter.content import queue_link, set_intro
    from newsletter.db import make_engine, transaction, upgrade_database

    config = load_config(config_path, environ={})
    engine = make_engine(config.database_url)
    try:
        upgrade_database(engine)
        insert_subscribers(engine, n)
        now = utc_now()
        with transaction(engine) as session:
            for link in issue_links(40):
                queue_link(session, now=now, **link)
            set_intro(session, ISSUE_INTRO, now)
        started = time.perf_counter()
        with transaction(engine) as session:
            run_id = _publish(session, config, now)
        snapshot = time.perf_counter() - started
        return PreparedSend(run_id, n, message_size(config, engine, run_id), snapshot)
    finally:
        engine.dispose()


def ledger_counts(db_url: str, run_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from newsletter.db import make_engine, transaction
    from newsletter.models import Delivery

    engine = make_engine(db_url)
    try:
        with transaction(engine) as session:
            rows = session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.run_id == run_id)
                .group_by(Delivery.status)
            ).all()
    finally:
        engine.dispose()
    return {str(status): int(count) for status, count in rows}


class BenchFailure(RuntimeError):
    pass


def run_ours(
    name: str,
    sink: SmtpSink,
    config_paths: list[Path],
    db_url: str,
    prepared: PreparedSend,
    timeout: float,
) -> tuple[Measured, list[int]]:
    """Start one sender process per config, wait for all; check the sink and the ledger."""
    before = sink.messages()
    started = time.perf_counter()
    procs = [spawn(worker_argv(), env=clean_env(p)) for p in config_paths]
    results = [reap(proc, timeout) for proc in procs]
    seconds = time.perf_counter() - started
    for status, _rss, output, _cpu in results:
        if status != 0:
            raise BenchFailure(f"{name}: sender exited {status}:\n{output.decode()[-3000:]}")
    received = sink.wait_for(before + prepared.recipients) - before
    counts = ledger_counts(db_url, prepared.run_id)
    if received != prepared.recipients or counts.get("sent", 0) != prepared.recipients:
        raise BenchFailure(
            f"{name}: sink counted {received}, ledger {counts}; expected {prepared.recipients} sent"
        )
    rss = [r[1] for r in results]
    note = f"{len(procs)} process(es), peak RSS " + ", ".join(f"{kb / 1024:.0f} MB" for kb in rss)
    cpu = sum(r[3] for r in results)
    return Measured(name, received, seconds, max(rss), note, cpu), rss


def sqlite_phase(
    work: Path, sink: SmtpSink, n: int, concurrency: int, timeout: float, dkim: bool = False
) -> tuple[Measured, PreparedSend]:
    folder = work / (f"sqlite-dkim-{n}" if dkim else f"sqlite-{n}")
    folder.mkdir()
    db_url = f"sqlite:///{folder / 'newsletter.db'}"
    key = write_dkim_key(folder) if dkim else None
    path = write_config(
        folder, db_url=db_url, smtp_port=sink.port, max_connections=concurrency, dkim_key=key
    )
    prepared = prepare_send(path, n)
    name = f"ours, SQLite, DKIM, n={n}" if dkim else f"ours, SQLite, n={n}"
    measured, _ = run_ours(name, sink, [path], db_url, prepared, timeout)
    return measured, prepared


def postgres_phase(
    work: Path,
    sink: SmtpSink,
    n: int,
    concurrency: int,
    workers: int,
    timeout: float,
    our_ports: list[int],
) -> Measured:
    cluster = start_postgres()
    our_ports.append(cluster.port)
    try:
        db_url = cluster.create_database()
        paths = []
        for i in range(workers):
            folder = work / f"pg-worker-{i}"
            folder.mkdir()
            per_worker = max(1, concurrency // workers)
            paths.append(
                write_config(folder, db_url=db_url, smtp_port=sink.port, max_connections=per_worker)
            )
        prepared = prepare_send(paths[0], n)
        name = f"ours, PostgreSQL, {workers} workers, n={n}"
        measured, _ = run_ours(name, sink, paths, db_url, prepared, timeout)
        return measured
    finally:
        cluster.stop()


def _line(m: Measured) -> str:
    rss = f"{m.peak_rss_kb / 1024:7.1f} MB" if m.peak_rss_kb else " " * 10
    cpu = f" {m.cpu_us_per_message:6.0f} us CPU/msg" if m.cpu_seconds else ""
    return f"  {m.name:<42} {m.messages:>8} msgs {m.seconds:8.1f} s {m.rate:9.1f} msg/s {rss}{cpu}"


def report(results: dict[str, Any]) -> None:
    print("\n== send throughput ==")
    print(f"message size: ours {results['message_bytes']} B, naive {results['naive_bytes']} B; ")
    print(f"concurrency: {results['concurrency']} SMTP connections in total")
    for m in results["phases"]:
        print(_line(Measured(**m)) + (f"  ({m['note']})" if m["note"] else ""))
    for line in results["verdicts"]:
        print(line)


def verdicts(
    source: Measured,
    naive: Measured,
    ours: Measured,
    small: Measured | None,
    dkim: tuple[Measured, Measured] | None = None,
) -> list[str]:
    lines = []
    vs_naive = ours.rate / naive.rate if naive.rate else 0.0
    vs_source = ours.rate / source.rate if source.rate else 0.0
    ok = "met" if vs_naive >= 15 else "MISSED"
    lines.append(f"ours (SQLite) / naive      = {vs_naive:6.1f}x   (target >= 15x: {ok})")
    ok = "met" if vs_source >= 0.40 else "MISSED"
    lines.append(f"ours (SQLite) / smtp-source = {vs_source:6.1%}   (target >= 40%: {ok})")
    if dkim is not None:
        signed, signed_source = dkim
        share = signed.rate / signed_source.rate if signed_source.rate else 0.0
        ok = "met" if share >= 0.35 else "MISSED"
        lines.append(
            f"ours (SQLite, DKIM) / smtp-source at the signed size = {share:6.1%}   "
            f"(target >= 35%: {ok})"
        )
    peak = ours.peak_rss_kb / 1024
    lines.append(f"peak RSS at n={ours.messages}: {peak:.1f} MB (target < 150 MB at 200,000)")
    if small is not None and small.peak_rss_kb:
        growth = ours.peak_rss_kb / small.peak_rss_kb - 1
        ok = "met" if growth <= 0.15 else "MISSED"
        lines.append(
            f"peak RSS at n={small.messages}: {small.peak_rss_kb / 1024:.1f} MB; "
            f"growth to n={ours.messages}: {growth:+.1%} (target within 15%: {ok})"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="recipients (default 50,000)")
    parser.add_argument("--concurrency", type=int, default=4, help="SMTP connections in total")
    parser.add_argument("--naive-sample", type=int, default=1000, help="naive pipeline sample")
    parser.add_argument(
        "--source-count", type=int, default=0, help="smtp-source messages (default min(n, 20000))"
    )
    parser.add_argument("--workers", type=int, default=2, help="PostgreSQL worker processes")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL phase")
    parser.add_argument("--no-small", action="store_true", help="skip the n/10 memory run")
    parser.add_argument("--no-dkim", action="store_true", help="skip the DKIM-signed run")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per sender phase")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if find_postfix_tool("smtp-sink") is None or find_postfix_tool("smtp-source") is None:
        print(POSTFIX_HELP, file=sys.stderr)
        return 2
    our_ports: list[int] = []
    phases: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp, SmtpSink() as sink:
        work = Path(tmp)
        our_ports.append(sink.port)
        from bench.naive import message_size as naive_size
        from bench.naive import run_naive

        print(f"[bench] sink on 127.0.0.1:{sink.port}; preparing n={args.n}...", flush=True)
        ours, prepared = sqlite_phase(work, sink, args.n, args.concurrency, args.timeout)
        print(_line(ours), flush=True)
        count = args.source_count or min(args.n, 20_000)
        size = prepared.message_bytes
        source = run_smtp_source(sink, count=count, size=size, sessions=args.concurrency)
        print(_line(source), flush=True)
        naive = run_naive(sink.port, count=args.naive_sample, concurrency=args.concurrency)
        print(_line(naive), flush=True)
        phases += [source, naive, ours]
        dkim = None
        if not args.no_dkim:
            signed, signed_prepared = sqlite_phase(
                work, sink, args.n, args.concurrency, args.timeout, dkim=True
            )
            print(_line(signed), flush=True)
            signed_source = run_smtp_source(
                sink, count=count, size=signed_prepared.message_bytes, sessions=args.concurrency
            )
            signed_source = replace(signed_source, name="smtp-source, DKIM-signed size")
            print(_line(signed_source), flush=True)
            phases += [signed, signed_source]
            dkim = (signed, signed_source)
        small = None
        if not args.no_small:
            small, _ = sqlite_phase(
                work, sink, max(1, args.n // 10), args.concurrency, args.timeout
            )
            print(_line(small), flush=True)
            phases.append(small)
        if not args.no_postgres:
            from tests.harness import PostgresUnavailable

            try:
                pg = postgres_phase(
                    work, sink, args.n, args.concurrency, args.workers, args.timeout, our_ports
                )
            except PostgresUnavailable as exc:
                print(f"[bench] PostgreSQL phase skipped: {exc}", flush=True)
            else:
                print(_line(pg), flush=True)
                phases.append(pg)
        results = {
            "n": args.n,
            "concurrency": args.concurrency,
            "message_bytes": size,
            "naive_bytes": naive_size(),
            "snapshot_seconds": prepared.snapshot_seconds,
            "phases": [asdict(m) | {"rate": m.rate} for m in phases],
            "verdicts": verdicts(source, naive, ours, small, dkim),
        }
    report(
        results
        | {"phases": [{k: v for k, v in m.items() if k != "rate"} for m in results["phases"]]}
    )
    print(f"recipient snapshot (INSERT..SELECT) at n={args.n}: {prepared.snapshot_seconds:.2f} s")
    listening = listening_ports()
    leftover = sorted(set(our_ports) & listening)
    print(f"listening ports left behind: {leftover or 'none'}; port 25 open: {25 in listening}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 1 if leftover else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
