"""Planning a delivery day: the one place where database rows become a routing Problem and back.

- `build()` maps the day's Stops to routing Jobs and the drivers' Shifts to Vehicles.
- `apply_solution()` writes a Solution back: Routes per used driver, Stop order and times,
  the planner's reason for each stop left out.
- `timing()` recomputes the times of the current routes with the same travel model and re-checks
  the whole day with the planner's independent checker; `write_times()` writes them (after each edit).
- `enqueue()` / `cancel()` create and stop solver runs (PlanJob rows, each carried by a plan_solve
  job that a `delivery worker` runs: `delivery.plans.solve_job`); `plan_now()` solves in this
  process (the CLI).

Services do not commit; callers do.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    Depot,
    Driver,
    Organization,
    Patient,
    Plan,
    PlanJob,
    PlanJobStatus,
    PlanStatus,
    Route,
    RouteLink,
    Shift,
    SpreadWork,
    Stop,
    StopStatus,
    utcnow,
)
from delivery.plans import day as days
from delivery.platform import jobs as job_table
from delivery.platform.db import Database
from delivery.platform.errors import ConflictError, FieldError
from delivery.platform.settings import Settings
from delivery.routing import (
    Job,
    Lock,
    Objective,
    Point,
    Problem,
    Solution,
    Travel,
    Vehicle,
    Violation,
    Window,
    build_matrix,
    check,
    solve,
    travel_from_env,
)
from delivery.routing import Route as PlannedRoute
from delivery.routing import Visit as PlannedVisit
from delivery.routing.matrix import TravelMatrix

log = logging.getLogger("delivery.plans.planning")

MIN_TIME_LIMIT_S = 1.0
MAX_TIME_LIMIT_S = 300.0  # R6.4: a solve never runs longer than this, whatever is asked
DEFAULT_TIME_LIMIT_S = 20.0
# What "spread work across volunteers" costs in the objective (arc cost: travel seconds): per stop a
# driver is below or above the fair share, and per second a route lasts beyond its fair share of hours.
# Every penalty is a price, so the extra driving a plan takes for fairness never exceeds what it saves.
SPREAD = {SpreadWork.off: (0, 0), SpreadWork.some: (60, 1), SpreadWork.strong: (300, 2)}
PREFERENCE_DAYS = 90  # how far back "the driver who served this order last time" is looked up
ACTIVE_JOBS = (PlanJobStatus.queued, PlanJobStatus.running)
SOLVE_KIND = "plan_solve"
SOLVE_MAX_ATTEMPTS = 2  # a worker that dies mid-solve gets one more go, on another worker


class PlanBusy(ConflictError):
    """The day is already being planned (R6.4: one solve per day at a time)."""

    default_code = "plan_busy"


class PlanningError(FieldError):
    """The day cannot be planned as asked; the message says what to fix."""

    default_code = "planning_refused"


def travel(settings: Settings) -> Travel:
    """The travel model of the settings (DELIVERY_ROUTING_MATRIX, DELIVERY_OSRM_URL)."""
    return travel_from_env({"DELIVERY_ROUTING_MATRIX": settings.routing_matrix,
                            "DELIVERY_OSRM_URL": settings.osrm_url})


def clamp_time_limit(seconds: float | None) -> float:
    if seconds is None:
        return DEFAULT_TIME_LIMIT_S
    return min(max(float(seconds), MIN_TIME_LIMIT_S), MAX_TIME_LIMIT_S)


# --- rows -> Problem ----------------------------------------------------------------------------


@dataclass
class Built:
    """A Problem and the rows behind its ids."""

    problem: Problem
    stops: dict[str, Stop]  # job id -> Stop
    shifts: dict[str, Shift]  # vehicle id -> Shift
    left_out: list[Stop] = field(default_factory=list)  # stops that cannot be jobs (no location)

    def driver_id(self, vehicle: str) -> int:
        return int(vehicle)


def _point(lat: float, lon: float) -> Point:
    return Point(round(lat, 6), round(lon, 6))


def vehicle_for(shift: Shift, depots: dict[int, Depot], fallback: Depot | None) -> Vehicle:
    driver = shift.driver
    home = _point(driver.home_lat, driver.home_lon) if driver.home_lat is not None and \
        driver.home_lon is not None else None
    start_depot = depots.get(shift.start_depot_id or -1)
    start = (_point(start_depot.lat, start_depot.lon) if start_depot else home
             or (_point(fallback.lat, fallback.lon) if fallback else None))
    if start is None:
        raise PlanningError("The program has no depot: add one so drivers have somewhere to load.")
    end_depot = depots.get(shift.end_depot_id or -1)
    end = _point(end_depot.lat, end_depot.lon) if end_depot else home or start
    skills = {f"lang:{lang}" for lang in driver.languages}
    if driver.carries_upstairs:
        skills.add("upstairs")
    if driver.vehicle == "van":
        skills.add("van")
    return Vehicle(id=str(driver.id), start=start, end=end, capacity=driver.capacity_boxes,
                   shift_start=days.seconds(shift.start) or 0, shift_end=days.seconds(shift.end) or 0,
                   skills=frozenset(skills))


def job_for(stop: Stop, food_bank: Organization, *, priority: int = 0, lock: Lock | None = None,
            preferred: str | None = None) -> Job:
    patient: Patient = stop.patient
    skills = set()
    if food_bank.requires_language_match and patient.language and patient.language != "en":
        skills.add(f"lang:{patient.language}")
    # The program's choice: a stop above the first floor without a lift needs a driver who carries upstairs.
    if food_bank.require_upstairs and patient.floor > 1 and not patient.elevator:
        skills.add("upstairs")
    window = None
    if stop.window_start is not None or stop.window_end is not None:
        window = Window(stop.window_start or 0, stop.window_end if stop.window_end is not None else 86399)
    return Job(id=str(stop.id), point=_point(patient.lat, patient.lon), boxes=stop.boxes,
               service=stop.service_s, window=window, priority=max(priority, 0),
               skills=frozenset(skills), preferred_vehicle=preferred, lock=lock)


def day_shifts(db: Session, plan: Plan, driver_ids: Iterable[int] | None = None) -> list[Shift]:
    query = (select(Shift).join(Driver, Driver.id == Shift.driver_id)
             .where(Driver.food_bank_id == plan.food_bank_id, Driver.is_active.is_(True),
                    Shift.date == plan.date).order_by(Shift.start, Shift.driver_id))
    wanted = None if driver_ids is None else {int(d) for d in driver_ids}
    if wanted is not None:
        query = query.where(Shift.driver_id.in_(wanted))
    return list(db.scalars(query).unique())


def plan_drivers(db: Session, plan: Plan) -> list[int]:
    """The drivers of the day: those with a route, plus those picked for the latest run."""
    ids = set(db.scalars(select(Route.driver_id).where(Route.plan_id == plan.id)))
    job = db.scalar(select(PlanJob).where(PlanJob.plan_id == plan.id).order_by(PlanJob.id.desc()).limit(1))
    if job is not None and job.driver_ids:
        ids |= {int(d) for d in job.driver_ids}
    return sorted(ids)


def build(db: Session, plan: Plan, settings: Settings, *, driver_ids: Iterable[int] | None = None,
          keep_locks: bool = True, routed_only: bool = False) -> Built:
    """The day as a routing Problem: a Job per plannable Stop, a Vehicle per Shift."""
    from delivery.models import Order

    food_bank = db.get(Organization, plan.food_bank_id)
    assert food_bank is not None
    rows = db.execute(select(Stop, Order.priority).join(Order, Order.id == Stop.order_id)
                      .where(Stop.plan_id == plan.id, Stop.status != StopStatus.removed)
                      .order_by(Stop.id)).unique().all()
    routes = {r.id: r for r in db.scalars(select(Route).where(Route.plan_id == plan.id)).unique()}
    depots = {d.id: d for d in db.scalars(select(Depot).where(Depot.organization_id == food_bank.id)
                                            .order_by(Depot.id))}
    fallback = next(iter(depots.values()), None)
    shifts = day_shifts(db, plan, driver_ids)
    on_routes = {r.driver_id for r in routes.values()}
    if routed_only:
        shifts = [s for s in shifts if s.driver_id in on_routes]
    # A driver already on the day (planned, or added by the coordinator) keeps a stop when re-planning.
    vehicles = [msgspec.structs.replace(vehicle_for(s, depots, fallback), min_stops=1)
                if s.driver_id in on_routes else vehicle_for(s, depots, fallback) for s in shifts]

    order_ids = [stop.order_id for stop, _ in rows]
    preferred: dict[int, int] = {}
    if order_ids:
        history = db.execute(
            select(Stop.order_id, Route.driver_id).join(Route, Route.id == Stop.route_id)
            .where(Stop.order_id.in_(order_ids), Stop.date < plan.date,
                   Stop.date >= plan.date - dt.timedelta(days=PREFERENCE_DAYS))
            .order_by(Stop.date)).all()
        preferred = {order_id: driver_id for order_id, driver_id in history}
    if plan.published_version is not None:
        # Drivers already have this day's routes: re-planning keeps each stop with its driver unless
        # moving it saves more than the preference cost, so routes that need no change stay as given.
        preferred |= {stop.order_id: routes[stop.route_id].driver_id for stop, _ in rows
                      if stop.route_id in routes}
    present = {v.id for v in vehicles}

    jobs, by_id, left_out = [], {}, []
    for stop, priority in rows:
        if not days.has_point(stop.patient):
            left_out.append(stop)
            continue
        if routed_only and stop.route_id is None:
            continue
        lock = None
        route = routes.get(stop.route_id or -1)
        if keep_locks and stop.locked and route is not None:
            lock = Lock(vehicle=str(route.driver_id),
                        position=(stop.seq - 1) if stop.lock_position and stop.seq else None)
        wish = preferred.get(stop.order_id)
        job = job_for(stop, food_bank, priority=priority, lock=lock,
                      preferred=str(wish) if wish is not None and str(wish) in present else None)
        jobs.append(job)
        by_id[job.id] = stop
    spread, spread_hours = SPREAD.get(SpreadWork(food_bank.spread_work), SPREAD[SpreadWork.some])
    problem = Problem(jobs=tuple(jobs), vehicles=tuple(vehicles), travel=travel(settings),
                      objective=Objective(spread=spread, spread_hours=spread_hours))
    return Built(problem=problem, stops=by_id, shifts={str(s.driver_id): s for s in shifts},
                 left_out=left_out)


def matrix_for(problem: Problem) -> TravelMatrix:
    points = list(dict.fromkeys([j.point for j in problem.jobs]
                                + [p for v in problem.vehicles for p in (v.start, v.end_point)]))
    return build_matrix(points, problem.travel)


# --- times of a route -----------------------------------------------------------------------


def timed_route(vehicle: Vehicle, jobs: list[Job], matrix: TravelMatrix,
                row: dict[Point, int]) -> PlannedRoute:
    """A route's times with the planner's travel model: leave as late as the first window allows,
    wait at a door until its window opens. The checker recomputes these exactly."""

    def leg(a: Point, b: Point) -> tuple[int, int]:
        i, k = row[a], row[b]
        return int(matrix.durations[i, k]), int(matrix.distances[i, k])

    begin = vehicle.shift_start
    if not jobs:
        return PlannedRoute(vehicle=vehicle.id, visits=(), start=begin, end=begin, distance=0,
                            duration=0, travel=0, load=0)
    first = jobs[0]
    if first.window is not None:
        begin = max(begin, first.window.earliest - leg(vehicle.start, first.point)[0])
    place, clock_s = vehicle.start, begin
    visits, distance, travel_s, load = [], 0, 0, 0
    for job in jobs:
        seconds, metres = leg(place, job.point)
        arrival = clock_s + seconds
        start = max(arrival, job.window.earliest) if job.window is not None else arrival
        departure = start + job.service
        visits.append(PlannedVisit(job=job.id, arrival=arrival, waiting=start - arrival, start=start,
                                   departure=departure))
        distance += metres
        travel_s += seconds
        load += job.boxes
        place, clock_s = job.point, departure
    seconds, metres = leg(place, vehicle.end_point)
    end = clock_s + seconds
    return PlannedRoute(vehicle=vehicle.id, visits=tuple(visits), start=begin, end=end,
                        distance=distance + metres, duration=end - begin, travel=travel_s + seconds,
                        load=load)


def current_solution(db: Session, plan: Plan, built: Built, matrix: TravelMatrix) -> Solution:
    """The plan as it stands in the database, with its times recomputed."""
    row = matrix.index()
    jobs = {j.id: j for j in built.problem.jobs}
    vehicles = {v.id: v for v in built.problem.vehicles}
    by_route: dict[int, list[Stop]] = {}
    for stop in built.stops.values():
        if stop.route_id is not None:
            by_route.setdefault(stop.route_id, []).append(stop)
    routes = []
    for route in db.scalars(select(Route).where(Route.plan_id == plan.id).order_by(Route.id)).unique():
        vehicle = vehicles.get(str(route.driver_id))
        if vehicle is None:
            continue
        ordered = sorted(by_route.get(route.id, []), key=lambda s: (s.seq or 0, s.id))
        routes.append(timed_route(vehicle, [jobs[str(s.id)] for s in ordered], matrix, row))
    return Solution(routes=tuple(routes))


# --- Solution -> rows ---------------------------------------------------------------------------


def _write_route(route: Route, planned: PlannedRoute, stops: dict[str, Stop]) -> None:
    route.planned_start = planned.start if planned.visits else None
    route.planned_end = planned.end if planned.visits else None
    route.distance_m, route.duration_s, route.load_boxes = planned.distance, planned.duration, planned.load
    for seq, visit in enumerate(planned.visits, start=1):
        stop = stops[visit.job]
        stop.route_id, stop.seq, stop.eta, stop.departure = route.id, seq, visit.start, visit.departure
        stop.unassigned_reason = stop.unassigned_detail = None


def apply_solution(db: Session, plan: Plan, built: Built, solution: Solution) -> list[Route]:
    """Write a plan back: Routes per used driver, Stops in order with times, the reasons for the rest."""
    existing = {r.driver_id: r for r in db.scalars(select(Route).where(Route.plan_id == plan.id)).unique()}
    colours = {v.id: n for n, v in enumerate(built.problem.vehicles)}
    used: list[Route] = []
    for planned in solution.routes:
        if not planned.visits:
            continue
        driver_id = int(planned.vehicle)
        route = existing.pop(driver_id, None)
        if route is None:
            shift = built.shifts.get(planned.vehicle)
            route = Route(plan_id=plan.id, driver_id=driver_id, shift_id=shift.id if shift else None)
            db.add(route)
            db.flush()
        route.colour = colours.get(planned.vehicle, 0)
        _write_route(route, planned, built.stops)
        used.append(route)
    for unassigned in solution.unassigned:
        stop = built.stops.get(unassigned.job)
        if stop is None:
            continue
        stop.route_id = stop.seq = stop.eta = stop.departure = None
        stop.locked = stop.lock_position = False
        stop.unassigned_reason, stop.unassigned_detail = str(unassigned.reason), unassigned.detail[:300]
    linked = set()
    if existing:
        linked = set(db.scalars(select(RouteLink.route_id).where(
            RouteLink.route_id.in_([r.id for r in existing.values()]))))
    for route in existing.values():  # drivers no longer used
        for stop in built.stops.values():
            if stop.route_id == route.id:
                stop.route_id = stop.seq = stop.eta = stop.departure = None
        route.planned_start = route.planned_end = None
        route.distance_m = route.duration_s = route.load_boxes = 0
        db.flush()
        if route.id not in linked:
            db.delete(route)
    plan.idle_drivers = {i.vehicle: i.detail for i in solution.idle}
    if plan.status == PlanStatus.draft:
        plan.status = PlanStatus.planned
    plan.version += 1
    db.flush()
    return used


@dataclass(frozen=True)
class Timing:
    """The day's current routes timed with the planner's travel model, and the checker's findings."""

    routes: dict[int, PlannedRoute]  # driver id -> the route's times
    jobs: frozenset[str]  # the stops that were timed (those with a location)
    violations: list[Violation]


