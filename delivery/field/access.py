"""Which route and stops a driver may reach, and when (R3.3, R3.5, R8.3).

Two windows (DESIGN.md): a driver *sees* a route from its publication until the end of the route
day plus the grace (06:00 the next morning, when its links expire); a confirmation *made* in that
time is still taken when it arrives up to 72 hours later (`confirmations.DeliveryWindow`).
Anything outside a driver's own published routes is "not found", so ids reveal nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.field.confirmations import DeliveryWindow
from delivery.models import Driver, Organization, Plan, PlanStatus, Route, Stop, StopStatus
from delivery.plans import publishing

VISIBLE_PLANS = (PlanStatus.published, PlanStatus.done)


def visible_until(plan: Plan, food_bank: Organization) -> dt.datetime:
    """The end of the route day plus the grace: the same moment the route's links expire."""
    return publishing.link_expiry(plan.date, food_bank.timezone, food_bank.link_grace_hours)


def is_visible(plan: Plan, food_bank: Organization, now: dt.datetime) -> bool:
    return (plan.status in VISIBLE_PLANS and plan.published_at is not None
            and plan.published_at <= now < visible_until(plan, food_bank))


def delivery_window(plan: Plan, food_bank: Organization) -> DeliveryWindow | None:
    """When confirmations of the plan's stops are taken; None before publication."""
    if plan.status not in VISIBLE_PLANS or plan.published_at is None:
        return None
    return DeliveryWindow(opens=plan.published_at, closes=visible_until(plan, food_bank))


@dataclass(frozen=True)
class RouteAccess:
    route: Route
    plan: Plan
    food_bank: Organization


def own_route(db: Session, user_id: int, route_id: int) -> RouteAccess | None:
    """The driver's own route with its plan and program, whatever the time (callers check it)."""
    row = db.execute(select(Route, Plan, Organization).join(Plan, Plan.id == Route.plan_id)
                     .join(Organization, Organization.id == Plan.food_bank_id)
                     .join(Driver, Driver.id == Route.driver_id)
                     .where(Route.id == route_id, Driver.user_id == user_id)).first()
    return RouteAccess(row.Route, row.Plan, row.Organization) if row is not None else None


@dataclass(frozen=True)
class StopAccess:
    stop: Stop
    route: Route
    plan: Plan
    window: DeliveryWindow


def confirmable_stop(db: Session, *, stop_id: int, user_id: int, route_id: int | None = None,
                     ) -> StopAccess | None:
    """The stop if it is on one of this driver's published routes (on `route_id` when the caller is
    bound to one route, as a delivery token is); None otherwise. The time window is checked by the
    confirmation service, because a replay is answered even after it."""
    stop = db.get(Stop, stop_id)
    if stop is None or stop.route_id is None or stop.status == StopStatus.removed:
        return None
    if route_id is not None and stop.route_id != route_id:
        return None
    access = own_route(db, user_id, stop.route_id)
    if access is None:
        return None
    window = delivery_window(access.plan, access.food_bank)
    if window is None or access.route.published_version is None:
        return None
    return StopAccess(stop, access.route, access.plan, window)
