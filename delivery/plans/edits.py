"""A coordinator's edits to a planned day: move, lock, remove, restore a stop; add a driver.

Each edit names the plan version the coordinator saw. An edit against an older version is refused
with `EditConflict` (two coordinators do not silently overwrite each other); the caller shows the
message and the current plan. After each edit the touched routes' times are recomputed with the
planner's travel model and the whole day is re-checked by the planner's checker: the result carries
the new version and the checker's findings in plain words (late arrival, over capacity, past the
shift end). One write path: the pages and the API call these functions. The caller commits.

An edit (`Move`, `Lock`, `Remove`, `Restore`, `AddDriver`) goes in two steps so that SQLite's single
writer is not held over the travel matrix: `prepare()` works it out on a snapshot (a
`database.reader()`: the edit is made in memory only, the touched routes are timed and the day is
checked), then `apply()` takes the writer, re-checks the plan's version (optimistic: changed since
the snapshot is an `EditConflict`), makes the edit again on the current rows (cheap, and refused if
it no longer can be made) and writes it with the times worked out. `move_stop()` and the other
functions do both on one session (scripts, tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TypeAlias

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


@dataclass(frozen=True)
class Move:
    """Put a stop on `route_id` at `position` (1 = first; None or past the end = last), or take it
    off its route when `route_id` is None. A locked stop keeps its lock and follows it."""

    stop_id: int
    route_id: int | None
    position: int | None = None


@dataclass(frozen=True)
class Lock:
    """Pin a routed stop to its driver (and, with `position`, to its place); or unpin it.
    Re-optimising keeps pinned stops where they are."""

    stop_id: int
    locked: bool
    position: bool = False


@dataclass(frozen=True)
class Remove:
    """Take a stop off the day, with a reason (written to the referral's timeline)."""

    stop_id: int
    reason: str


@dataclass(frozen=True)
class Restore:
    """Bring a removed stop back to the day, unassigned."""

    stop_id: int


@dataclass(frozen=True)
class AddDriver:
    """Add a driver to the day with an empty route (and a shift in the depot's hours if none,
    offered through the roster's one write path: no shift on a closed day or in the past)."""

    driver_id: int


Edit: TypeAlias = Move | Lock | Remove | Restore | AddDriver


@dataclass(frozen=True)
class Prepared:
    """An edit worked out on a snapshot of the day at `version`: the routes' new times and the
    checker's findings, to be written by `apply()` if the day is still at that version."""

    plan_id: int
    version: int
    edit: Edit
    timing: planning.Timing
    warnings: list[str]


def _open(db: Session, plan_id: int, version: int, *, lock: bool = True) -> Plan:
    plan = planning.lock_plan(db, plan_id) if lock else db.get(Plan, plan_id)
    if plan is None:
        raise planning.PlanningError(f"No plan {plan_id}.")
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


@dataclass
class _Made:
    touched: set[int | None]  # the routes whose times change
    message: str


def _make(db: Session, plan: Plan, edit: Edit, *, today: dt.date | None, actor_id: int | None,
          writing: bool) -> _Made:
    """Make the edit on the session's rows: checks and changes only (no flush) while working it out
    on a snapshot; with `writing`, also what only the write does (timeline event, new shift and route)."""
    if isinstance(edit, Move):
        return _move(db, plan, edit)
    if isinstance(edit, Lock):
        stop = _stop(db, plan, edit.stop_id)
        if edit.locked and stop.route_id is None:
            raise EditError("Only a stop on a route can be locked: move it to a driver first.")
        stop.locked, stop.lock_position = edit.locked, edit.locked and edit.position
        who = stop.route_id and _route(db, plan, stop.route_id).driver.user.display_name
        return _Made({stop.route_id},
                     f"Locked to {who}." if edit.locked else "Unlocked: the planner may move it.")
    if isinstance(edit, Remove):
        return _remove(db, plan, edit, actor_id=actor_id, writing=writing)
    if isinstance(edit, Restore):
        stop = _stop(db, plan, edit.stop_id)
        if stop.status != StopStatus.removed:
            raise EditError("This stop was not removed.")
        stop.status, stop.removed_reason = StopStatus.pending, None
        stop.unassigned_reason, stop.unassigned_detail = MANUAL, "Restored to the day: put it on a route."
        return _Made(set(), "The stop is back on the day, unassigned.")
    return _add_driver(db, plan, edit, today=today, writing=writing)


def _move(db: Session, plan: Plan, edit: Move) -> _Made:
    stop = _stop(db, plan, edit.stop_id)
    if stop.status == StopStatus.removed:
        raise EditError("This stop was removed from the day: restore it first.")
    source = stop.route_id
    if edit.route_id is None:
        if source is None:
            raise EditError("This stop is not on a route.")
        _take_off(stop)
        stop.unassigned_reason, stop.unassigned_detail = MANUAL, "Taken off its route by a coordinator."
        _resequence(_on_route(db, source, without=stop.id))
        return _Made({source}, "The stop is now unassigned.")
    if not days.has_point(stop.patient):
        raise EditError("This stop's address has no location yet, so it cannot go on a route.")
    route = _route(db, plan, edit.route_id)
    target = _on_route(db, route.id, without=stop.id)
    position = edit.position
    at = len(target) if position is None else min(max(position, 1), len(target) + 1) - 1
    target.insert(at, stop)
    stop.route_id = route.id
    stop.unassigned_reason = stop.unassigned_detail = None
    _resequence(target)
    if source is not None and source != route.id:
        _resequence(_on_route(db, source, without=stop.id))
    return _Made({source, route.id}, f"Moved to {route.driver.user.display_name}'s route, stop {at + 1}.")


def _remove(db: Session, plan: Plan, edit: Remove, *, actor_id: int | None, writing: bool) -> _Made:
    reason = " ".join(edit.reason.split())[:300]
    if not reason:
        raise EditError("Write why the stop is removed from the day.")
    stop = _stop(db, plan, edit.stop_id)
    if stop.status != StopStatus.pending:
        raise EditError(f"This stop is already {stop.status}.")
    source = stop.route_id
    _take_off(stop)
    stop.status, stop.removed_reason = StopStatus.removed, reason
    stop.unassigned_reason = stop.unassigned_detail = None
    if source is not None:
        _resequence(_on_route(db, source, without=stop.id))
    referral = writing and db.scalar(select(Referral).join(Order, Order.referral_id == Referral.id)
                                     .where(Order.id == stop.order_id))
    if referral:
        timeline.record(db, referral, EventKind.stop_removed,
                        payloads.StopRemoved(order_id=stop.order_id, stop_id=stop.id, plan_id=plan.id,
                                             date=plan.date, reason=reason), actor_id=actor_id)
    return _Made({source}, "The stop is off the day.")


def _add_driver(db: Session, plan: Plan, edit: AddDriver, *, today: dt.date | None, writing: bool) -> _Made:
    driver = db.get(Driver, edit.driver_id)
    if driver is None or driver.food_bank_id != plan.food_bank_id or not driver.is_active:
        raise EditError(f"Driver {edit.driver_id} does not drive for this program.")
    if db.scalar(select(Route.id).where(Route.plan_id == plan.id, Route.driver_id == driver.id)):
        raise EditError(f"{driver.user.display_name} already has a route on this day.")
    shift = db.scalar(select(Shift).where(Shift.driver_id == driver.id, Shift.date == plan.date))
    hours = (shift.start, shift.end) if shift is not None else None
    if shift is None:
        depot = db.scalar(select(Depot).where(Depot.organization_id == plan.food_bank_id).order_by(Depot.id))
        if depot is None:
            raise EditError("The program has no depot for a driver to start from.")
        hours = (depot.opens, depot.closes)
        if writing:
            if today is None:
                raise ValueError("adding a driver without a shift needs today's date")
            at_depot = f"depot:{depot.id}"
            shift = roster.save_shift(db, driver=driver, offered_by="coordinator", today=today,
                                      data=roster.ShiftIn(date=plan.date, start=depot.opens, end=depot.closes,
                                                          start_place=at_depot, end_place=at_depot))
    message = (f"{driver.user.display_name} is on the day ({days.clock(days.seconds(hours[0]))}–"
               f"{days.clock(days.seconds(hours[1]))}).")
    if not writing:  # the new route is empty: it adds no stop to time and nothing for the checker
        return _Made(set(), message)
    assert shift is not None
    colour = db.scalar(select(func.max(Route.colour)).where(Route.plan_id == plan.id))
    route = Route(plan_id=plan.id, driver_id=driver.id, shift_id=shift.id,
                  colour=0 if colour is None else colour + 1)
    db.add(route)
    db.flush()
    return _Made({route.id}, message)


def prepare(db: Session, plan_id: int, version: int, edit: Edit, settings: Settings, *,
            today: dt.date | None = None) -> Prepared:
    """Work the edit out on a snapshot without writing: run it on `database.reader()`, before the
    writer is taken (the travel matrix and the checker are the slow part of an edit). Refuses what
    can be refused already (an older version, a stop not on the day, no reason given …)."""
    with db.no_autoflush:
        plan = _open(db, plan_id, version, lock=False)
        _make(db, plan, edit, today=today, actor_id=None, writing=False)
        timing = planning.timing(db, plan, settings)
        names, labels = planning.people(db, plan)
    for changed in list(db.dirty):  # the edit was only made in memory to be timed: forget it
        db.expire(changed)
    return Prepared(plan_id, version, edit, timing, planning.warnings(timing.violations, names, labels))


def apply(db: Session, prepared: Prepared, *, today: dt.date | None = None,
          actor_id: int | None = None) -> EditResult:
    """Write a prepared edit: the plan's version is checked again under the writer (a change since
    the snapshot is an EditConflict), the edit is made on the current rows, the touched routes get
    the times worked out, and the plan a new version. The caller commits."""
    plan = _open(db, prepared.plan_id, prepared.version)
    made = _make(db, plan, prepared.edit, today=today, actor_id=actor_id, writing=True)
    db.flush()
    touched = sorted(r for r in made.touched if r is not None)
    if not planning.write_times(db, plan, prepared.timing, touched):
        # Cannot happen while every change to a day's routes moves its version on: say so if it does.
        raise EditConflict("This day's routes changed while your change was worked out: here is the "
                           "current plan, make your change again if it is still needed.", plan.version)
    plan.version += 1
    return EditResult(version=plan.version, warnings=prepared.warnings, routes=touched, message=made.message)


def edit(db: Session, plan_id: int, version: int, change: Edit, settings: Settings, *,
         today: dt.date | None = None, actor_id: int | None = None) -> EditResult:
    """`prepare` and `apply` on one session (the writer throughout: scripts and tests)."""
    db.flush()  # prepare() forgets what is not flushed
    prepared = prepare(db, plan_id, version, change, settings, today=today)
    return apply(db, prepared, today=today, actor_id=actor_id)


def move_stop(db: Session, plan_id: int, version: int, stop_id: int, route_id: int | None,
              position: int | None, settings: Settings) -> EditResult:
    """See `Move`."""
    return edit(db, plan_id, version, Move(stop_id, route_id, position), settings)


def lock_stop(db: Session, plan_id: int, version: int, stop_id: int, locked: bool, settings: Settings,
              *, position: bool = False) -> EditResult:
    """See `Lock`."""
    return edit(db, plan_id, version, Lock(stop_id, locked, position), settings)


def remove_stop(db: Session, plan_id: int, version: int, stop_id: int, reason: str, settings: Settings,
                actor_id: int | None = None) -> EditResult:
    """See `Remove`."""
    return edit(db, plan_id, version, Remove(stop_id, reason), settings, actor_id=actor_id)


def restore_stop(db: Session, plan_id: int, version: int, stop_id: int, settings: Settings) -> EditResult:
    """See `Restore`."""
    return edit(db, plan_id, version, Restore(stop_id), settings)


def add_driver(db: Session, plan_id: int, version: int, driver_id: int, settings: Settings, *,
               today: dt.date) -> EditResult:
    """See `AddDriver`."""
    return edit(db, plan_id, version, AddDriver(driver_id), settings, today=today)
