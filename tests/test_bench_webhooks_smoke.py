"""scripts/bench_webhooks.py keeps working: a short run prints its JSON with every event arrived."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_webhooks.py"


def test_bench_webhooks_runs_and_prints_json() -> None:
    """A 20-event run exits 0 and reports latencies (never their values: that is the benchmark's job)."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--events", "20", "--rate", "100"],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["arrived"] == 20 and report["p99_s"] >= report["p50_s"] >= 0