def timing(db: Session, plan: Plan, settings: Settings) -> Timing:
    """Time every route of the day as the session sees it and check the whole day (reads only:
    the travel matrix is the slow part, so an edit does this on a snapshot before the writer)."""
    built = build(db, plan, settings, driver_ids=plan_drivers(db, plan), routed_only=True)
    matrix = matrix_for(built.problem)
    solution = current_solution(db, plan, built, matrix)
    return Timing(routes={int(r.vehicle): r for r in solution.routes}, jobs=frozenset(built.stops),
                  violations=check(built.problem, solution, matrix))


def write_times(db: Session, plan: Plan, timed: Timing, route_ids: Iterable[int]) -> bool:
    """Write the times of `route_ids` from `timed`; False (and nothing written) when a route's
    stops are not in the order that was timed. A route whose driver has no shift keeps its times."""
    writes = []
    for route in db.scalars(select(Route).where(Route.plan_id == plan.id, Route.id.in_(list(route_ids)))
                            .order_by(Route.id)).unique():
        planned = timed.routes.get(route.driver_id)
        if planned is None:
            continue
        stops = [s for s in db.scalars(select(Stop).where(Stop.route_id == route.id)
                                       .order_by(Stop.seq, Stop.id)).unique() if str(s.id) in timed.jobs]
        if [str(s.id) for s in stops] != [visit.job for visit in planned.visits]:
            return False
        writes.append((route, planned, {str(s.id): s for s in stops}))
    for route, planned, stops in writes:
        _write_route(route, planned, stops)
    db.flush()
    return True


