"""Re-checking a stored plan independently: the planner's checker on the times written to the rows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import Plan, Route, Stop, StopStatus
from delivery.plans import planning
from delivery.platform.settings import Settings
from delivery.routing import Route as PlannedRoute
from delivery.routing import Solution, Unassigned, Violation, Visit, check


def stored_check(db: Session, plan: Plan, settings: Settings) -> tuple[list[Violation], list[Stop]]:
    """The checker's findings on the stored routes (times as written), and every stop of the day."""
    routes = db.scalars(select(Route).where(Route.plan_id == plan.id)).unique().all()
    built = planning.build(db, plan, settings, driver_ids=[r.driver_id for r in routes])
    matrix = planning.matrix_for(built.problem)
    row = matrix.index()
    jobs = {j.id: j for j in built.problem.jobs}
    vehicles = {v.id: v for v in built.problem.vehicles}
    planned = []
    for route in routes:
        stops = sorted((s for s in built.stops.values() if s.route_id == route.id), key=lambda s: s.seq)
        if not stops:
            continue
        vehicle = vehicles[str(route.driver_id)]
        place, clock, visits, travel = vehicle.start, route.planned_start, [], 0
        for stop in stops:
            job = jobs[str(stop.id)]
            leg = int(matrix.durations[row[place], row[job.point]])
            travel += leg
            arrival = clock + leg
            visits.append(Visit(job=job.id, arrival=arrival, waiting=stop.eta - arrival, start=stop.eta,
                                departure=stop.departure))
            place, clock = job.point, stop.departure
        travel += int(matrix.durations[row[place], row[vehicle.end_point]])
        planned.append(PlannedRoute(vehicle=vehicle.id, visits=tuple(visits), start=route.planned_start,
                                    end=route.planned_end, distance=route.distance_m,
                                    duration=route.duration_s, travel=travel, load=route.load_boxes))
    left = [Unassigned(job=str(s.id), reason=s.unassigned_reason, detail="")  # type: ignore[arg-type]
            for s in built.stops.values() if s.route_id is None]
    found = check(built.problem, Solution(routes=tuple(planned), unassigned=tuple(left)), matrix)
    stops = db.scalars(select(Stop).where(Stop.plan_id == plan.id, Stop.status != StopStatus.removed)).all()
    return found, list(stops)
