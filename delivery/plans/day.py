"""A delivery day: the Stops due on it, the drivers who can drive, and whether it all fits.

`prepare()` makes the day's Plan and its Stops from the standing Orders (weekly, every two weeks,
once; start and end dates; pauses), the failed attempts carried over from earlier days, and skips
days the program marks closed. It is idempotent: calling it again adds what became due and drops
unrouted stops whose order is no longer due. `view()` reads the day for the page and the API with
a constant number of queries, whatever the number of stops.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    Cadence,
    Depot,
    Driver,
    GeocodeStatus,
    Holiday,
    Order,
    OrderStatus,
    Organization,
    Plan,
    PlanJob,
    PlanJobStatus,
    PlanStatus,
    Route,
    Shift,
    Stop,
    StopStatus,
)
from delivery.platform.errors import FieldError
from delivery.program.scheduling import is_due, next_weekday
from delivery.program.waitlist import recurrence
from delivery.routing import service_seconds

NO_LOCATION = "no_location"  # an unassigned reason of our own: the address has no point yet
CARRY_BACK_DAYS = 28  # failed attempts older than this are not carried over any more
WINDOW = dt.timedelta(days=366)  # days further from today than this are not delivery days to plan


class DayError(FieldError):
    """The day cannot be planned as asked; the message says why."""

    default_code = "day_refused"


def seconds(t: dt.time | None) -> int | None:
    return None if t is None else t.hour * 3600 + t.minute * 60 + t.second


def clock(s: int | None) -> str:
    """Seconds since midnight as HH:MM (empty for None)."""
    if s is None:
        return ""
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def next_delivery_day(food_bank: Organization, today: dt.date) -> dt.date:
    if food_bank.delivery_weekday is None:
        return today
    return next_weekday(food_bank.delivery_weekday, today)


def in_window(date: dt.date, today: dt.date) -> bool:
    """A day a coordinator may open: within about a year of today (not 1800, not 9999)."""
    return today - WINDOW <= date <= today + WINDOW


def closed_message(date: dt.date, closed: Holiday) -> str:
    return f"{date:%a %d %b %Y} is a holiday ({closed.name}): the program is closed."


def holiday(db: Session, food_bank_id: int, date: dt.date) -> Holiday | None:
    return db.scalar(select(Holiday).where(Holiday.food_bank_id == food_bank_id, Holiday.date == date))


def has_point(patient) -> bool:  # type: ignore[no-untyped-def]
    return patient.lat is not None and patient.lon is not None


def _no_location_detail(patient) -> str:  # type: ignore[no-untyped-def]
    if patient.geocode_status == GeocodeStatus.needs_review:
        return "The address could not be located: it waits in the review queue."
    return "The address has not been located yet (geocoding pending)."


def _stop_for(order: Order, plan: Plan, food_bank: Organization, carried_from: int | None = None) -> Stop:
    patient = order.patient
    service_s = service_seconds(order.boxes, patient.floor, patient.elevator, base=food_bank.service_base_s,
                                per_box=food_bank.service_per_box_s, per_floor=food_bank.service_per_floor_s)
    stop = Stop(plan_id=plan.id, order_id=order.id, patient_id=order.patient_id, date=plan.date,
                boxes=order.boxes, box_type=order.box_type,
                service_s=service_s,
                window_start=seconds(order.window_start), window_end=seconds(order.window_end),
                status=StopStatus.pending, carried_from_id=carried_from)
    if not has_point(patient):
        stop.unassigned_reason = NO_LOCATION
        stop.unassigned_detail = _no_location_detail(patient)
    return stop


def due_orders(db: Session, food_bank_id: int, date: dt.date) -> list[Order]:
    """Orders with a delivery on this date: active (or paused with a pause that has ended)."""
    orders = db.scalars(
        select(Order).where(Order.food_bank_id == food_bank_id,
                            Order.status.in_([OrderStatus.active, OrderStatus.paused]),
                            Order.start_date <= date)
        .order_by(Order.id)
    ).all()
    return [o for o in orders
            if not (o.status == OrderStatus.paused and o.paused_until is None)
            and is_due(recurrence(o), date)]


def prepare(db: Session, food_bank: Organization, date: dt.date) -> Plan:
    """The day's Plan with its Stops brought up to date (the caller commits).

    Refused for a day the program marks closed. Stops already on a route are never dropped here:
    taking a routed stop off the day is a coordinator's edit, with a reason.
    """
    closed = holiday(db, food_bank.id, date)
    if closed is not None:
        raise DayError(closed_message(date, closed))
    plan = db.scalar(select(Plan).where(Plan.food_bank_id == food_bank.id, Plan.date == date))
    if plan is None:
        plan = Plan(food_bank_id=food_bank.id, date=date, status=PlanStatus.draft, version=1)
        db.add(plan)
        db.flush()
    if plan.status == PlanStatus.done:
        return plan
    stops = {s.order_id: s for s in db.scalars(select(Stop).where(Stop.plan_id == plan.id))}
    due = {o.id: o for o in due_orders(db, food_bank.id, date)}

    # Failed attempts on earlier days, for orders still active, not yet carried to a later day.
    since = date - dt.timedelta(days=CARRY_BACK_DAYS)
    failed = db.scalars(
        select(Stop).join(Order, Order.id == Stop.order_id)
        .where(Order.food_bank_id == food_bank.id, Order.status == OrderStatus.active,
               Stop.status == StopStatus.failed, Stop.date < date, Stop.date >= since)
        .order_by(Stop.date)
    ).all()
    carried_ids = set()
    if failed:
        carried_ids = set(db.scalars(select(Stop.carried_from_id).where(
            Stop.carried_from_id.in_([s.id for s in failed]))))
    carry: dict[int, int] = {}
    for attempt in failed:
        if attempt.id in carried_ids:
            continue
        # a later attempt (delivered or not) for the same order supersedes this one
        carry[attempt.order_id] = attempt.id
    if carry:
        later = db.execute(select(Stop.order_id, Stop.date).where(
            Stop.order_id.in_(list(carry)), Stop.date < date)).all()
        latest_failed = {s.order_id: s.date for s in failed if s.id in carry.values()}
        for order_id, day in later:
            if day > latest_failed.get(order_id, day):
                carry.pop(order_id, None)
        missing = [oid for oid in carry if oid not in due]
        if missing:
            for order in db.scalars(select(Order).where(Order.id.in_(missing))):
                due[order.id] = order

    changed = False
    for order_id, order in due.items():
        stop = stops.get(order_id)
        if stop is None:
            db.add(_stop_for(order, plan, food_bank, carry.get(order_id)))
            changed = True
        elif stop.carried_from_id is None and order_id in carry:
            stop.carried_from_id = carry[order_id]
    for order_id, stop in stops.items():
        patient = stop.patient
        if stop.unassigned_reason == NO_LOCATION and has_point(patient):
            stop.unassigned_reason = stop.unassigned_detail = None
        elif stop.route_id is None and not has_point(patient) and stop.status == StopStatus.pending:
            stop.unassigned_reason, stop.unassigned_detail = NO_LOCATION, _no_location_detail(patient)
        if (order_id not in due and stop.route_id is None and stop.status == StopStatus.pending
                and plan.status != PlanStatus.published):
            db.delete(stop)  # the order ended, paused or was waitlisted since the stops were built
            changed = True
    if changed and plan.status != PlanStatus.draft:
        plan.version += 1
    db.flush()
    return plan


def carry(db: Session, food_bank: Organization, order: Order, date: dt.date, *,
          carried_from: int) -> Stop | None:
    """A failed attempt's retry on `date`: the order's stop there, marked as carried from it (the
    caller commits). A day not opened yet is prepared whole; on an opened day only this one stop is
    added, so a reschedule does not refresh the whole day (the coordinator's `prepare` does that).
    None when the day is done."""
    plan = db.scalar(select(Plan).where(Plan.food_bank_id == food_bank.id, Plan.date == date))
    if plan is None:
        plan = prepare(db, food_bank, date)
        return db.scalar(select(Stop).where(Stop.plan_id == plan.id, Stop.order_id == order.id))
    closed = holiday(db, food_bank.id, date)
    if closed is not None:
        raise DayError(closed_message(date, closed))
    if plan.status == PlanStatus.done:
        return None
    retry = db.scalar(select(Stop).where(Stop.plan_id == plan.id, Stop.order_id == order.id))
    if retry is None:
        retry = _stop_for(order, plan, food_bank, carried_from)
        db.add(retry)
        if plan.status != PlanStatus.draft:
            plan.version += 1
    elif retry.carried_from_id is None:
        retry.carried_from_id = carried_from
    db.flush()
    return retry


def changes_waiting(db: Session, food_bank: Organization, date: dt.date, plan: Plan | None) -> int:
    """How many stops `prepare()` would add or drop now: orders that became due since the stops
    were built, and unrouted stops whose order is no longer due (0: the stops are up to date).
    Failed attempts to carry over are left to `prepare()` itself."""
    due = {o.id for o in due_orders(db, food_bank.id, date)}
    if plan is None:
        return len(due)
    if plan.status == PlanStatus.done:
        return 0
    stops = db.execute(select(Stop.order_id, Stop.route_id, Stop.status).where(Stop.plan_id == plan.id)).all()
    gone = 0
    if plan.status != PlanStatus.published:
        gone = sum(1 for s in stops if s.order_id not in due and s.route_id is None
                   and s.status == StopStatus.pending)
    return len(due - {s.order_id for s in stops}) + gone


# --- reading the day ----------------------------------------------------------------------------


@dataclass
class DriverDay:
    driver: Driver
    shift: Shift
    start_depot: Depot | None
    route: Route | None = None

    @property
    def name(self) -> str:
        return self.driver.user.display_name


@dataclass
class Capacity:
    stops: int
    boxes_due: int
    boxes_available: int | None  # the food bank's boxes for a delivery day (None: not set)
    seats: int  # boxes the available drivers' cars hold
    drivers: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class DayView:
    food_bank: Organization
    date: dt.date
    plan: Plan | None
    holiday: Holiday | None
    stops: list[Stop]
    drivers: list[DriverDay]
    routes: list[Route]
    depots: list[Depot]
    capacity: Capacity
    job: PlanJob | None  # the latest solver run
    carried: int = 0

    @property
    def planning(self) -> bool:
        return self.job is not None and self.job.status in (PlanJobStatus.queued, PlanJobStatus.running)

    def route_stops(self, route_id: int) -> list[Stop]:
        return sorted((s for s in self.stops if s.route_id == route_id), key=lambda s: s.seq or 0)

    @property
    def unassigned(self) -> list[Stop]:
        return [s for s in self.stops if s.route_id is None and s.status != StopStatus.removed]

    @property
    def idle_drivers(self) -> list[tuple[DriverDay, str]]:
        """Drivers with a shift who got no stop on the planned day, each with the planner's reason."""
        if self.plan is None or not self.routes:
            return []
        reasons = self.plan.idle_drivers or {}
        return [(d, reasons.get(str(d.driver.id))
                 or "not in the last planner run: tick them and plan again, or add them to the day")
                for d in self.drivers if d.route is None or not self.route_stops(d.route.id)]

    @property
    def removed(self) -> list[Stop]:
        return [s for s in self.stops if s.status == StopStatus.removed]


def capacity_summary(stops: list[Stop], drivers: list[DriverDay], food_bank: Organization) -> Capacity:
    active = [s for s in stops if s.status != StopStatus.removed]
    boxes = sum(s.boxes for s in active)
    seats = sum(d.driver.capacity_boxes for d in drivers)
    cap = Capacity(stops=len(active), boxes_due=boxes, boxes_available=food_bank.boxes_per_delivery_day,
                   seats=seats, drivers=len(drivers))
    if cap.boxes_available is not None and boxes > cap.boxes_available:
        cap.warnings.append(f"{boxes} boxes are due but the food bank has {cap.boxes_available} "
                            "for the day.")
    if not drivers and active:
        cap.warnings.append("No driver has a shift on this day: add a shift before planning.")
    elif boxes > seats:
        cap.warnings.append(f"{boxes} boxes are due but the drivers' cars hold {seats}: some stops "
                            "will stay unassigned unless another driver comes.")
    unlocated = sum(1 for s in active if s.unassigned_reason == NO_LOCATION)
    if unlocated:
        cap.warnings.append(f"{unlocated} stop{'s' if unlocated != 1 else ''} cannot be planned: "
                            "the address has no location yet.")
    return cap


def view(db: Session, food_bank: Organization, date: dt.date, *, plan: Plan | None = None) -> DayView:
    """Everything the day page shows, in a fixed number of queries."""
    closed = holiday(db, food_bank.id, date)
    if plan is None:
        plan = db.scalar(select(Plan).where(Plan.food_bank_id == food_bank.id, Plan.date == date))
    stops: list[Stop] = []
    routes: list[Route] = []
    job = None
    if plan is not None:
        stops = list(db.scalars(select(Stop).where(Stop.plan_id == plan.id)
                                .order_by(Stop.route_id, Stop.seq, Stop.id)).unique())
        routes = list(db.scalars(select(Route).where(Route.plan_id == plan.id)
                                 .order_by(Route.colour, Route.id)).unique())
        job = db.scalar(select(PlanJob).where(PlanJob.plan_id == plan.id).order_by(PlanJob.id.desc())
                        .limit(1))
    shifts = db.scalars(select(Shift).join(Driver, Driver.id == Shift.driver_id)
                        .where(Driver.food_bank_id == food_bank.id, Driver.is_active.is_(True),
                               Shift.date == date).order_by(Shift.start, Shift.id)).unique().all()
    depots = list(db.scalars(select(Depot).where(Depot.organization_id == food_bank.id)
                             .order_by(Depot.id)))
    depot_by_id = {d.id: d for d in depots}
    route_by_driver = {r.driver_id: r for r in routes}
    drivers = [DriverDay(s.driver, s, depot_by_id.get(s.start_depot_id or -1),
                         route_by_driver.get(s.driver_id)) for s in shifts]
    return DayView(food_bank=food_bank, date=date, plan=plan, holiday=closed, stops=stops,
                   drivers=drivers, routes=routes, depots=depots,
                   capacity=capacity_summary(stops, drivers, food_bank), job=job,
                   carried=sum(1 for s in stops if s.carried_from_id is not None))


__all__ = ["NO_LOCATION", "Cadence", "DayError", "DayView", "changes_waiting", "clock", "due_orders",
           "in_window", "next_delivery_day", "prepare", "seconds", "view"]
