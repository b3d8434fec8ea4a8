"""Tiny hand-checkable problems on an explicit matrix (minutes as 60 s, metres = seconds)."""

from __future__ import annotations

from delivery.routing import Job, Matrix, Objective, Point, Problem, Vehicle, Window

DEPOT = Point(0.0, 0.0)


def line_problem(
    xs: list[float],
    *,
    vehicles: list[Vehicle] | None = None,
    jobs: list[Job] | None = None,
    objective: Objective | None = None,
) -> Problem:
    """Jobs on a line at ``xs`` (minutes from the depot at 0); travel = |a - b| minutes."""
    points = [DEPOT] + [Point(float(x), 0.0) for x in xs]
    distinct = list(dict.fromkeys(points))
    seconds = [[round(abs(a.lat - b.lat) * 60) for b in distinct] for a in distinct]
    if jobs is None:
        jobs = [Job(id=f"s{k + 1}", point=Point(float(x), 0.0)) for k, x in enumerate(xs)]
    if vehicles is None:
        vehicles = [Vehicle(id="d1", start=DEPOT, capacity=100)]
    return Problem(
        jobs=tuple(jobs),
        vehicles=tuple(vehicles),
        matrix=Matrix(points=tuple(distinct), durations=seconds, distances=seconds),
        objective=objective or Objective(),
    )


def at(x: float) -> Point:
    return Point(float(x), 0.0)


def window(start_min: int, end_min: int) -> Window:
    return Window(start_min * 60, end_min * 60)
