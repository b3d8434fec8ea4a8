"""Solomon (1987) VRPTW text files as Problems, and their distances.

Jobs are numbered by customer number (``"1"`` … ``"100"``); node 0 is the depot.
Times and distances are Euclidean, scaled by :data:`SCALE` to whole numbers:
distances rounded, travel times rounded **up**, so a plan feasible here is
feasible with exact real-valued travel times.  The objective is distance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from delivery.routing.matrix import euclidean
from delivery.routing.model import Job, Matrix, Objective, Point, Problem, Vehicle, Window

SCALE = 1000


class FormatError(ValueError):
    """The file is not a Solomon instance."""


def parse(text: str, name: str = "instance") -> tuple[Problem, list[tuple[float, float]]]:
    """A Problem from Solomon text, and the coordinates by customer number (0 = depot)."""
    lines = [line.split() for line in text.splitlines()]
    try:
        at = next(i for i, line in enumerate(lines) if line[:1] == ["NUMBER"])
        count, capacity = (int(x) for x in lines[at + 1][:2])
        at = next(i for i, line in enumerate(lines) if line[:1] == ["CUSTOMER"])
    except (StopIteration, ValueError, IndexError):
        raise FormatError(
            f"{name}: expected a Solomon file (a VEHICLE section with NUMBER and CAPACITY, "
            "then a CUSTOMER table)"
        ) from None
    rows = []
    for line in lines[at + 1 :]:
        if not line or not line[0].lstrip("-").isdigit():
            continue
        try:
            number, x, y, demand, ready, due, service = (float(v) for v in line[:7])
        except ValueError:
            raise FormatError(f"{name}: bad customer line {' '.join(line)!r}") from None
        if len(line) < 7:
            raise FormatError(f"{name}: customer line needs 7 numbers: {' '.join(line)!r}")
        rows.append((int(number), x, y, int(demand), ready, due, service))
    if len(rows) < 2 or rows[0][0] != 0:
        raise FormatError(f"{name}: the customer table must start with the depot (number 0)")
    coords = [(x, y) for _, x, y, *_ in rows]
    points = [Point(x, y) for x, y in coords]
    distinct = list(dict.fromkeys(points))
    exact = euclidean(distinct)
    matrix = Matrix(
        points=tuple(distinct),
        durations=np.ceil(exact * SCALE - 1e-6).astype(np.int64).tolist(),
        distances=np.rint(exact * SCALE).astype(np.int64).tolist(),
    )
    depot = rows[0]
    horizon = round(depot[5] * SCALE)
    jobs = tuple(
        Job(
            id=str(number),
            point=Point(x, y),
            boxes=demand,
            service=round(service * SCALE),
            window=Window(round(ready * SCALE), round(due * SCALE)),
        )
        for number, x, y, demand, ready, due, service in rows[1:]
    )
    vehicles = tuple(
        Vehicle(
            id=f"v{k + 1}",
            start=points[0],
            capacity=capacity,
            shift_start=round(depot[4] * SCALE),
            shift_end=horizon,
        )
        for k in range(count)
    )
    problem = Problem(
        jobs=jobs,
        vehicles=vehicles,
        matrix=matrix,
        objective=Objective(cost="distance", depart_late=False),
    )
    return problem, coords


def read(path: str | Path) -> tuple[Problem, list[tuple[float, float]]]:
    """Read a Solomon file."""
    path = Path(path)
    return parse(path.read_text(), path.name)


def route_distance(
    routes: Iterable[list[int]], coords: list[tuple[float, float]], trunc1: bool = False
) -> float:
    """Total Euclidean length of routes of customer numbers from and back to the depot.

    ``trunc1`` truncates every arc to one decimal (the DIMACS/CVRPLIB convention).
    """
    total = 0.0
    for route in routes:
        path = [0, *route, 0]
        for a, b in itertools.pairwise(path):
            d = math.dist(coords[a], coords[b])
            total += math.floor(d * 10) / 10 if trunc1 else d
    return total
