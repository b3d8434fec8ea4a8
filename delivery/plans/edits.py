"""A coordinator's edits to a planned day: move, lock, remove, restore a stop; add a driver.

Each edit names the plan version the coordinator saw. An edit against an older version is refused
with `EditConflict` (two coordinators do not silently overwrite each other); the caller shows the
message and the current plan. After each edit the touched routes' times are recomputed with the
planner's travel model and the whole day is re-checked by the planner's checker: the result carries
the new version and the checker's findings in plain words (late arrival, over capacity, past the
shift end). One write path: the pages and the API call these functions. The caller commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.models import (
    Depot,
    Driver,
    EventKind,
    Order,
    Plan,
    Referral,
    Route,
    Shift,
    Stop,
    StopStatus,
)
from delivery.plans import day as days
from delivery.plans import planning
from delivery.platform.errors import ConflictError, FieldError
from delivery.platform.settings import Settings
from delivery.program import roster
from delivery.timeline import events as timeline
from delivery.timeline import payloads

MANUAL = "manual"  # an unassigned reason: a coordinator took the stop off its route


class EditError(FieldError):
    """The edit cannot be made; the message says why."""

    default_code = "edit_refused"


class EditConflict(ConflictError):
    """The plan changed since the coordinator loaded it (or is being planned right now)."""

    default_code = "plan_changed"

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message, "version")
        self.version = version


@dataclass
class EditResult:
    version: int
    warnings: list[str] = field(default_factory=list)
    routes: list[int] = field(default_factory=list)  # routes whose times were recomputed
    message: str = ""


def _open(db: Session, plan_id: int, version: int) -> Plan:
    plan = planning.lock_plan(db, plan_id)
    job = planning.active_job(db, plan)
    if job is not None:
        raise EditConflict("The planner is working on this day right now: wait for it to finish "
                           "(or cancel it), then make your change.", plan.version)
    if plan.version != version:
        raise EditConflict(f"Someone else changed this day since you loaded it (you saw version {version}, "
                           f"it is now version {plan.version}). Here is the current plan: make your "
                           "change again if it is still needed.", plan.version)
    return plan


def _stop(db: Session, plan: Plan, stop_id: int) -> Stop:
    stop = db.get(Stop, stop_id)
    if stop is None or stop.plan_id != plan.id:
        raise EditError(f"Stop {stop_id} is not part of this day.")
    return stop


def _route(db: Session, plan: Plan, route_id: int) -> Route:
    route = db.get(Route, route_id)
    if route is None or route.plan_id != plan.id:
        raise EditError(f"Route {route_id} is not part of this day.")
    return route


def _on_route(db: Session, route_id: int, *, without: int | None = None) -> list[Stop]:
    stops = db.scalars(select(Stop).where(Stop.route_id == route_id).order_by(Stop.seq, Stop.id)).unique()
    return [s for s in stops if s.id != without]


def _resequence(stops: list[Stop]) -> None:
    for n, stop in enumerate(stops, start=1):
        stop.seq = n


def _take_off(stop: Stop) -> None:
    stop.route_id = stop.seq = stop.eta = stop.departure = None
    stop.locked = stop.lock_position = False


def _finish(db: Session, plan: Plan, settings: Settings, route_ids: set[int | None], message: str
            ) -> EditResult:
    db.flush()
    plan.version += 1
    touched = sorted(r for r in route_ids if r is not None)
    violations = planning.retime(db, plan, settings, touched)
    names, labels = planning.people(db, plan)
    return EditResult(version=plan.version, warnings=planning.warnings(violations, names, labels),
                      routes=touched, message=message)


def move_stop(db: Session, plan_id: int, version: int, stop_id: int, route_id: int | None,
              position: int | None, settings: Settings) -> EditResult:
    """Put a stop on `route_id` at `position` (1 = first; None or past the end = last), or take it off
    its route when `route_id` is None. A locked stop keeps its lock and follows it to the new driver."""
    plan = _open(db, plan_id, version)
    stop = _stop(db, plan, stop_id)
    if stop.status == StopStatus.removed:
        raise EditError("This stop was removed from the day: restore it first.")
    source = stop.route_id
    if route_id is None:
        if source is None:
            raise EditError("This stop is not on a route.")
        _take_off(stop)
        stop.unassigned_reason, stop.unassigned_detail = MANUAL, "Taken off its route by a coordinator."
        _resequence(_on_route(db, source, without=stop.id))
        return _finish(db, plan, settings, {source}, "The stop is now unassigned.")
    if not days.has_point(stop.patient):
        raise EditError("This stop's address has no location yet, so it cannot go on a route.")
    route = _route(db, plan, route_id)
    target = _on_route(db, route.id, without=stop.id)
    at = len(target) if position is None else min(max(position, 1), len(target) + 1) - 1
    target.insert(at, stop)
    stop.route_id = route.id
    stop.unassigned_reason = stop.unassigned_detail = None
    _resequence(target)
    if source is not None and source != route.id:
        _resequence(_on_route(db, source, without=stop.id))
    return _finish(db, plan, settings, {source, route.id},
                   f"Moved to {route.driver.user.display_name}'s route, stop {at + 1}.")


def lock_stop(db: Session, plan_id: int, version: int, stop_id: int, locked: bool, settings: Settings,
              *, position: bool = False) -> EditResult:
    """Pin a routed stop to its driver (and, with `position`, to its place); or unpin it.
    Re-optimising keeps pinned stops where they are."""
    plan = _open(db, plan_id, version)
    stop = _stop(db, plan, stop_id)
    if locked and stop.route_id is None:
        raise EditError("Only a stop on a route can be locked: move it to a driver first.")
    stop.locked, stop.lock_position = locked, locked and position
    who = stop.route_id and _route(db, plan, stop.route_id).driver.user.display_name
    return _finish(db, plan, settings, {stop.route_id},
                   f"Locked to {who}." if locked else "Unlocked: the planner may move it.")


def remove_stop(db: Session, plan_id: int, version: int, stop_id: int, reason: str, settings: Settings,
                actor_id: int | None = None) -> EditResult:
    """Take a stop off the day, with a reason (written to the referral's timeline)."""
    reason = " ".join(reason.split())
    if not reason:
        raise EditError("Write why the stop is removed from the day.")
    plan = _open(db, plan_id, version)
    stop = _stop(db, plan, stop_id)
    if stop.status != StopStatus.pending:
        raise EditError(f"This stop is already {stop.status}.")
    source = stop.route_id
    _take_off(stop)
    stop.status, stop.removed_reason = StopStatus.removed, reason[:300]
    stop.unassigned_reason = stop.unassigned_detail = None
    if source is not None:
        _resequence(_on_route(db, source, without=stop.id))
    referral = db.scalar(select(Referral).join(Order, Order.referral_id == Referral.id)
                         .where(Order.id == stop.order_id))
    if referral is not None:
        timeline.record(db, referral, EventKind.stop_removed,
                        payloads.StopRemoved(order_id=stop.order_id, stop_id=stop.id, plan_id=plan.id,
                                             date=plan.date, reason=reason[:300]), actor_id=actor_id)
    return _finish(db, plan, settings, {source}, "The stop is off the day.")


def restore_stop(db: Session, plan_id: int, version: int, stop_id: int, settings: Settings) -> EditResult:
    """Bring a removed stop back to the day, unassigned."""
    plan = _open(db, plan_id, version)
    stop = _stop(db, plan, stop_id)
    if stop.status != StopStatus.removed:
        raise EditError("This stop was not removed.")
    stop.status, stop.removed_reason = StopStatus.pending, None
    stop.unassigned_reason, stop.unassigned_detail = MANUAL, "Restored to the day: put it on a route."
    return _finish(db, plan, settings, set(), "The stop is back on the day, unassigned.")


def add_driver(db: Session, plan_id: int, version: int, driver_id: int, settings: Settings, *,
               today: dt.date) -> EditResult:
    """Add a driver to the day with an empty route (and a shift in the depot's hours if none,
    offered through the roster's one write path: no shift on a closed day or in the past)."""
    plan = _open(db, plan_id, version)
    driver = db.get(Driver, driver_id)
    if driver is None or driver.food_bank_id != plan.food_bank_id or not driver.is_active:
        raise EditError(f"Driver {driver_id} does not drive for this program.")
    if db.scalar(select(Route.id).where(Route.plan_id == plan.id, Route.driver_id == driver.id)):
        raise EditError(f"{driver.user.display_name} already has a route on this day.")
    shift = db.scalar(select(Shift).where(Shift.driver_id == driver.id, Shift.date == plan.date))
    if shift is None:
        depot = db.scalar(select(Depot).where(Depot.organization_id == plan.food_bank_id).order_by(Depot.id))
        if depot is None:
            raise EditError("The program has no depot for a driver to start from.")
        at_depot = f"depot:{depot.id}"
        shift = roster.save_shift(db, driver=driver, offered_by="coordinator", today=today,
                                  data=roster.ShiftIn(date=plan.date, start=depot.opens, end=depot.closes,
                                                      start_place=at_depot, end_place=at_depot))
    colour = db.scalar(select(func.max(Route.colour)).where(Route.plan_id == plan.id))
    route = Route(plan_id=plan.id, driver_id=driver.id, shift_id=shift.id,
                  colour=0 if colour is None else colour + 1)
    db.add(route)
    db.flush()
    return _finish(db, plan, settings, {route.id},
                   f"{driver.user.display_name} is on the day ({days.clock(days.seconds(shift.start))}–"
                   f"{days.clock(days.seconds(shift.end))}).")
