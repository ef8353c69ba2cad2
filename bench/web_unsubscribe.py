"""One-click unsubscribe rate: RFC 8058 POSTs against `newsletter serve` on SQLite.

Starts `newsletter serve` on a free loopback port over a SQLite file holding N active
subscribers, then fires one `POST /u/TOKEN` (body `List-Unsubscribe=One-Click`, as Gmail sends
it) per subscriber from C concurrent HTTP clients, and prints requests/s and latency
percentiles. Bounded in count (N) and time (--max-seconds). Checks afterwards that every
subscriber who got a 200 is unsubscribed in the database.

    .venv/bin/python bench/web_unsubscribe.py [--subscribers 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import clean_env, free_port, insert_subscribers, write_config


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def wait_until_up(url: str, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not come up (its log is above)")


async def fire(url: str, paths: list[str], concurrency: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(paths))
    stop_at = time.monotonic() + max_seconds
    body = b"List-Unsubscribe=One-Click"
    headers = {"content-type": "application/x-www-form-urlencoded"}

    async def worker() -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            while queue and time.monotonic() < stop_at:
                path = queue.pop()
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"latencies": latencies, "statuses": statuses, "elapsed": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()

    from sqlalchemy import func, select

    from newsletter.config import load_config
    from newsletter.db import make_engine, upgrade_database
    from subscribers.models import Subscriber
    from subscribers.tokens import make_unsubscribe_token

    with tempfile.TemporaryDirectory(prefix="bench-unsub-") as folder:
        db_url = f"sqlite:///{Path(folder) / 'newsletter.db'}"
        config_path = write_config(
            Path(folder), db_url=db_url, smtp_port=free_port(), max_connections=1
        )
        config = load_config(config_path, environ={})
        engine = make_engine(db_url)
        upgrade_database(engine)
        insert_subscribers(engine, args.subscribers)
        with engine.connect() as conn:
            ids = list(conn.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        paths = [f"/u/{make_unsubscribe_token(config.secret_key, i)}" for i in ids]

        port = free_port()
        newsletter = str(Path(sys.executable).with_name("newsletter"))
        log = open(Path(folder) / "serve.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [newsletter, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=clean_env(config_path),
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                asyncio.run(wait_until_up(url, proc))
            except SystemExit:
                log.flush()
                print((Path(folder) / "serve.log").read_text(errors="replace")[-3000:])
                raise
            result = asyncio.run(fire(url, paths, args.concurrency, args.max_seconds))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        with engine.connect() as conn:
            gone = conn.scalar(select(func.count()).where(Subscriber.status == "unsubscribed"))
        engine.dispose()

    latencies = result["latencies"]
    ok = result["statuses"].get(200, 0)
    print(
        f"one-click unsubscribe against `newsletter serve` on SQLite (loopback, "
        f"{args.concurrency} concurrent clients, {len(latencies)} requests)"
    )
    print(f"  statuses: {result['statuses']}")
    print(
        f"  throughput: {len(latencies) / result['elapsed']:.0f} requests/s "
        f"over {result['elapsed']:.1f} s"
    )
    print(
        f"  latency: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )
    print(f"  database: {gone} of {len(ids)} subscribers unsubscribed ({ok} answered 200)")
    if gone != ok:
        raise SystemExit("mismatch between 200 answers and unsubscribed rows")


if __name__ == "__main__":
    main()