def warnings(violations: list[Violation], names: dict[str, str], labels: dict[str, str]) -> list[str]:
    """The checker's findings in plain words, for coordinators."""
    out = []
    for v in violations:
        who = names.get(v.vehicle or "", "A driver")
        what = labels.get(v.job or "", "a stop")
        text = {
            "window": f"{who} arrives at {what} outside its delivery window (late arrival).",
            "capacity": f"{who}'s car is over capacity ({v.message}).",
            "shift": f"{who} would work past the shift end." if "after" in v.message
            else f"{who} would leave before the shift starts.",
            "skill": f"{who} cannot serve {what}: {v.message.replace('needs', 'it needs')}.",
            "lock": f"{what} is locked elsewhere ({v.message}).",
            "duration": f"{who}'s route is longer than allowed.",
            "max_stops": f"{who} has too many stops ({v.message}).",
            "ride": f"Produce rides too long before {what}.",
        }.get(v.kind)
        if text is None:
            text = f"{who}: {v.message}" if v.vehicle else v.message
        if text not in out:
            out.append(text)
    return out


def people(db: Session, plan: Plan) -> tuple[dict[str, str], dict[str, str]]:
    """Vehicle id -> driver's name, job id -> a short stop label, for warnings."""
    names = {str(r.driver_id): r.driver.user.display_name
             for r in db.scalars(select(Route).where(Route.plan_id == plan.id)).unique()}
    labels = {str(s.id): f"stop {s.seq or '?'} ({s.patient.address_line1})"
              for s in db.scalars(select(Stop).where(Stop.plan_id == plan.id)).unique()}
    return names, labels


