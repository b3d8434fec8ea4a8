"""An independent checker: recompute every route of a Solution from the Problem alone.

It shares no code with the solver beyond the data types and the travel matrix;
it verifies the reported times rather than reconstructing its own schedule, so a
plan that says a driver arrives at 10:05 really can arrive then.
"""

from __future__ import annotations

import msgspec

from delivery.routing.matrix import TravelMatrix, build_matrix
from delivery.routing.model import Problem, Solution


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    """One broken rule: what kind, where, and a sentence for people."""

    kind: str
    vehicle: str | None = None
    job: str | None = None
    message: str = ""


def check(problem: Problem, solution: Solution, matrix: TravelMatrix | None = None) -> list[Violation]:
    """Every rule the solution breaks (an empty list means it is feasible)."""
    if matrix is None:
        if problem.matrix is not None:
            matrix = TravelMatrix.from_matrix(problem.matrix)
        else:
            points = list(
                dict.fromkeys(
                    [job.point for job in problem.jobs]
                    + [p for v in problem.vehicles for p in (v.start, v.end_point)]
                )
            )
            matrix = build_matrix(points, problem.travel)
    row = matrix.index()
    jobs = {job.id: job for job in problem.jobs}
    vehicles = {vehicle.id: vehicle for vehicle in problem.vehicles}
    out: list[Violation] = []

    def bad(kind: str, message: str, vehicle: str | None = None, job: str | None = None) -> None:
        out.append(Violation(kind=kind, vehicle=vehicle, job=job, message=message))

    def travel(a, b) -> tuple[int, int]:
        i, k = row[a], row[b]
        return int(matrix.durations[i, k]), int(matrix.distances[i, k])

    seen: dict[str, int] = {}
    used: set[str] = set()
    for route in solution.routes:
        vid = route.vehicle
        vehicle = vehicles.get(vid)
        if vehicle is None:
            bad("unknown_vehicle", f"route for unknown vehicle {vid}", vid)
            continue
        if vid in used:
            bad("vehicle_twice", f"vehicle {vid} has two routes", vid)
        used.add(vid)
        if vehicle.max_stops is not None and len(route.visits) > vehicle.max_stops:
            bad("max_stops", f"{len(route.visits)} stops > {vehicle.max_stops}", vid)
        if route.start < vehicle.shift_start:
            bad("shift", f"leaves at {route.start} before the shift starts", vid)
        place, clock = vehicle.start, route.start
        load = distance = travel_time = 0
        for position, visit in enumerate(route.visits):
            job = jobs.get(visit.job)
            if job is None:
                bad("unknown_job", f"visit to unknown job {visit.job}", vid, visit.job)
                continue
            seen[job.id] = seen.get(job.id, 0) + 1
            seconds, metres = travel(place, job.point)
            travel_time += seconds
            distance += metres
            if visit.arrival != clock + seconds:
                bad("times", f"arrival {visit.arrival} != {clock + seconds}", vid, job.id)
            if visit.waiting < 0 or visit.start != visit.arrival + visit.waiting:
                bad("times", "service start is not arrival plus waiting", vid, job.id)
            if visit.departure != visit.start + job.service:
                bad("times", "departure is not service start plus service time", vid, job.id)
            if job.window is not None and not (job.window.earliest <= visit.start <= job.window.latest):
                bad("window", f"service at {visit.start} outside {job.window}", vid, job.id)
            if not job.skills <= vehicle.skills:
                bad("skill", f"needs {sorted(job.skills - vehicle.skills)}", vid, job.id)
            if job.lock is not None:
                if job.lock.vehicle != vid:
                    bad("lock", f"locked to {job.lock.vehicle}", vid, job.id)
                elif job.lock.position is not None and job.lock.position != position:
                    bad("lock", f"locked at position {job.lock.position}, is {position}", vid, job.id)
            if vehicle.max_ride is not None and visit.start - route.start > vehicle.max_ride:
                bad("ride", f"produce rides {visit.start - route.start} s", vid, job.id)
            load += job.boxes
            place, clock = job.point, visit.departure
        seconds, metres = travel(place, vehicle.end_point)
        if route.visits:
            travel_time += seconds
            distance += metres
            clock += seconds
        if route.end != clock:
            bad("times", f"returns at {route.end}, recomputed {clock}", vid)
        if route.end > vehicle.shift_end:
            bad("shift", f"returns at {route.end} after the shift ends", vid)
        if vehicle.max_duration is not None and route.end - route.start > vehicle.max_duration:
            bad("duration", f"route lasts {route.end - route.start} s", vid)
        if route.duration != route.end - route.start:
            bad("totals", "duration is not end minus start", vid)
        if load > vehicle.capacity:
            bad("capacity", f"{load} boxes > capacity {vehicle.capacity}", vid)
        if (route.load, route.distance, route.travel) != (load, distance, travel_time):
            bad("totals", "load, distance or travel does not match the visits", vid)

    for job_id, count in seen.items():
        if count > 1:
            bad("duplicate", f"visited {count} times", job=job_id)
    left = [u.job for u in solution.unassigned]
    for job_id in left:
        if job_id in seen:
            bad("duplicate", "both routed and unassigned", job=job_id)
        if job_id not in jobs:
            bad("unknown_job", "unassigned job is not in the problem", job=job_id)
    if len(set(left)) != len(left):
        bad("duplicate", "a job is listed twice as unassigned")
    for job_id in jobs:
        if job_id not in seen and job_id not in left:
            bad("missing", "neither routed nor unassigned", job=job_id)
    return out
