"""PyVRP as a warm start: a relaxation of the problem it can hold, solved in a side process.

PyVRP (optional; ``pip install pyvrp``) holds capacities, windows, shifts, several
depots, maximum durations, fixed vehicle costs and, through one travel profile per
distinct set of forbidden jobs, skills and locks to a driver.  It does not hold
stop limits, ride times, lock positions or preferences: the OR-Tools model does,
and it takes PyVRP's routes only after :func:`fit_routes` has made them obey it.
When PyVRP cannot be imported, nothing here is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from delivery.routing.instance import Instance, schedule

MAX_PROFILES = 8
FORBIDDEN = 10**9


def pyvrp_available() -> bool:
    """Whether PyVRP can be imported."""
    try:
        import pyvrp  # noqa: F401
    except ImportError:
        return False
    return True


def payload(
    inst: Instance, jobs: list[int], allowed: list[tuple[int, ...]], prizes: list[int]
) -> dict[str, Any] | None:
    """Plain data for :func:`run`: the relaxation of ``jobs`` (instance job ids), or None."""
    vehicles = inst.problem.vehicles
    places = sorted({*inst.start_node, *inst.end_node})
    depot_of = {node: d for d, node in enumerate(places)}
    nodes = np.array(places + jobs, dtype=np.int64)

    can = np.zeros((len(vehicles), len(jobs)), dtype=bool)
    for k, ok in enumerate(allowed):
        can[list(ok), k] = True
    forbidden_by_vehicle = [frozenset(np.flatnonzero(~row).tolist()) for row in can]
    profiles = list(dict.fromkeys(forbidden_by_vehicle))
    if len(profiles) > MAX_PROFILES:
        return None

    groups: dict[tuple, list[int]] = {}
    for v, vehicle in enumerate(vehicles):
        key = (
            depot_of[inst.start_node[v]],
            depot_of[inst.end_node[v]],
            vehicle.capacity,
            vehicle.shift_start,
            vehicle.shift_end,
            vehicle.max_duration,
            profiles.index(forbidden_by_vehicle[v]),
        )
        groups.setdefault(key, []).append(v)

    total_boxes = int(inst.boxes[jobs].sum()) if jobs else 0
    required = total_boxes <= sum(v.capacity for v in vehicles)
    return {
        "n_depots": len(places),
        "horizon": inst.horizon,
        "distances": inst.costs[np.ix_(nodes, nodes)],
        "durations": inst.durations[np.ix_(nodes, nodes)],
        "clients": [
            (
                int(inst.boxes[j]),
                int(inst.service[j]),
                int(inst.early[j]),
                int(inst.late[j]),
                int(min(prizes[k], FORBIDDEN)),
            )
            for k, j in enumerate(jobs)
        ],
        "required": required,
        "profiles": [sorted(p) for p in profiles],
        "types": [(len(vs), *key) for key, vs in groups.items()],
        "vehicle_cost": inst.problem.objective.vehicle_cost,
        "groups": list(groups.values()),
        "jobs": jobs,
    }


def run(
    data: dict[str, Any],
    deadline: float,
    seed: int,
    max_iterations: int | None,
    on_best: Callable[[list], None] | None = None,
) -> list:
    """Solve the relaxation until ``deadline`` (``time.time()``); routes as (type, [positions]).

    ``on_best`` is called with the routes of each new feasible best solution.
    """
    from pyvrp import Client, Depot, ProblemData, VehicleType, solve
    from pyvrp.IteratedLocalSearch import IteratedLocalSearchCallbacks, IteratedLocalSearchParams
    from pyvrp.solve import SolveParams
    from pyvrp.stop import MaxIterations, MaxRuntime

    n_depots = data["n_depots"]
    depots = [Depot(location=d) for d in range(n_depots)]
    clients = [
        Client(
            location=n_depots + k,
            delivery=[boxes],
            service_duration=service,
            tw_early=early,
            tw_late=late,
            prize=prize,
            required=data["required"],
        )
        for k, (boxes, service, early, late, prize) in enumerate(data["clients"])
    ]
    types = [
        VehicleType(
            num_available=count,
            capacity=[capacity],
            start_depot=start,
            end_depot=end,
            fixed_cost=data["vehicle_cost"],
            tw_early=shift_start,
            tw_late=shift_end,
            shift_duration=data["horizon"] if max_duration is None else max_duration,
            profile=profile,
        )
        for count, start, end, capacity, shift_start, shift_end, max_duration, profile in data["types"]
    ]
    distance_matrices, duration_matrices = [], []
    for forbidden in data["profiles"]:
        distances = np.array(data["distances"], dtype=np.int64)
        durations = np.array(data["durations"], dtype=np.int64)
        if forbidden:
            cols = n_depots + np.array(forbidden, dtype=np.int64)
            distances[cols, :] = distances[:, cols] = FORBIDDEN
            durations[cols, :] = durations[:, cols] = FORBIDDEN
            np.fill_diagonal(distances, 0)
            np.fill_diagonal(durations, 0)
        distance_matrices.append(distances)
        duration_matrices.append(durations)
    locations_xy = [(0.0, 0.0)] * (n_depots + len(clients))
    from pyvrp import Location

    problem = ProblemData(
        locations=[Location(x, y) for x, y in locations_xy],
        clients=clients,
        depots=depots,
        vehicle_types=types,
        distance_matrices=distance_matrices,
        duration_matrices=duration_matrices,
    )
    if max_iterations is not None:
        stop = MaxIterations(max_iterations)
    else:
        stop = MaxRuntime(max(deadline - time.time(), 0.05))
    params = SolveParams()
    if on_best is not None:

        class Report(IteratedLocalSearchCallbacks):
            def on_best(self, best):
                if best.is_feasible():
                    on_best(_routes(best))

        params = SolveParams(ils=IteratedLocalSearchParams(callbacks=Report()))
    result = solve(problem, stop=stop, seed=seed, collect_stats=False, display=False, params=params)
    return _routes(result.best)


def _routes(solution) -> list:
    return [(route.vehicle_type(), [a.idx for a in route if a.is_client()]) for route in solution.routes()]


def to_vehicle_routes(data: dict[str, Any], routes: list) -> dict[int, list[int]]:
    """PyVRP's routes per vehicle type, handed to that type's vehicles in order."""
    free = [list(vs) for vs in data["groups"]]
    jobs = data["jobs"]
    out: dict[int, list[int]] = {}
    for vehicle_type, visits in routes:
        if not free[vehicle_type]:
            continue
        out[free[vehicle_type].pop(0)] = [jobs[k] for k in visits]
    return out


def fit_routes(inst: Instance, routes: dict[int, list[int]]) -> dict[int, list[int]]:
    """Make routes obey the full model: pinned positions first, then trim what breaks a rule."""
    jobs = inst.problem.jobs
    seen: set[int] = set()
    clean: dict[int, list[int]] = {}
    for v, route in routes.items():
        kept = []
        for j in route:
            lock = jobs[j].lock
            if j in seen or v not in inst.allowed[j] or (lock and lock.position is not None):
                continue
            seen.add(j)
            kept.append(j)
        clean[v] = kept
    pinned = sorted(
        (job.lock.position, j)
        for j, job in enumerate(jobs)
        if job.lock is not None and job.lock.position is not None and inst.allowed[j]
    )
    for position, j in pinned:
        v = inst.allowed[j][0]
        route = clean.setdefault(v, [])
        if position <= len(route):
            route.insert(position, j)
    for v, route in clean.items():
        while route and schedule(inst, v, route) is None:
            # Drop the last unpinned stop; if only pinned ones remain, drop the last.
            for k in range(len(route) - 1, -1, -1):
                lock = jobs[route[k]].lock
                if lock is None or lock.position is None:
                    del route[k]
                    break
            else:
                route.pop()
    return {v: route for v, route in clean.items() if route}


def greedy_routes(inst: Instance, jobs: list[int], allowed: list[tuple[int, ...]]) -> dict:
    """A quick first plan: each vehicle in turn takes the job it can start soonest (Solomon's
    time-oriented nearest neighbour), vectorised over the jobs; rules it does not see (ride
    times, positions, durations) are enforced afterwards by :func:`fit_routes`."""
    vehicles = inst.problem.vehicles
    todo = np.array(jobs, dtype=np.int64)
    if not len(todo):
        return {}
    can = np.zeros((len(vehicles), len(todo)), dtype=bool)
    for k, ok in enumerate(allowed):
        can[list(ok), k] = True
    free = np.ones(len(todo), dtype=bool)
    early, late = inst.early[todo], inst.late[todo]
    service, boxes = inst.service[todo], inst.boxes[todo]
    routes: dict[int, list[int]] = {}
    for v, vehicle in enumerate(vehicles):
        if not free.any():
            break
        back = inst.durations[todo, inst.end_node[v]]
        t, here, load, route = vehicle.shift_start, inst.start_node[v], 0, []
        limit = len(todo) if vehicle.max_stops is None else vehicle.max_stops
        while len(route) < limit:
            begin = np.maximum(t + inst.durations[here, todo], early)
            ok = (
                free
                & can[v]
                & (begin <= late)
                & (load + boxes <= vehicle.capacity)
                & (begin + service + back <= vehicle.shift_end)
            )
            if not ok.any():
                break
            k = int(np.argmin(np.where(ok, begin, np.iinfo(np.int64).max)))
            free[k] = False
            route.append(int(todo[k]))
            t, here, load = int(begin[k] + service[k]), int(todo[k]), load + int(boxes[k])
        if route:
            routes[v] = route
    return routes
