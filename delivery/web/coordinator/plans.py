"""Coordinators' delivery day: see the day, plan it in the worker, review it on a map, edit, publish.

One template (`coordinator/plan_day.html`); htmx swaps its `day` block after each edit, the
`progress` block while the planner runs. The map is drawn by `static/js/plan_map.js` from
`/coordinator/plans/{id}/map.json` (no inline scripts: CSP).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import Driver, Organization, Plan, PlanJobStatus, Role
from delivery.plans import day as days
from delivery.plans import edits as plan_edits
from delivery.plans import planning, publishing
from delivery.platform import audit as audit_trail
from delivery.platform.db import Database
from delivery.platform.errors import FieldError
from delivery.platform.settings import Settings
from delivery.web.render import DB, Audit, Config, PathId, page, principal, program_today

COORDINATORS = (Role.coordinator, Role.admin)
POLICY = {"roles": COORDINATORS}
FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
PALETTE = 10  # colours in plan_map.js and app.css (.c0 … .c9)
PAGE_TIME_LIMIT_S = 20.0


def _one(value: Any) -> str:
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value or "").strip()


def _many(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value]) if str(v).strip()]


def _int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(_one(value))
    except ValueError:
        return default


def food_bank_for(db: Session, request: Request) -> Organization:
    programs = principal(request).organizations_with(*COORDINATORS)
    if not programs:
        raise NotFoundException("You coordinate no program.")
    food_bank = db.get(Organization, programs[0])
    assert food_bank is not None
    return food_bank


def plan_for(db: Session, request: Request, plan_id: int) -> Plan:
    plan = db.get(Plan, plan_id)
    if plan is None or plan.food_bank_id not in principal(request).organizations_with(*COORDINATORS):
        raise NotFoundException(f"No plan {plan_id}.")
    return plan


def day_context(db: Session, food_bank: Organization, date: dt.date, settings: Settings,
                **extra: Any) -> dict[str, Any]:
    view = days.view(db, food_bank, date)
    waiting = days.changes_waiting(db, food_bank, date, view.plan)
    others = []
    if view.plan is not None:
        on_day = {d.driver.id for d in view.drivers if d.route is not None}
        others = [d for d in db.scalars(select(Driver).where(Driver.food_bank_id == food_bank.id,
                                                             Driver.is_active.is_(True))).unique()
                  if d.id not in on_day]
    chosen = set()
    if view.job is not None and view.job.driver_ids:
        chosen = {int(d) for d in view.job.driver_ids}
    return {"view": view, "plan": view.plan, "clock": days.clock, "tile_url": settings.tile_url,
            "other_drivers": others, "chosen": chosen, "palette": PALETTE,
            "warnings": [], "message": "", "conflict": "", "links": [], "changes_waiting": waiting,
            "confirm_replan": None, "published": published_text(view.plan, food_bank), **extra}


def published_text(plan: Plan | None, food_bank: Organization) -> str:
    """'published 10:42, 3 changes since' (program time), or '' for a day not published yet."""
    if plan is None or plan.published_at is None or plan.published_version is None:
        return ""
    at = plan.published_at.astimezone(ZoneInfo(food_bank.timezone))
    changes = plan.version - plan.published_version
    since = f", {changes} change{'s' if changes != 1 else ''} since" if changes else ", no changes since"
    return f"published {at:%H:%M}{since}"


class PlanController(Controller):
    path = "/coordinator"

    @get("/plans", opt=POLICY, sync_to_thread=True)
    def choose(self, request: Request, db: DB, date: FromQuery[str] = "") -> Template | Redirect:
        """Pick a delivery date (default: the next delivery day) and see the days already planned."""
        food_bank = food_bank_for(db, request)
        if date:
            try:
                return Redirect(f"/coordinator/plans/{dt.date.fromisoformat(date)}")
            except ValueError:
                pass
        plans = db.scalars(select(Plan).where(Plan.food_bank_id == food_bank.id)
                           .order_by(Plan.date.desc()).limit(20)).all()
        return page(request, "coordinator/plans.html", food_bank=food_bank, plans=plans,
                    next_day=days.next_delivery_day(food_bank, program_today(request, food_bank)),
                    bad_date=bool(date))

    def _when(self, request: Request, food_bank: Organization, date: str) -> dt.date:
        """The day in the path: a date within about a year of today, else 404 (nothing is made)."""
        try:
            when = dt.date.fromisoformat(date)
        except ValueError:
            raise NotFoundException(f"{date[:40]!r} is not a date (YYYY-MM-DD).") from None
        if not days.in_window(when, program_today(request, food_bank)):
            raise NotFoundException(f"{when} is not a delivery day to plan: choose a day within a year "
                                    "of today.")
        return when

    @get("/plans/{date:str}", opt=POLICY, sync_to_thread=True)
    def day(self, request: Request, db: DB, settings: Config, date: FromPath[str]) -> Template:
        """The day: its stops, the drivers with shifts, capacity, the plan with its map and edits.
        Only reads: the stops are built by 'Build the day's stops' / 'Refresh stops' (POST)."""
        food_bank = food_bank_for(db, request)
        when = self._when(request, food_bank, date)
        closed = days.holiday(db, food_bank.id, when)
        return page(request, "coordinator/plan_day.html", **day_context(
            db, food_bank, when, settings, closed=days.closed_message(when, closed) if closed else ""))

    @post("/plans/{date:str}/stops", opt=POLICY, sync_to_thread=True, status_code=303)
    def build_stops(self, request: Request, db: DB, date: FromPath[str]) -> Redirect:
        """Build (or bring up to date) the day's stops from the standing orders, then show the day."""
        food_bank = food_bank_for(db, request)
        when = self._when(request, food_bank, date)
        try:
            days.prepare(db, food_bank, when)
        except days.DayError:
            db.rollback()  # a holiday: the day page says so
        else:
            db.commit()
        return Redirect(f"/coordinator/plans/{when}", status_code=303)

    def _day_block(self, request: Request, db: Session, plan: Plan, settings: Settings,
                   **extra: Any) -> Template:
        food_bank = db.get(Organization, plan.food_bank_id)
        assert food_bank is not None
        response = page(request, "coordinator/plan_day.html", block="day",
                        **day_context(db, food_bank, plan.date, settings, **extra))
        response.headers["HX-Trigger"] = "plan-changed"
        return response

    @post("/plans/{plan_id:int}/plan", opt=POLICY, sync_to_thread=True, status_code=200)
    def plan_routes(self, request: Request, db: DB, settings: Config, plan_id: PathId,
                    data: FormData) -> Template:
        """'Plan routes' (or 'Re-optimise'): queue a solver run for the worker process."""
        plan = plan_for(db, request, plan_id)
        drivers = [int(d) for d in _many(data.get("driver_ids")) if d.isdigit()]
        reoptimise = _one(data.get("mode")) == "reoptimise"
        limit = _int(data.get("time_limit_s"), int(PAGE_TIME_LIMIT_S)) or int(PAGE_TIME_LIMIT_S)
        if plan.published_version is not None and _one(data.get("confirm")) != "1":
            # Drivers already have their routes: ask first, carrying the choices to the confirm step.
            return self._day_block(request, db, plan, settings, confirm_replan={
                "mode": "reoptimise" if reoptimise else "plan", "driver_ids": drivers,
                "time_limit_s": limit})
        try:
            food_bank = db.get(Organization, plan.food_bank_id)
            assert food_bank is not None
            days.prepare(db, food_bank, plan.date)  # plan from the stops as the orders stand now
            planning.enqueue(db, plan, principal(request).user_id, time_limit_s=limit, keep_locks=True,
                             driver_ids=None if reoptimise or not drivers else drivers)
        except planning.PlanBusy as exc:
            db.rollback()
            response = self._day_block(request, db, plan, settings, conflict=str(exc))
            response.status_code = 409  # htmx swaps it (see plan_map.js responseHandling)
            return response
        except (planning.PlanningError, days.DayError) as exc:
            db.rollback()
            return self._day_block(request, db, plan, settings, conflict=str(exc))
        db.commit()
        return self._day_block(request, db, plan, settings)

    @get("/plans/{plan_id:int}/progress", opt=POLICY, sync_to_thread=True)
    def progress(self, request: Request, db: DB, settings: Config, plan_id: PathId) -> Template:
        """The running solve's progress; once it is over, the whole day block (htmx stops polling)."""
        plan = plan_for(db, request, plan_id)
        job = planning.active_job(db, plan)
        if job is None:  # over: the whole day replaces the progress box
            response = self._day_block(request, db, plan, settings)
            response.headers["HX-Retarget"] = "#day"
            response.headers["HX-Reswap"] = "outerHTML"
            return response
        return page(request, "coordinator/plan_day.html", block="progress", job=job, plan=plan)

    @post("/plans/{plan_id:int}/cancel", opt=POLICY, sync_to_thread=True, status_code=200)
    def cancel(self, request: Request, db: DB, settings: Config, plan_id: PathId) -> Template:
        plan = plan_for(db, request, plan_id)
        job = planning.cancel(db, plan)
        db.commit()
        message = "" if job is None else "Stopping the planner: the best plan found so far is kept."
        if job is not None and job.status == PlanJobStatus.running:
            return page(request, "coordinator/plan_day.html", block="progress", job=job, plan=plan,
                        message=message)
        return self._day_block(request, db, plan, settings, message=message)

    @get("/plans/{plan_id:int}/map.json", opt=POLICY, sync_to_thread=True)
    def map_data(self, request: Request, db: DB, plan_id: PathId) -> dict[str, Any]:
        """Routes (driver, colour, stops in order with times), unassigned stops and depots."""
        plan = plan_for(db, request, plan_id)
        food_bank = db.get(Organization, plan.food_bank_id)
        assert food_bank is not None
        return map_json(days.view(db, food_bank, plan.date, plan=plan))

    # --- edits ---------------------------------------------------------------------------------

    def _edit(self, request: Request, db: Session, settings: Settings, plan_id: int, data: dict[str, Any],
              edit: plan_edits.Edit) -> Template:
        """Work the edit out on a reader (the travel matrix and the checker take a while: not under
        the writer), then apply it under the writer if the day is still at the version the
        coordinator saw; a refusal or a conflict is shown above the day."""
        database: Database = request.app.state.database
        version = _int(data.get("version"), 0) or 0
        with database.reader() as reader:
            plan = plan_for(reader, request, plan_id)
            today = program_today(request, food_bank_for(reader, request))
        try:
            with database.reader() as reader:
                prepared = plan_edits.prepare(reader, plan.id, version, edit, settings, today=today)
            result = plan_edits.apply(db, prepared, today=today, actor_id=principal(request).user_id)
        except FieldError as exc:  # refused, or the day changed since the coordinator (or snapshot) saw it
            db.rollback()
            return self._day_block(request, db, plan, settings, conflict=exc.message)
        db.commit()
        return self._day_block(request, db, plan, settings, warnings=result.warnings,
                               message=result.message)

    @get("/plans/{plan_id:int}/stops/{stop_id:int}/edit", opt={**POLICY, "phi": ("R", "stop")},
         sync_to_thread=True)
    def edit_form(self, request: Request, db: DB, audit: Audit, plan_id: PathId, stop_id: PathId) -> Template:
        """The edit controls of one stop (move: route and position; lock; remove with a reason),
        loaded when asked so the day page stays light with hundreds of stops."""
        from delivery.models import Route, Stop

        plan = plan_for(db, request, plan_id)
        stop = db.get(Stop, stop_id)
        if stop is None or stop.plan_id != plan.id:
            raise NotFoundException(f"No stop {stop_id} on this day.")
        routes = db.scalars(select(Route).where(Route.plan_id == plan.id)
                            .order_by(Route.colour, Route.id)).all()
        audit_trail.record_reads(request.app.state.database, audit, "stop", [(stop.id, stop.patient_id)])
        return page(request, "coordinator/plan_stop_edit.html", s=stop, plan=plan, routes=routes)

    @post("/plans/{plan_id:int}/stops/{stop_id:int}/move", opt=POLICY, sync_to_thread=True, status_code=200)
    def move(self, request: Request, db: DB, settings: Config, plan_id: PathId,
             stop_id: PathId, data: FormData) -> Template:
        return self._edit(request, db, settings, plan_id, data, plan_edits.Move(
            stop_id, _int(data.get("route_id")) or None, _int(data.get("position"))))

    @post("/plans/{plan_id:int}/stops/{stop_id:int}/lock", opt=POLICY, sync_to_thread=True, status_code=200)
    def lock(self, request: Request, db: DB, settings: Config, plan_id: PathId,
             stop_id: PathId, data: FormData) -> Template:
        return self._edit(request, db, settings, plan_id, data, plan_edits.Lock(
            stop_id, _one(data.get("locked")) == "1", position=_one(data.get("position")) == "1"))

    @post("/plans/{plan_id:int}/stops/{stop_id:int}/remove", opt=POLICY, sync_to_thread=True,
          status_code=200)
    def remove(self, request: Request, db: DB, settings: Config, plan_id: PathId,
               stop_id: PathId, data: FormData) -> Template:
        return self._edit(request, db, settings, plan_id, data,
                          plan_edits.Remove(stop_id, _one(data.get("reason"))[:300]))

    @post("/plans/{plan_id:int}/stops/{stop_id:int}/restore", opt=POLICY, sync_to_thread=True,
          status_code=200)
    def restore(self, request: Request, db: DB, settings: Config, plan_id: PathId,
                stop_id: PathId, data: FormData) -> Template:
        return self._edit(request, db, settings, plan_id, data, plan_edits.Restore(stop_id))

    @post("/plans/{plan_id:int}/drivers", opt=POLICY, sync_to_thread=True, status_code=200)
    def add_driver(self, request: Request, db: DB, settings: Config, plan_id: PathId,
                   data: FormData) -> Template:
        return self._edit(request, db, settings, plan_id, data,
                          plan_edits.AddDriver(_int(data.get("driver_id"), 0) or 0))

    @post("/plans/{plan_id:int}/publish", opt=POLICY, sync_to_thread=True, status_code=200)
    def publish(self, request: Request, db: DB, settings: Config, audit: Audit, plan_id: PathId,
                data: FormData) -> Template:
        plan = plan_for(db, request, plan_id)
        if _int(data.get("version"), 0) != plan.version:
            return self._day_block(request, db, plan, settings, conflict=(
                "The plan changed since you loaded it: check the routes below, then publish again."))
        try:
            published = publishing.publish(db, plan, audit, settings)
        except publishing.PublishError as exc:
            db.rollback()
            return self._day_block(request, db, plan, settings, conflict=str(exc))
        db.commit()
        changed = sum(1 for p in published if p.changed)
        message = "Published."
        if changed:
            message += f" {changed} driver{'s' if changed != 1 else ''} told that their route changed."
        return self._day_block(request, db, plan, settings, links=published, message=message)

    @post("/plans/{plan_id:int}/routes/{route_id:int}/link", opt=POLICY, sync_to_thread=True,
          status_code=200)
    def reissue(self, request: Request, db: DB, settings: Config, plan_id: PathId,
                route_id: PathId) -> Template:
        """A new personal link for one driver (the previous one stops working)."""
        from delivery.models import Route

        plan = plan_for(db, request, plan_id)
        route = db.get(Route, route_id)
        if route is None or route.plan_id != plan.id or route.published_version is None:
            return self._day_block(request, db, plan, settings, conflict="Publish the route first.")
        link = publishing.issue_link(db, route, settings)
        db.commit()
        issued = publishing.Published(route_id=route.id, driver_id=route.driver_id,
                                      driver_name=route.driver.user.display_name,
                                      driver_email=route.driver.user.email, stops=0, link=link,
                                      changed=False, first=False)
        return self._day_block(request, db, plan, settings, links=[issued],
                               message=f"New link for {issued.driver_name}; the old one no longer works.")