# --- solver runs ------------------------------------------------------------------------------


def active_job(db: Session, plan: Plan) -> PlanJob | None:
    return db.scalar(select(PlanJob).where(PlanJob.plan_id == plan.id, PlanJob.status.in_(ACTIVE_JOBS))
                     .order_by(PlanJob.id.desc()).limit(1))


def lock_plan(db: Session, plan_id: int) -> Plan:
    """The plan row, locked for this transaction on PostgreSQL (SQLite's writer is already alone)."""
    plan = db.scalar(select(Plan).where(Plan.id == plan_id).with_for_update()
                     .execution_options(populate_existing=True))
    if plan is None:
        raise PlanningError(f"No plan {plan_id}.")
    return plan


def enqueue(db: Session, plan: Plan, actor_id: int | None, *, driver_ids: Iterable[int] | None = None,
            time_limit_s: float | None = None, keep_locks: bool = True) -> PlanJob:
    """Queue a solver run for the day; refused while another run for it is queued or running."""
    # Serialise enqueues of one program (PostgreSQL row lock; SQLite's writer is alone anyway).
    db.execute(select(Organization.id).where(Organization.id == plan.food_bank_id).with_for_update())
    plan = lock_plan(db, plan.id)
    running = db.execute(select(PlanJob, Plan.date).join(Plan, Plan.id == PlanJob.plan_id)
                         .where(Plan.food_bank_id == plan.food_bank_id, PlanJob.status.in_(ACTIVE_JOBS))
                         .limit(1)).first()
    if running is not None:  # R6.4: one solve per program at a time
        job, day = running
        what = "This day" if day == plan.date else f"{day:%a %d %b %Y}"
        raise PlanBusy(f"{what} is already being planned (run {job.id}, {job.status}). "
                       "Wait for it to finish or cancel it, then plan again.")
    if driver_ids is None:
        chosen = plan_drivers(db, plan) or [s.driver_id for s in day_shifts(db, plan)]
    else:
        chosen = sorted({int(d) for d in driver_ids})
    shifts = day_shifts(db, plan, chosen)
    if not shifts:
        raise PlanningError("No driver with a shift on this day was chosen: add a shift or pick a driver.")
    job = PlanJob(plan_id=plan.id, status=PlanJobStatus.queued, requested_by_id=actor_id,
                  time_limit_s=clamp_time_limit(time_limit_s),
                  driver_ids=[str(s.driver_id) for s in shifts], keep_locks=keep_locks,
                  progress={"solutions": 0})
    db.add(job)
    db.flush()
    carrier = job_table.enqueue(db, SOLVE_KIND, {"plan_job_id": job.id}, max_attempts=SOLVE_MAX_ATTEMPTS)
    job.job_id = carrier.id
    db.flush()
    return job


