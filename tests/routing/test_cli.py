"""``delivery solve``: Solomon and JSON files in, solution JSON out, clear errors on bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import msgspec
import pytest

from delivery.routing import Job, Point, Problem, Vehicle, Window, check
from delivery.routing.cli import solve_command
from delivery.routing.solomon import read, route_distance

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "solomon"


@pytest.mark.parametrize("name", ["C101", "R101"])
def test_solve_solomon_smoke(name, capsys):
    """A short solve of a Solomon instance prints every customer once and a feasible plan."""
    assert solve_command(str(DATA / f"{name}.txt"), None, 1.0) == 0
    out = json.loads(capsys.readouterr().out)
    visited = sorted(c for route in out["routes"] for c in route)
    assert sorted(visited + out["unassigned"]) == list(range(1, 101))
    assert out["vehicles"] == len(out["routes"]) <= 25
    _, coords = read(DATA / f"{name}.txt")
    assert out["distance"] == pytest.approx(route_distance(out["routes"], coords))
    assert set(out) >= {"routes", "distance", "vehicles", "unassigned", "seconds"}


def test_solomon_c101_reaches_the_optimum():
    """C101 at a short limit is solved to its proven optimum (827.3, truncated)."""
    if not SHARED.is_dir():
        pytest.skip("shared/bench is not beside the repository")
    with (SHARED / "bks.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    best = next(
        float(r["distance"])
        for r in rows
        if r["instance"] == "C101" and r["objective_kind"] == "distance_min_trunc1"
    )
    from delivery.routing import solve

    problem, coords = read(DATA / "C101.txt")
    solution = solve(problem, time_limit=1.0, warm_start="none")
    assert check(problem, solution) == []
    routes = [[int(v.job) for v in r.visits] for r in solution.routes]
    assert round(route_distance(routes, coords, trunc1=True), 1) <= best * 1.01


def test_solve_json_problem(tmp_path, capsys):
    """A msgspec-encoded Problem file is solved and its ids come back."""
    problem = Problem(
        jobs=(
            Job(id="a", point=Point(37.75, -122.18), boxes=2, window=Window(36000, 43200)),
            Job(id="b", point=Point(37.76, -122.17), boxes=1),
        ),
        vehicles=(
            Vehicle(id="d1", start=Point(37.74, -122.19), capacity=10, shift_start=32400, shift_end=46800),
        ),
    )
    path = tmp_path / "day.json"
    path.write_bytes(msgspec.json.encode(problem))
    assert solve_command(str(path), None, 0.3) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["routes"][0]) == ["a", "b"]
    assert out["unassigned"] == []


@pytest.mark.parametrize(
    ("content", "suffix", "fmt", "message"),
    [
        (None, ".txt", None, "no such file"),
        ("hello\nworld\n", ".txt", "solomon", "expected a Solomon file"),
        ("{not json", ".json", None, "not valid JSON"),
        ('{"jobs": [{"id": 1}]}', ".json", "json", "not a routing problem"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys, content, suffix, fmt, message):
    """Bad input gives exit code 2 and a one-line message saying what to fix, no traceback."""
    path = tmp_path / f"bad{suffix}"
    if content is not None:
        path.write_text(content)
    assert solve_command(str(path), fmt, 1.0) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_parallel_pyvrp_warm_start_on_solomon():
    """The two-core PyVRP warm start returns a feasible C101 plan within 1 % of the optimum."""
    pytest.importorskip("pyvrp")
    from delivery.routing import solve

    problem, coords = read(DATA / "C101.txt")
    solution = solve(problem, time_limit=2.0, warm_start="pyvrp")
    assert check(problem, solution) == []
    assert solution.stats.warm_start == "pyvrp"
    routes = [[int(v.job) for v in r.visits] for r in solution.routes]
    assert route_distance(routes, coords, trunc1=True) <= 827.3 * 1.01
    assert solution.stats.seconds < 3.0
