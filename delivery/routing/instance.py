"""A Problem compiled to arrays, and the schedule of a route (shared by solver and warm start).

Nodes: jobs first (node ``j`` is ``problem.jobs[j]``), then the distinct start and
end places of the vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from delivery.routing.matrix import TravelMatrix, build_matrix
from delivery.routing.model import DAY, Point, Problem, Route, Visit


class ProblemError(ValueError):
    """The problem is inconsistent (unknown ids, points missing from the matrix, ...)."""


@dataclass(frozen=True, slots=True, eq=False)
class Instance:
    """Arrays the solver works on; see the module docstring for the node order."""

    problem: Problem
    n_jobs: int
    durations: np.ndarray  # node x node, seconds
    distances: np.ndarray  # node x node, metres
    costs: np.ndarray  # node x node, the objective's arc cost
    service: np.ndarray  # per node
    boxes: np.ndarray  # per node
    early: np.ndarray  # per node: earliest service start
    late: np.ndarray  # per node: latest service start
    start_node: tuple[int, ...]  # per vehicle
    end_node: tuple[int, ...]  # per vehicle
    allowed: tuple[tuple[int, ...], ...]  # per job: the vehicles that may serve it
    vehicle_index: dict[str, int]
    job_index: dict[str, int]
    horizon: int  # a bound on every time in the problem

    @property
    def n_nodes(self) -> int:
        return len(self.service)


def compile_problem(problem: Problem, matrix: TravelMatrix | None = None) -> Instance:
    """Check ids and points, build or look up the matrix, and lay out the nodes."""
    jobs, vehicles = problem.jobs, problem.vehicles
    job_index = {job.id: j for j, job in enumerate(jobs)}
    if len(job_index) != len(jobs):
        raise ProblemError("job ids must be unique")
    vehicle_index = {vehicle.id: v for v, vehicle in enumerate(vehicles)}
    if len(vehicle_index) != len(vehicles):
        raise ProblemError("vehicle ids must be unique")
    for job in jobs:
        if job.boxes < 0 or job.service < 0:
            raise ProblemError(f"job {job.id}: boxes and service must not be negative")
        if job.window is not None and job.window.earliest > job.window.latest:
            raise ProblemError(f"job {job.id}: window earliest is after latest")
    for vehicle in vehicles:
        if vehicle.capacity < 0 or vehicle.shift_start > vehicle.shift_end:
            raise ProblemError(f"vehicle {vehicle.id}: bad capacity or shift")

    places: dict[Point, int] = {}
    for vehicle in vehicles:
        for point in (vehicle.start, vehicle.end_point):
            places.setdefault(point, len(jobs) + len(places))
    node_points = [job.point for job in jobs] + list(places)

    if matrix is None and problem.matrix is not None:
        matrix = TravelMatrix.from_matrix(problem.matrix)
    if matrix is None:
        distinct = list(dict.fromkeys(node_points))
        matrix = build_matrix(distinct, problem.travel)
    row = matrix.index()
    try:
        rows = np.array([row[point] for point in node_points], dtype=np.int64)
    except KeyError as exc:
        raise ProblemError(f"point {exc.args[0]} is not in the travel matrix") from exc
    durations = matrix.durations[np.ix_(rows, rows)]
    distances = matrix.distances[np.ix_(rows, rows)]
    if problem.objective.cost == "duration":
        costs = durations
    elif problem.objective.cost == "distance":
        costs = distances
    else:
        raise ProblemError("objective cost must be 'duration' or 'distance'")

    n = len(node_points)
    horizon = max(
        [2 * DAY]
        + [v.shift_end for v in vehicles]
        + [job.window.latest for job in jobs if job.window is not None]
    )
    service = np.zeros(n, dtype=np.int64)
    boxes = np.zeros(n, dtype=np.int64)
    early = np.zeros(n, dtype=np.int64)
    late = np.full(n, horizon, dtype=np.int64)
    for j, job in enumerate(jobs):
        service[j] = job.service
        boxes[j] = job.boxes
        if job.window is not None:
            early[j] = max(job.window.earliest, 0)
            late[j] = job.window.latest

    allowed = []
    for job in jobs:
        ok = [v for v, vehicle in enumerate(vehicles) if job.skills <= vehicle.skills]
        if job.lock is not None:
            locked = vehicle_index.get(job.lock.vehicle)
            ok = [v for v in ok if v == locked]
        allowed.append(tuple(ok))

    return Instance(
        problem=problem,
        n_jobs=len(jobs),
        durations=durations,
        distances=distances,
        costs=costs,
        service=service,
        boxes=boxes,
        early=early,
        late=late,
        start_node=tuple(places[v.start] for v in vehicles),
        end_node=tuple(places[v.end_point] for v in vehicles),
        allowed=tuple(allowed),
        vehicle_index=vehicle_index,
        job_index=job_index,
        horizon=horizon,
    )


def schedule(
    inst: Instance,
    v: int,
    route: list[int],
    depart_late: bool = True,
    *,
    positions: bool = True,
) -> Route | None:
    """The timed route of vehicle ``v`` through jobs ``route``, or None if it breaks a rule.

    Service starts as early as possible after a departure chosen so that the
    route fits: with ``depart_late``, the driver leaves as late as the plan allows
    without returning later (waiting at doors turns into a later departure);
    otherwise at the shift start, or as late as the duration and ride limits need.
    ``positions=False`` ignores the positions of locked jobs.
    """
    vehicle = inst.problem.vehicles[v]
    if any(v not in inst.allowed[j] for j in route):
        return None
    if route and int(inst.boxes[route].sum()) > vehicle.capacity:
        return None
    if vehicle.max_stops is not None and len(route) > vehicle.max_stops:
        return None
    for pos, j in enumerate(route if positions else ()):
        lock = inst.problem.jobs[j].lock
        if lock is not None and lock.position is not None and lock.position != pos:
            return None
    dur, service, early, late = inst.durations, inst.service, inst.early, inst.late
    s0 = vehicle.shift_start

    # Earliest schedule, and how far the departure may slip (Savelsbergh's forward slack).
    t, prev, waited = s0, inst.start_node[v], 0
    slip = inst.horizon
    ride_need = 0  # the departure delay the ride limit needs
    for j in route:
        arrival = t + int(dur[prev, j])
        begin = max(arrival, int(early[j]))
        if begin > late[j]:
            return None
        slip = min(slip, int(late[j]) - arrival + waited)
        waited += begin - arrival
        if vehicle.max_ride is not None:
            need = begin - s0 - vehicle.max_ride
            if need > waited:
                return None
            ride_need = max(ride_need, need)
        t = begin + int(service[j])
        prev = j
    back = t + int(dur[prev, inst.end_node[v]]) if route else s0
    slip = min(slip, vehicle.shift_end - back + waited)
    if slip < 0:
        return None
    need = ride_need
    if vehicle.max_duration is not None:
        excess = back - s0 - vehicle.max_duration
        if excess > waited:
            return None
        need = max(need, excess)
    upper = min(slip, waited)
    if need > upper:
        return None
    delay = upper if depart_late else need

    # The schedule itself.
    start = s0 + delay
    t, prev = start, inst.start_node[v]
    visits = []
    travel = distance = 0
    for j in route:
        travel += int(dur[prev, j])
        distance += int(inst.distances[prev, j])
        arrival = t + int(dur[prev, j])
        begin = max(arrival, int(early[j]))
        visits.append(
            Visit(
                job=inst.problem.jobs[j].id,
                arrival=arrival,
                waiting=begin - arrival,
                start=begin,
                departure=begin + int(service[j]),
            )
        )
        t = begin + int(service[j])
        prev = j
    if route:
        end_node = inst.end_node[v]
        travel += int(dur[prev, end_node])
        distance += int(inst.distances[prev, end_node])
        end = t + int(dur[prev, end_node])
    else:
        end = start
    return Route(
        vehicle=vehicle.id,
        visits=tuple(visits),
        start=start,
        end=end,
        distance=distance,
        duration=end - start,
        travel=travel,
        load=int(inst.boxes[route].sum()) if route else 0,
    )
