"""Drivers' pages: redeem a personal route link, see today's and upcoming routes, and a route's
stops on a phone.

Minimum necessary (R3.4): a driver page is rendered from `DriverStop`, an allowlist of fields;
the Patient row never reaches a driver template, so MRN, birth date, screening and clinical data
cannot leak into one by a template edit. Access is object- and time-bound (R3.3, R3.5): only the
driver's own route, only from publication until the end of the route day plus a short grace.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import quote

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from delivery.models import (
    Driver,
    Organization,
    Patient,
    Plan,
    PlanStatus,
    Role,
    Route,
    RouteLink,
    Stop,
    StopStatus,
    User,
)
from delivery.plans import publishing
from delivery.platform import audit as audit_trail
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.web.render import DB, Audit, Config, PathId, clock_of, page, principal
from delivery.web.security import session_cookie

DRIVERS = (Role.driver,)
VISIBLE_PLANS = (PlanStatus.published, PlanStatus.done)


# --- the allowlist of what a driver sees -----------------------------------------------------


@dataclass(frozen=True)
class DriverStop:
    """Exactly what a driver may see about a stop (R3.4): nothing else is passed to the template."""

    stop_id: int
    seq: int | None
    eta: str
    display_name: str
    address: str
    unit: str | None
    floor: int
    elevator: bool
    access_notes: str | None
    phone: str | None
    boxes: int
    box_type: str
    dietary: tuple[str, ...]
    navigate_url: str
    status: str
    outcome: str | None


def display_name(patient: Patient) -> str:
    """First name and last initial: enough to greet someone at the door."""
    initial = patient.family_name[:1].upper()
    return f"{patient.given_name} {initial}." if initial else patient.given_name


def clock(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds // 3600 % 24:02d}:{seconds % 3600 // 60:02d}"


def navigate_url(patient: Patient) -> str:
    """A maps link with the street address (opens the phone's maps app; works on iOS and Android)."""
    destination = f"{patient.address_line1}, {patient.city}, {patient.state} {patient.postal_code}"
    return "https://www.google.com/maps/dir/?api=1&destination=" + quote(destination, safe="")


def driver_stop(stop: Stop) -> DriverStop:
    patient = stop.patient
    return DriverStop(
        stop_id=stop.id, seq=stop.seq, eta=clock(stop.eta), display_name=display_name(patient),
        address=f"{patient.address_line1}, {patient.city} {patient.postal_code}", unit=patient.unit,
        floor=patient.floor, elevator=patient.elevator, access_notes=patient.access_notes,
        phone=None if patient.do_not_contact else patient.phone, boxes=stop.boxes, box_type=stop.box_type,
        dietary=tuple(patient.dietary or ()), navigate_url=navigate_url(patient), status=stop.status,
        outcome=stop.outcome)


def route_stops(db: Session, route_id: int) -> list[Stop]:
    """The route's stops in visiting order, each with its patient (one query)."""
    return list(db.scalars(select(Stop).where(Stop.route_id == route_id, Stop.status != StopStatus.removed)
                           .order_by(Stop.seq, Stop.id)).unique().all())


# --- when a route may be seen ----------------------------------------------------------------


def visible_until(plan: Plan, food_bank: Organization) -> dt.datetime:
    """The end of the route day plus the grace: the same moment the route's links expire."""
    return publishing.link_expiry(plan.date, food_bank.timezone, food_bank.link_grace_hours)


def is_visible(plan: Plan, food_bank: Organization, now: dt.datetime) -> bool:
    return (plan.status in VISIBLE_PLANS and plan.published_at is not None
            and plan.published_at <= now < visible_until(plan, food_bank))


def own_route(db: Session, user_id: int, route_id: int, now: dt.datetime) -> tuple[Route, Plan]:
    """The signed-in driver's own published route within its time window; anything else is 404,
    so another driver's route id reveals nothing (R3.3, R3.5)."""
    row = db.execute(select(Route, Plan, Organization).join(Plan, Plan.id == Route.plan_id)
                     .join(Organization, Organization.id == Plan.food_bank_id)
                     .join(Driver, Driver.id == Route.driver_id)
                     .where(Route.id == route_id, Driver.user_id == user_id)).first()
    if row is None or not is_visible(row.Plan, row.Organization, now):
        raise NotFoundException("No such route.")
    return row.Route, row.Plan


def day_label(day: dt.date) -> str:
    return f"{day:%A} {day.day} {day:%B}"


# --- the personal link ---------------------------------------------------------------------


def _refused(request: Request, reason: str, status_code: int) -> Template:
    return page(request, "driver/link.html", reason=reason, status_code=status_code)


class DriverController(Controller):
    path = "/"

    @get("/r/{token:str}", opt={"public": True}, sync_to_thread=True, include_in_schema=False)
    def open_link(self, request: Request, settings: Config, audit: Audit,
                  token: FromPath[str]) -> Response | Template:
        """Redeem a personal route link (R1.3). The first open makes a device session that lasts
        until the link expires and marks the link used; opening it again works only in that same
        browser. A used link in another browser, an expired or a revoked one gets a plain page."""
        database: Database = request.app.state.database
        now = settings.clock.now()
        me: auth.Principal | None = request.scope.get("user")
        with database.writer() as db:
            link = publishing.route_for_link(db, token, now)
            if link is None:  # unknown (404), or known but expired or revoked (410)
                known = len(token) <= 200 and db.scalar(
                    select(RouteLink.id).where(RouteLink.token_hash == auth.token_hash(token))) is not None
                return _refused(request, "expired" if known else "unknown", 410 if known else 404)
            row = db.execute(select(Route, Driver, User, Plan, Organization)
                             .join(Driver, Driver.id == Route.driver_id).join(User, User.id == Driver.user_id)
                             .join(Plan, Plan.id == Route.plan_id)
                             .join(Organization, Organization.id == Plan.food_bank_id)
                             .where(Route.id == link.route_id)).one()
            route, driver, user, plan, food_bank = row
            target = f"/driver/routes/{route.id}"
            if me is not None and me.user_id == user.id:
                return Redirect(target)  # this browser already holds the driver's session
            if not user.is_active or not driver.is_active or not is_visible(plan, food_bank, now):
                return _refused(request, "expired", 410)
            if link.opened_at is not None:
                return _refused(request, "used", 403)
            claimed = db.execute(update(RouteLink)
                                 .where(RouteLink.id == link.id, RouteLink.opened_at.is_(None))
                                 .values(opened_at=now)).rowcount
            if claimed != 1:  # another browser opened it a moment ago
                db.rollback()
                return _refused(request, "used", 403)
            raw, session = auth.start_session(db, user, settings)
            session.expires_at = link.expires_at
            audit_trail.record(db, audit.acting_as(user.id, {food_bank.id: Role.driver}),
                               "login", "route_link", link.id)
            db.commit()
        response = Redirect(target)
        max_age = max(int((link.expires_at - now).total_seconds()), 0)
        response.set_cookie(**session_cookie(settings, raw, max_age=max_age))
        return response

    @get("/driver", opt={"roles": DRIVERS}, sync_to_thread=True)
    def routes(self, request: Request, db: DB) -> Template:
        """The signed-in driver's published routes for today and the coming days."""
        now = clock_of(request).now()
        rows = db.execute(select(Route, Plan, Organization).join(Plan, Plan.id == Route.plan_id)
                          .join(Organization, Organization.id == Plan.food_bank_id)
                          .join(Driver, Driver.id == Route.driver_id)
                          .where(Driver.user_id == principal(request).user_id,
                                 Plan.status.in_(VISIBLE_PLANS),
                                 # yesterday somewhere on Earth; is_visible() decides exactly
                                 Plan.date >= now.date() - dt.timedelta(days=2))
                          .order_by(Plan.date)).all()
        counts: dict[int, int] = dict(db.execute(  # type: ignore[arg-type]
            select(Stop.route_id, func.count(Stop.id))
            .where(Stop.route_id.in_([r.Route.id for r in rows]), Stop.status != StopStatus.removed)
            .group_by(Stop.route_id)).all())
        routes = []
        for route, plan, food_bank in rows:
            if is_visible(plan, food_bank, now):
                routes.append({"id": route.id, "day": day_label(plan.date),
                               "start": clock(route.planned_start), "stops": counts.get(route.id, 0),
                               "boxes": route.load_boxes})
        return page(request, "driver/routes.html", routes=routes)

    @get("/driver/routes/{route_id:int}", opt={"roles": DRIVERS}, sync_to_thread=True)
    def route(self, request: Request, db: DB, route_id: PathId) -> Template:
        """One route's stops in order: who, where, how to get in, what to hand over."""
        route, plan = own_route(db, principal(request).user_id, route_id, clock_of(request).now())
        stops = [driver_stop(stop) for stop in route_stops(db, route.id)]
        return page(request, "driver/route.html", day=day_label(plan.date), start=clock(route.planned_start),
                    stops=stops, boxes=sum(s.boxes for s in stops),
                    notice=next(iter(publishing.notices(db, route.id)), None))
