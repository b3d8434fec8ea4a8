"""``delivery solve FILE``: solve a routing problem file and print the plan as JSON.

Formats:

* ``solomon``: the classic Solomon VRPTW text format.  Jobs are customer numbers,
  the distance is Euclidean and unrounded (``distance_trunc1`` adds the
  literature's one-decimal truncation per arc).
* ``json``: a :class:`delivery.routing.model.Problem` encoded as JSON (msgspec), e.g.::

    {"jobs": [{"id": "s1", "point": [37.75, -122.18], "boxes": 2, "service": 300,
               "window": [36000, 43200], "priority": 0, "skills": ["lang:es"],
               "preferred_vehicle": "d1", "lock": {"vehicle": "d1", "position": 0}}],
     "vehicles": [{"id": "d1", "start": [37.76, -122.19], "end": [37.76, -122.19],
                   "capacity": 10, "shift_start": 32400, "shift_end": 46800,
                   "skills": ["van", "lang:es"], "max_duration": 14400,
                   "max_stops": 12, "max_ride": 7200}],
     "matrix": null,
     "travel": {"method": "great_circle", "circuity": 1.3, "speed_kmh": 30.0},
     "objective": {"cost": "duration", "balance": 0, "preference": 300}}

  Only ``id`` and ``point`` of a job, and ``id``, ``start`` and ``capacity`` of a
  vehicle are required; times are seconds since midnight.  ``matrix`` (optional)
  is ``{"points": [[lat, lon], ...], "durations": [[s]], "distances": [[m]]}``.
  A file with ``"format": "produce-box-vrptw/1"`` (the benchmark's generated
  days) is read too.  The printed distance is in metres.

Output: ``{"routes": [[job ids in visit order], ...], "route_vehicles": [vehicle id of
each route], "distance": number, "vehicles": int, "unassigned": [job ids], "seconds":
number}`` plus details
(``travel``, ``reasons``, ``first_solution_seconds``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import msgspec

from delivery.routing import pbox, solomon
from delivery.routing.matrix import MatrixError
from delivery.routing.model import Problem
from delivery.routing.solver import solve


class InputError(Exception):
    """The problem file cannot be used; the message says what to fix."""


def load(path: str, fmt: str | None) -> tuple[Problem, list | None]:
    """The problem in ``path``; for Solomon files also the coordinates by customer number."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{path}: no such file")
    if fmt is None:
        fmt = "json" if file.suffix.lower() == ".json" else "solomon"
    if fmt not in ("json", "solomon"):
        raise InputError(f"unknown format {fmt!r}: use solomon or json")
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the file ({exc})") from None
    if fmt == "solomon":
        try:
            return solomon.parse(text, file.name)
        except solomon.FormatError as exc:
            raise InputError(str(exc)) from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(raw, dict) and raw.get("format") == pbox.FORMAT:
        try:
            return pbox.to_problem(raw), None
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: bad produce-box day ({exc!r})") from None
    try:
        return msgspec.json.decode(text.encode(), type=Problem), None
    except msgspec.ValidationError as exc:
        raise InputError(f"{path}: not a routing problem: {exc}") from None


def solve_command(path: str, fmt: str | None, time_limit: float) -> int:
    """Solve ``path`` and print the plan as JSON; 0 on success, 2 on bad input."""
    began = time.perf_counter()
    try:
        if time_limit <= 0:
            raise InputError("--time-limit must be a positive number of seconds")
        problem, coords = load(path, fmt)
        solution = solve(problem, time_limit=time_limit)
    except (InputError, MatrixError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    routes = [[visit.job for visit in route.visits] for route in solution.routes]
    unassigned = [u.job for u in solution.unassigned]
    out: dict = {}
    if coords is not None:
        routes = [[int(job) for job in route] for route in routes]
        unassigned = [int(job) for job in unassigned]
        out["distance"] = solomon.route_distance(routes, coords)
        out["distance_trunc1"] = round(solomon.route_distance(routes, coords, trunc1=True), 1)
    else:
        out["distance"] = solution.distance
        out["travel"] = solution.travel
    out = {
        "routes": routes,
        "route_vehicles": [route.vehicle for route in solution.routes],
        "distance": out.pop("distance"),
        "vehicles": len(routes),
        "unassigned": unassigned,
        "seconds": round(time.perf_counter() - began, 3),
        **out,
        "reasons": {u.job: str(u.reason) for u in solution.unassigned},
        "first_solution_seconds": solution.stats.first_solution_seconds,
    }
    print(json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m delivery.routing.cli FILE [--format F] [--time-limit S]`` (until wired in)."""
    import argparse

    parser = argparse.ArgumentParser(prog="delivery solve")
    parser.add_argument("file")
    parser.add_argument("--format", choices=["solomon", "json"])
    parser.add_argument("--time-limit", type=float, default=10.0)
    args = parser.parse_args(argv)
    return solve_command(args.file, args.format, args.time_limit)


if __name__ == "__main__":
    raise SystemExit(main())