def cancel(db: Session, plan: Plan) -> PlanJob | None:
    """Ask the running solve to stop now and keep the best plan found; a queued one never starts."""
    job = active_job(db, plan)
    if job is None:
        return None
    if job.status == PlanJobStatus.queued:
        job.status, job.finished_at = PlanJobStatus.cancelled, utcnow()
        if job.job_id is not None:
            job_table.cancel(db, job.job_id)
    else:
        job.cancel_requested = True
    db.flush()
    return job


def progress_of(solution: Solution, began: float, time_limit: float) -> dict:
    elapsed = time.monotonic() - began
    return {"solutions": solution.stats.improvements, "travel_s": solution.travel,
            "distance_m": solution.distance,
            "duration_s": sum(r.duration for r in solution.routes),
            "routes": sum(1 for r in solution.routes if r.visits),
            "unassigned": len(solution.unassigned), "seconds": round(elapsed, 1),
            "seconds_left": round(max(time_limit - elapsed, 0.0), 1)}


def start_from(db: Session, plan: Plan, built: Built) -> Solution | None:
    """The current routes as a warm start when re-optimising (None for a first plan)."""
    if not any(stop.route_id is not None for stop in built.stops.values()):
        return None
    matrix = matrix_for(built.problem)
    routed = {job.id for job in built.problem.jobs if built.stops[job.id].route_id is not None}
    sub = Problem(jobs=tuple(j for j in built.problem.jobs if j.id in routed),
                  vehicles=built.problem.vehicles, travel=built.problem.travel)
    return current_solution(db, plan, Built(sub, built.stops, built.shifts), matrix)


