"""A tiny run of ``bench/send_throughput.py``, so CI proves the benchmark still works: every
phase delivers exactly its messages to a real Postfix ``smtp-sink`` on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HAS_SINK = all(
    shutil.which(tool) or os.access(f"/usr/sbin/{tool}", os.X_OK)
    for tool in ("smtp-sink", "smtp-source")
)
HAS_POSTGRES = bool(shutil.which("initdb")) or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    not HAS_SINK and not IN_CI,
    reason="Postfix smtp-sink/smtp-source not installed (apt-get install postfix, "
    "'No configuration'); CI runs this test",
)
def test_send_throughput_bench_runs_at_small_size(tmp_path: Path) -> None:
    """The benchmark sends n=200 through our sender (SQLite, n/10, PostgreSQL with two
    workers), smtp-source and the naive pipeline, and every phase is counted at the sink."""
    out = tmp_path / "figures.json"
    argv = [sys.executable, str(ROOT / "bench" / "send_throughput.py"), "--n", "200"]
    argv += ["--naive-sample", "20", "--source-count", "200", "--json", str(out)]
    if not HAS_POSTGRES and not IN_CI:
        argv.append("--no-postgres")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text(encoding="utf-8"))
    phases = {phase["name"]: phase for phase in figures["phases"]}
    assert phases["smtp-source"]["messages"] == 200
    assert phases["naive"]["messages"] == 20
    assert phases["ours, SQLite, n=200"]["messages"] == 200
    assert phases["ours, SQLite, n=20"]["messages"] == 20
    assert phases["ours, SQLite, n=200"]["peak_rss_kb"] > 10_000  # a real process was measured
    if HAS_POSTGRES or IN_CI:
        assert phases["ours, PostgreSQL, 2 workers, n=200"]["messages"] == 200
    assert all(phase["rate"] > 0 for phase in figures["phases"])
    assert figures["message_bytes"] > 20_000  # a realistic 40-link issue, not a stub
    assert "listening ports left behind: none" in result.stdout
