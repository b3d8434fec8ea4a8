"""``delivery solve``: Solomon and JSON files in, solution JSON out, clear errors on bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import msgspec
import pytest

from delivery.routing import Job, Point, Problem, Vehicle, Window, check
from delivery.routing.cli import solve_command
from delivery.routing.solomon import read, route_distance

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "solomon"


def _customers(path: Path) -> tuple[int, list[tuple[float, ...]]]:
    """The vehicle capacity and the customer rows of a Solomon file, read here by hand.

    Kept apart from ``delivery.routing.solomon`` on purpose: the printed plan is
    checked against the file itself, not against the code that produced it.
    """
    lines = [line.split() for line in path.read_text().splitlines()]
    capacity = int(next(lines[i + 1][1] for i, line in enumerate(lines) if line[:1] == ["NUMBER"]))
    rows = [tuple(float(v) for v in line) for line in lines if len(line) == 7 and line[0].isdigit()]
    return capacity, rows


def _exact_length_if_feasible(routes: list[list[int]], path: Path) -> float:
    """Total Euclidean length of the routes; fails if a route breaks capacity or a time window."""
    capacity, rows = _customers(path)
    by_number = {int(row[0]): row for row in rows}
    total = 0.0
    for route in routes:
        assert sum(by_number[c][3] for c in route) <= capacity, f"route {route} is over capacity"
        clock, here = 0.0, by_number[0]
        for c in [*route, 0]:
            there = by_number[c]
            leg = math.dist(here[1:3], there[1:3])
            total += leg
            clock = max(clock + leg, there[4])
            assert clock <= there[5] + 1e-9, f"customer {c} reached at {clock}, after its window"
            clock += there[6]
            here = there
    return total


@pytest.mark.parametrize("name", ["C101", "R101"])
def test_solve_solomon_prints_a_feasible_plan_with_its_true_length(name, capsys):
    """A short solve prints every customer once, the vehicle of each route, and the plan's real length."""
    assert solve_command(str(DATA / f"{name}.txt"), None, 1.0) == 0
    out = json.loads(capsys.readouterr().out)
    visited = sorted(c for route in out["routes"] for c in route)
    assert sorted(visited + out["unassigned"]) == list(range(1, 101))
    assert out["vehicles"] == len(out["routes"]) <= 25
    assert len(out["route_vehicles"]) == len(out["routes"])
    assert len(set(out["route_vehicles"])) == len(out["routes"]), "one route per vehicle"
    assert set(out["route_vehicles"]) <= {f"v{k}" for k in range(1, 26)}
    assert out["distance"] == pytest.approx(_exact_length_if_feasible(out["routes"], DATA / f"{name}.txt"))


def test_route_vehicles_name_the_vehicle_that_can_serve_each_route(tmp_path, capsys):
    """In a mixed fleet each route is printed with the vehicle that drives it (only the van fits 'big')."""
    problem = Problem(
        jobs=(
            Job(id="big", point=Point(37.75, -122.18), boxes=20),
            Job(id="small", point=Point(37.70, -122.10), boxes=1),
        ),
        vehicles=(
            Vehicle(id="car", start=Point(37.74, -122.19), capacity=5),
            Vehicle(id="van", start=Point(37.74, -122.19), capacity=25),
        ),
    )
    path = tmp_path / "fleet.json"
    path.write_bytes(msgspec.json.encode(problem))
    assert solve_command(str(path), None, 0.3) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unassigned"] == []
    assert out["vehicles"] == len(out["route_vehicles"]) == len(out["routes"])
    driven_by = {job: vehicle for route, vehicle in zip(out["routes"], out["route_vehicles"], strict=True)
                 for job in route}
    assert driven_by["big"] == "van"


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
