"""scripts/bench_report.py keeps working: a small run prints its JSON at two sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_report.py"


def test_bench_report_runs_and_prints_json() -> None:
    """Two small programs: the year's report is built and rendered at both, with the same query count."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--patients", "20", "40"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["sizes"]) == {"20", "40"} and report["queries_constant"] is True
    assert report["sizes"]["40"]["deliveries_attempted"] > report["sizes"]["20"]["deliveries_attempted"] > 0
