"""The web benchmark runs, reports what it promises, and its query counts do not grow with the
number of stops (no N+1). Times are for the benchmark itself, not asserted here."""

from __future__ import annotations

import importlib.util

from delivery.platform.settings import ROOT


def load_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_web", ROOT / "scripts" / "bench_web.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_web_reports_constant_query_counts() -> None:
    bench = load_bench()
    small = bench.measure(stops=6, routes=2, repeat=2)
    large = bench.measure(stops=24, routes=4, repeat=2)
    for result in (small, large):
        for page in ("day_page", "map_json"):
            assert set(result[page]) == {"median_ms", "p90_ms", "queries", "bytes"}
            assert result[page]["queries"] > 0
    assert small["day_page"]["queries"] == large["day_page"]["queries"]
    assert small["map_json"]["queries"] == large["map_json"]["queries"]


def test_bench_web_mixed_load_runs_every_kind_against_a_real_server() -> None:
    """A short mixed load (2 s, 10 small writes/s) against uvicorn on 127.0.0.1: every kind of
    request is sent and answered as expected (no errors); the figures are the script's business."""
    bench = load_bench()
    result = bench.mixed(2, 10, 6, 2, 4, set(bench.KINDS))
    assert set(result["kinds"]) == set(bench.KINDS)
    for kind, figures in result["kinds"].items():
        assert figures["n"] > 0 and figures["errors"] == 0, (kind, figures)
        assert {"p50_ms", "p99_ms"} <= set(figures)
