"""The web benchmark runs, reports what it promises, and its query counts do not grow with the
number of stops (no N+1). Times are for the benchmark itself, not asserted here."""

from __future__ import annotations

import importlib.util

from delivery.platform.settings import ROOT


def test_bench_web_reports_constant_query_counts() -> None:
    spec = importlib.util.spec_from_file_location("bench_web", ROOT / "scripts" / "bench_web.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    small = bench.measure(stops=6, routes=2, repeat=2)
    large = bench.measure(stops=24, routes=4, repeat=2)
    for result in (small, large):
        for page in ("day_page", "map_json"):
            assert set(result[page]) == {"median_ms", "p90_ms", "queries", "bytes"}
            assert result[page]["queries"] > 0
    assert small["day_page"]["queries"] == large["day_page"]["queries"]
    assert small["map_json"]["queries"] == large["map_json"]["queries"]