def plan_now(database: Database, settings: Settings, plan_id: int, time_limit: float,
             *, driver_ids: Iterable[int] | None = None,
             on_improvement: Callable[[Solution], None] | None = None) -> Solution:
    """Solve the day in this process and write the plan (the CLI; tests)."""
    with database.writer() as db:
        plan = lock_plan(db, plan_id)
        ids = driver_ids if driver_ids is not None else (plan_drivers(db, plan) or None)
        built = build(db, plan, settings, driver_ids=ids)
        initial = start_from(db, plan, built)
        db.commit()
    solution = solve(built.problem, time_limit=clamp_time_limit(time_limit), initial=initial,
                     on_improvement=on_improvement)
    with database.writer() as db:
        plan = lock_plan(db, plan_id)
        built = build(db, plan, settings, driver_ids=[int(v.id) for v in built.problem.vehicles])
        apply_solution(db, plan, built, keep_known(solution, built))
        db.commit()
    return solution


def keep_known(solution: Solution, built: Built) -> Solution:
    """A solution restricted to the stops that still exist (a stop may be removed during a solve);
    stops added meanwhile stay as they are."""
    known = set(built.stops)
    routes = tuple(r for r in solution.routes if all(v.job in known for v in r.visits))
    dropped = [r for r in solution.routes if r not in routes]
    if dropped:  # rare: a stop vanished mid-solve; keep the other routes, leave these drivers unplanned
        log.warning("plan: %d route(s) referred to removed stops and were dropped", len(dropped))
    return Solution(routes=routes, unassigned=tuple(u for u in solution.unassigned if u.job in known),
                    idle=solution.idle, cost=solution.cost, stats=solution.stats)


