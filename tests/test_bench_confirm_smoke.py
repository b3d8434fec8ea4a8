"""The confirmation benchmark runs end to end against a real server process and reports what it
promises (its times are the benchmark's business, not asserted here)."""

from __future__ import annotations

import importlib.util
import sys

from delivery.platform.settings import ROOT


def test_bench_confirm_smoke() -> None:
    spec = importlib.util.spec_from_file_location("bench_confirm", ROOT / "scripts" / "bench_confirm.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_confirm"] = bench  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    report = bench.main(["--smoke", "--replays", "0.3"])
    run = report["run"]
    assert {"p50_ms", "p99_ms", "errors", "duplicates", "requests", "replay"} <= set(run)
    assert run["requests"] == 20 and run["errors"] == 0 and run["duplicates"] == 0
    assert run["replay"] > 0 and run["p99_ms"] is not None
