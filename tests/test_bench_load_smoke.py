"""The load benchmarks run end to end against a real server process and report what they promise
(their times are the benchmark's business, never asserted here)."""

from __future__ import annotations

import os

import pytest

from scripts import bench_confirm, bench_load

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(
    not os.environ.get("DELIVERY_TEST_POSTGRES_URL"), reason="DELIVERY_TEST_POSTGRES_URL is not set"))]


def assert_sound(report: dict) -> None:  # type: ignore[type-arg]
    assert set(bench_load.TARGETS) <= set(report["targets"])
    assert {"acknowledged", "lost", "duplicates", "holds", "load_average_before"} <= set(report)
    assert report["lost"] == 0 and report["duplicates"] == 0
    assert report["steady"]["errors"] == 0, report["steady"]["error_samples"]
    assert {"p50_ms", "p99_ms", "requests"} <= set(report["steady"]["confirm"])


@pytest.mark.parametrize("db", KINDS)
def test_bench_confirm_smoke(db: str) -> None:
    report = bench_confirm.main(["--smoke", "--db", db, "--replays", "0.3"])
    assert_sound(report)
    counts = report["steady"]["counts"]
    assert counts["replay"] > 0 and "stop_list" not in counts and "burst" not in report
    assert report["steady"]["confirm"]["requests"] == counts["confirm"] + counts["replay"]
    assert report["acknowledged"] == counts["confirm"]  # the replays were answered with the same rows


@pytest.mark.parametrize("db", KINDS)
def test_bench_load_smoke(db: str) -> None:
    report = bench_load.main(["--smoke", "--db", db])
    assert_sound(report)
    assert report["steady"]["stop_list"]["requests"] > 0
    burst = report["burst"]
    assert burst["errors"] == 0, burst["error_samples"]
    assert burst["accepted"] == burst["drivers"] * burst["queue"] and burst["p99_ms"] is not None
    assert report["acknowledged"] == report["steady"]["counts"]["confirm"] + burst["accepted"]
