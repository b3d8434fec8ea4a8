"""The plan contract of DESIGN.md for coordinators' systems (bearer tokens): plan a day, read it,
publish it. The same services as the coordinator's pages."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import JSONBody
from msgspec import Meta
from sqlalchemy.orm import Session

from delivery.models import Organization, Plan, Role
from delivery.plans import day as days
from delivery.plans import planning, publishing
from delivery.platform.auth import Principal
from delivery.platform.errors import FieldError
from delivery.referrals.schemas import Id
from delivery.web.errors import error_responses
from delivery.web.render import DB, Audit, Config, PathId, principal, program_today

COORDINATORS = (Role.coordinator, Role.admin)
# Systems may plan further ahead than the coordinator's pages open (days.WINDOW); this bound only keeps
# absurd dates (0001-01-01, 9999-12-31) from overflowing the day's date arithmetic or leaving junk days.
SYSTEM_WINDOW = dt.timedelta(days=3653)
Clock = Annotated[str, Meta(description="Local time of the program's time zone, HH:MM (24 h)")]


class PlanIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    date: dt.date
    driver_ids: Annotated[list[Id], Meta(max_length=500)] | None = None
    time_limit_s: Annotated[float, Meta(ge=1, le=planning.MAX_TIME_LIMIT_S)] | None = None
    food_bank_id: Id | None = None


class PlanQueued(msgspec.Struct, kw_only=True):
    id: int
    date: dt.date
    status: str
    job_id: int
    job_status: str
    time_limit_s: float


class DriverOut(msgspec.Struct, kw_only=True):
    id: int
    email: str
    name: str


class StopOut(msgspec.Struct, kw_only=True):
    id: int
    order_id: int
    seq: int | None
    eta: Clock | None
    status: str
    outcome: str | None
    boxes: int
    locked: bool


class RouteOut(msgspec.Struct, kw_only=True):
    id: int
    driver: DriverOut
    stops: list[StopOut]
    colour: int
    planned_start: Clock | None
    planned_end: Clock | None
    distance_m: int
    duration_s: int
    load_boxes: int
    published_version: int | None


class UnassignedOut(msgspec.Struct, kw_only=True):
    order_id: int
    stop_id: int
    reason: str
    detail: str | None


class PlanOut(msgspec.Struct, kw_only=True):
    id: int
    date: dt.date
    status: str
    version: int
    published_version: int | None
    job_status: str | None
    progress: dict[str, Any]
    routes: list[RouteOut]
    unassigned: list[UnassignedOut]


class PublishedRoute(msgspec.Struct, kw_only=True):
    route_id: int
    driver: DriverOut
    stops: int
    link: str | None
    changed: bool


class PublishOut(msgspec.Struct, kw_only=True):
    id: int
    status: str
    published_version: int | None
    routes: list[PublishedRoute]


def food_bank_of(db: Session, who: Principal, requested: int | None) -> Organization:
    programs = who.organizations_with(*COORDINATORS)
    if requested is not None and requested not in programs:
        raise NotFoundException(f"No food bank {requested}.")
    if requested is None and len(programs) != 1:
        raise FieldError("You coordinate several programs: set food_bank_id.", "food_bank_id")
    food_bank = db.get(Organization, requested or programs[0])
    if food_bank is None:
        raise NotFoundException("No such food bank.")
    return food_bank


def visible_plan(db: Session, who: Principal, plan_id: int) -> Plan:
    """The plan if this person coordinates its program; 404 otherwise (ids reveal nothing)."""
    plan = db.get(Plan, plan_id)
    if plan is None or plan.food_bank_id not in who.organizations_with(*COORDINATORS):
        raise NotFoundException(f"No plan {plan_id}.")
    return plan


def plan_out(db: Session, plan: Plan) -> PlanOut:
    food_bank = db.get(Organization, plan.food_bank_id)
    assert food_bank is not None
    view = days.view(db, food_bank, plan.date, plan=plan)

    def driver(route: Any) -> DriverOut:
        user = route.driver.user
        return DriverOut(id=route.driver_id, email=user.email, name=user.display_name)

    routes = [RouteOut(id=r.id, driver=driver(r), colour=r.colour,
                       stops=[StopOut(id=s.id, order_id=s.order_id, seq=s.seq, eta=days.clock(s.eta) or None,
                                      status=s.status, outcome=s.outcome, boxes=s.boxes, locked=s.locked)
                              for s in view.route_stops(r.id)],
                       planned_start=days.clock(r.planned_start) or None,
                       planned_end=days.clock(r.planned_end) or None, distance_m=r.distance_m,
                       duration_s=r.duration_s, load_boxes=r.load_boxes,
                       published_version=r.published_version)
              for r in view.routes]
    unassigned = [UnassignedOut(order_id=s.order_id, stop_id=s.id,
                                reason=s.unassigned_reason or "not_planned",
                                detail=s.unassigned_detail or ("The day has not been planned yet."
                                                               if s.unassigned_reason is None else None))
                  for s in view.unassigned]
    job = view.job
    return PlanOut(id=plan.id, date=plan.date, status=plan.status, version=plan.version,
                   published_version=plan.published_version, job_status=job.status if job else None,
                   progress=dict(job.progress) if job else {}, routes=routes, unassigned=unassigned)


class PlanApi(Controller):
    path = "/api/v1/plans"
    tags = ["plans"]
    security = [{"BearerToken": []}]

    @post("/", status_code=202, opt={"roles": COORDINATORS}, sync_to_thread=True, summary="Plan a day",
          responses=error_responses(404, 409, 422),
          description=(
              "Builds the day's stops from the standing orders (and failed attempts carried over), "
              "then queues a solver run in the worker process. 202 with the plan id: poll "
              "GET /api/v1/plans/{id} until `job_status` is `done`. `driver_ids` picks the drivers "
              "(default: every driver with a shift that day); `time_limit_s` bounds the solve "
              f"(1–{planning.MAX_TIME_LIMIT_S:.0f} s, default {planning.DEFAULT_TIME_LIMIT_S:.0f}). "
              "409 while the program already has a plan being solved; 422 on a closed day or when "
              "no chosen driver has a shift."))
    def create_plan(self, request: Request, db: DB, settings: Config, data: JSONBody[PlanIn]) -> PlanQueued:
        who = principal(request)
        food_bank = food_bank_of(db, who, data.food_bank_id)
        if abs(data.date - program_today(request, food_bank)) > SYSTEM_WINDOW:
            raise FieldError(f"{data.date} is outside the days you can plan: choose a day within ten years "
                             "of today.", "date", code="outside_window")
        plan = days.prepare(db, food_bank, data.date)
        job = planning.enqueue(db, plan, who.user_id, driver_ids=data.driver_ids,
                               time_limit_s=data.time_limit_s)
        db.commit()
        return PlanQueued(id=plan.id, date=plan.date, status=plan.status, job_id=job.id,
                          job_status=job.status, time_limit_s=job.time_limit_s)

    @get("/{plan_id:int}", opt={"roles": COORDINATORS}, sync_to_thread=True, summary="A day's plan",
         responses=error_responses(404),
         description=(
             "The plan with its routes and the stops left out. A stop's `eta` is the planned start "
             "of service as local time `HH:MM` (the program's time zone); `status` is `pending` until "
             "a confirmation, then `delivered` or `failed` (`outcome` says which). `unassigned` lists "
             "each stop not on a route with the planner's reason (`no_skill`, `bad_lock`, "
             "`too_many_boxes`, `out_of_reach`, `window_unreachable`, `no_capacity_left`, "
             "`no_time_left`), `no_location` (address not located yet), `manual` (taken off by a "
             "coordinator) or `not_planned`. `progress` is the latest solver run's: `solutions`, "
             "`travel_s`, `distance_m`, `seconds`, `seconds_left`."))
    def get_plan(self, request: Request, db: DB, plan_id: PathId) -> PlanOut:
        return plan_out(db, visible_plan(db, principal(request), plan_id))

    @post("/{plan_id:int}/publish", status_code=200, opt={"roles": COORDINATORS}, sync_to_thread=True,
          responses=error_responses(404, 409),
          summary="Publish a plan to its drivers",
          description=(
              "Freezes the plan's version and issues each driver a personal link to their route "
              "(first publication). Republishing after edits marks the routes that changed and tells "
              "their drivers; `link` is then null (issue a new one with `delivery route-link`). "
              "409 when the plan is not planned yet or is being solved."))
    def publish_plan(self, request: Request, db: DB, settings: Config, audit: Audit,
                     plan_id: PathId) -> PublishOut:
        who = principal(request)
        plan = visible_plan(db, who, plan_id)
        published = publishing.publish(db, plan, audit, settings)
        db.commit()
        return PublishOut(id=plan.id, status=plan.status, published_version=plan.published_version,
                          routes=[PublishedRoute(route_id=p.route_id, stops=p.stops, link=p.link,
                                                 changed=p.changed,
                                                 driver=DriverOut(id=p.driver_id, email=p.driver_email,
                                                                  name=p.driver_name))
                                  for p in published])

    @post("/{plan_id:int}/cancel", status_code=200, opt={"roles": COORDINATORS}, sync_to_thread=True,
          responses=error_responses(404),
          summary="Stop the running solve", description="The best plan found so far is kept.")
    def cancel_plan(self, request: Request, db: DB, plan_id: PathId) -> PlanOut:
        plan = visible_plan(db, principal(request), plan_id)
        planning.cancel(db, plan)
        db.commit()
        return plan_out(db, plan)


__all__ = ["PlanApi", "plan_out", "visible_plan"]