def map_json(view: days.DayView) -> dict[str, Any]:
    """The map's data: plain numbers and short labels (no names beyond the street address)."""
    routes = []
    for route in view.routes:
        stops = view.route_stops(route.id)
        routes.append({
            "id": route.id, "colour": route.colour % PALETTE, "driver": route.driver.user.display_name,
            "start": None, "stops": [
                {"id": s.id, "seq": s.seq, "lat": s.patient.lat, "lon": s.patient.lon,
                 "eta": days.clock(s.eta), "boxes": s.boxes, "locked": s.locked,
                 "label": s.patient.address_line1} for s in stops if days.has_point(s.patient)]})
    shifts = {d.driver.id: d for d in view.drivers}
    for item, route in zip(routes, view.routes, strict=True):
        depot = shifts.get(route.driver_id)
        if depot is not None and depot.start_depot is not None:
            item["start"] = [depot.start_depot.lat, depot.start_depot.lon]
    return {
        "plan": view.plan.id if view.plan else None, "version": view.plan.version if view.plan else None,
        "depots": [{"id": d.id, "name": d.name, "lat": d.lat, "lon": d.lon} for d in view.depots],
        "routes": routes,
        "unassigned": [{"id": s.id, "lat": s.patient.lat, "lon": s.patient.lon, "boxes": s.boxes,
                        "reason": s.unassigned_reason or "not_planned", "label": s.patient.address_line1}
                       for s in view.unassigned if days.has_point(s.patient)],
    }