# --- the CLI ----------------------------------------------------------------------------------


def summary(db: Session, plan: Plan) -> str:
    view = days.view(db, db.get(Organization, plan.food_bank_id), plan.date, plan=plan)  # type: ignore[arg-type]
    lines = [f"Plan {plan.id} for {plan.date:%a %d %b %Y}: {plan.status}, version {plan.version}",
             f"  {view.capacity.stops} stops, {view.capacity.boxes_due} boxes, "
             f"{len([r for r in view.routes if view.route_stops(r.id)])} routes"]
    for route in view.routes:
        stops = view.route_stops(route.id)
        if not stops:
            continue
        lines.append(f"  {route.driver.user.display_name}: {len(stops)} stops, {route.load_boxes} boxes, "
                     f"{route.distance_m / 1000:.1f} km, {days.clock(route.planned_start)}–"
                     f"{days.clock(route.planned_end)}")
    left = view.unassigned
    lines.append(f"  {len(left)} unassigned")
    for stop in left:
        lines.append(f"    order {stop.order_id} ({stop.patient.address_line1}): "
                     f"{stop.unassigned_reason or 'not planned yet'}"
                     f"{' — ' + stop.unassigned_detail if stop.unassigned_detail else ''}")
    return "\n".join(lines)


def plan_command(database: Database, settings: Settings, date: dt.date, time_limit: float) -> int:
    """`delivery plan YYYY-MM-DD`: build the stops, solve here within the time limit, print a summary."""
    with database.writer() as db:
        food_banks = db.scalars(select(Organization).where(Organization.kind == "food_bank")
                                .order_by(Organization.id)).all()
        if not food_banks:
            print("delivery plan: no food bank in the database (load the demo: delivery demo load)",
                  file=sys.stderr)
            return 2
        plan_ids = []
        for food_bank in food_banks:
            try:
                plan = days.prepare(db, food_bank, date)
            except days.DayError as exc:
                print(f"{food_bank.name}: {exc}")
                continue
            if active_job(db, plan) is not None:
                print(f"delivery plan: {date} is already being planned in the web app; try again later",
                      file=sys.stderr)
                return 2
            plan_ids.append(plan.id)
        db.commit()
    for plan_id in plan_ids:
        with database.reader() as db:
            has_shifts = bool(day_shifts(db, db.get(Plan, plan_id)))  # type: ignore[arg-type]
        if has_shifts:
            plan_now(database, settings, plan_id, time_limit)
        with database.reader() as db:
            plan = db.get(Plan, plan_id)
            assert plan is not None
            print(summary(db, plan))
            if not has_shifts:
                print("  no driver has a shift on this day: nothing was planned")
    return 0
