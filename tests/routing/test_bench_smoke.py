"""The routing benchmark still runs end to end (its numbers are read by people, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOLOMON = ROOT.parent / "shared" / "bench" / "solomon"


@pytest.mark.skipif(not (SOLOMON / "C101.txt").exists(), reason="shared/bench is not beside the checkout")
def test_bench_routing_smoke_run_writes_its_json(tmp_path: Path) -> None:
    """One Solomon instance for one second gives a checked result with the promised fields."""
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_routing.py"), "--only", "solomon",
                    "--instances", "C101", "--time-limit", "1", "--no-compare", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    [row] = json.loads(out.read_text())
    assert row["instance"] == "C101"
    for key in ("vehicles", "distance", "gap_pct", "first_solution_s", "seconds", "peak_mb", "feasible"):
        assert key in row["ours"], key
    assert row["ours"]["feasible"] is True


REALISTIC = ROOT.parent / "shared" / "bench" / "realistic"


@pytest.mark.skipif(not (REALISTIC / "pbox-n50-s1.json").exists(),
                    reason="shared/bench is not beside the checkout")
def test_bench_routing_reports_checked_peers_and_fairness(tmp_path: Path) -> None:
    """A 50-stop day: the peers' plans are checked by our checker, and each spread level is reported."""
    pytest.importorskip("pyvrp")
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_routing.py"), "--only", "realistic",
                    "--sizes", "50", "--time-limit", "1", "--no-vroom", "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    [row] = json.loads(out.read_text())
    for key in ("feasible", "unassigned", "peak_mb", "processes"):
        assert key in row["pyvrp"], key
    assert row["pyvrp"]["processes"] == row["ours"]["processes"]
    assert set(row["fairness"]) == {"off", "some", "strong"}
    for level in row["fairness"].values():
        for key in ("drivers_used", "stops_min", "stops_max", "hours_max", "travel", "travel_vs_off"):
            assert key in level, key
