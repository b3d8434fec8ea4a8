"""The intake benchmark runs end to end on a tiny input and prints the JSON it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_intake.py"
KEYS = {"rows", "import_seconds", "rows_per_second", "peak_rss_mb", "peak_traced_mb",
        "api_post_median_ms", "api_post_p95_ms", "targets", "meets_targets"}


def test_bench_intake_smoke_run_prints_the_promised_json() -> None:
    """`bench_intake.py --rows 30 --requests 5`: exit 0, one JSON object with every key (times not judged)."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--rows", "30", "--requests", "5"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) >= KEYS
    assert result["rows"] == 30 and sum(result["referred"].values()) == 30
    assert result["peak_rss_mb"] > 0 and result["peak_traced_mb"] > 0
    assert set(result["targets"]) == {"import_seconds", "peak_rss_mb", "api_post_median_ms"}
    assert isinstance(result["meets_targets"], bool)
