#!/usr/bin/env python3
"""Benchmark: the travel matrix for 1,000 points (target: well under a second), against the naive
baseline of one geopy call per pair measured in the same run, so the ratio holds on a busy machine.

    .venv/bin/python scripts/bench_matrix.py [--points 1000] [--baseline-points 150]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from geopy.distance import geodesic, great_circle

from delivery.routing import Point, Travel, build_matrix


def timed(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--baseline-points", type=int, default=150)
    args = parser.parse_args()
    rng = random.Random(1)
    points = [Point(37.7 + rng.random() * 0.1, -122.3 + rng.random() * 0.2) for _ in range(args.points)]
    sample = points[: args.baseline_points]
    report: dict[str, object] = {"points": args.points, "target_seconds": 1.0}
    for method, pairwise in (("great_circle", great_circle), ("geodesic", geodesic)):
        ours = timed(lambda m=method: build_matrix(points, Travel(method=m)))
        naive_sample = timed(lambda f=pairwise: [f((a.lat, a.lon), (b.lat, b.lon)).km
                                                 for a in sample for b in sample], repeats=1)
        naive = naive_sample * (args.points / args.baseline_points) ** 2  # per-pair cost scales n^2
        report[method] = {"seconds": round(ours, 4), "naive_geopy_seconds_estimated": round(naive, 2),
                          "speedup": round(naive / ours, 1), "meets_target": ours < 1.0}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
