"""A sender process for the fault tests: ``python -m tests.fault_worker CONFIG [options]``.

It runs ``run_sender`` until no running send has work left and prints its stats as JSON, so a
test can SIGKILL it mid-send, start another, or run two at once on one database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import timedelta

from newsletter.clock import utc_now
from newsletter.config import load_config
from newsletter.db import make_engine
from newsletter.sending.sender import SenderOptions, run_sender


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--now-offset", type=float, default=0.0, help="seconds ahead of now")
    parser.add_argument("--retry-ms", type=float, default=10.0, help="first retry backoff")
    parser.add_argument("--lease", type=float, default=20.0, help="lease, seconds")
    args = parser.parse_args()
    config = load_config(args.config, environ={})
    engine = make_engine(config.database_url)
    offset = timedelta(seconds=args.now_offset)
    options = SenderOptions(
        batch_size=args.batch,
        workers=args.workers,
        poll_interval=0.02,
        retry_base=timedelta(milliseconds=args.retry_ms),
        lease=timedelta(seconds=args.lease),
    )
    stats = asyncio.run(
        run_sender(config, engine, now_fn=lambda: utc_now() + offset, options=options)
    )
    print(json.dumps({"sent": stats.sent, "temporary": stats.temporary}), flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
