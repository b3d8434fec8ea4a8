"""Publishing a day: freeze the plan's version and give each driver their route as a personal link.

A link is `{base_url}/r/{token}`: 256 random bits, of which only the SHA-256 is stored (R1.3). It
expires at 06:00 the morning after the route day (program time zone), can be revoked, and issuing a
new one revokes the previous one. Republishing after a late edit compares each route with what its
driver was given (`Route.published_fingerprint`) and tells the drivers whose route changed (a log
line and a `RouteNotice` their route page shows). Each publication of a route is also audited:
it discloses the patients' addresses to that driver.

With the link (or a password sign-in) the driver's phone also gets a *delivery token*: a bearer
credential for the confirmation API bound to the driver and the route (`drt_<row id>.<HMAC>`). Only
a salt is stored; the token is an HMAC of it under the app's secret key, so the route page can hand
it out again on every load without writing. Revoking the route's links revokes it too.

Services do not commit; callers do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import sys
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.models import (
    DeliveryToken,
    Driver,
    EventKind,
    Organization,
    Plan,
    PlanStatus,
    Route,
    RouteLink,
    RouteNotice,
    Stop,
    StopStatus,
    User,
    utcnow,
)
from delivery.plans import planning, stop_events
from delivery.platform import audit, auth
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.errors import ConflictError
from delivery.platform.settings import Settings
from delivery.timeline import patient_texts

log = logging.getLogger("delivery.plans.publishing")

TOKEN_BYTES = 32  # 256 bits (R1.3 asks for at least 128)
PUBLISH = "publish"


class PublishError(ConflictError):
    """The plan cannot be published as it stands (not planned yet, being solved); the message
    says what to do first."""

    default_code = "not_publishable"


@dataclass(frozen=True)
class Published:
    """One route after publishing: its link when one was issued, whether it changed."""

    route_id: int
    driver_id: int
    driver_name: str
    driver_email: str
    stops: int
    link: str | None  # a fresh personal link (first publication only)
    changed: bool  # republished with changes: the driver was told
    first: bool


# --- links -------------------------------------------------------------------------------------


def link_expiry(date: dt.date, timezone: str, grace_hours: int) -> dt.datetime:
    """A link works until `grace_hours` past the midnight that ends the route day (program setting)."""
    local = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tzinfo=ZoneInfo(timezone)) \
        + dt.timedelta(hours=grace_hours)
    return local.astimezone(dt.UTC)


def issue_link(db: Session, route: Route, settings: Settings) -> str:
    """A new personal link to the route; any earlier link of the route stops working."""
    plan = db.get(Plan, route.plan_id)
    assert plan is not None
    food_bank = db.get(Organization, plan.food_bank_id)
    assert food_bank is not None
    revoke_links(db, route)
    issue_delivery_token(db, route)
    raw = secrets.token_urlsafe(TOKEN_BYTES)
    db.add(RouteLink(route_id=route.id, token_hash=auth.token_hash(raw),
                     expires_at=link_expiry(plan.date, food_bank.timezone, food_bank.link_grace_hours)))
    db.flush()
    return f"{settings.base_url.rstrip('/')}/r/{raw}"


def revoke_links(db: Session, route: Route) -> int:
    """Revoke every live link of the route, and its delivery token; returns how many links."""
    now = utcnow()
    result = db.execute(update(RouteLink).where(RouteLink.route_id == route.id,
                                                RouteLink.revoked_at.is_(None))
                        .values(revoked_at=now))
    db.execute(update(DeliveryToken).where(DeliveryToken.route_id == route.id,
                                           DeliveryToken.revoked_at.is_(None))
               .values(revoked_at=now))
    return result.rowcount or 0


# --- delivery tokens ---------------------------------------------------------------------------

DELIVERY_TOKEN_PREFIX = "drt_"


def issue_delivery_token(db: Session, route: Route) -> DeliveryToken:
    """A new delivery token row for the route's driver (the caller has revoked any earlier one)."""
    driver = db.get(Driver, route.driver_id)
    assert driver is not None
    row = DeliveryToken(route_id=route.id, user_id=driver.user_id, salt=secrets.token_hex(32))
    db.add(row)
    db.flush()
    return row


def delivery_token_for(db: Session, route_id: int, user_id: int) -> DeliveryToken | None:
    """The route's live delivery token for this driver, if any."""
    return db.scalar(select(DeliveryToken).where(DeliveryToken.route_id == route_id,
                                                 DeliveryToken.user_id == user_id,
                                                 DeliveryToken.revoked_at.is_(None))
                     .order_by(DeliveryToken.id.desc()).limit(1))


def raw_delivery_token(row: DeliveryToken, secret_key: str) -> str:
    mac = hmac.new(secret_key.encode(), f"{row.id}:{row.route_id}:{row.user_id}:{row.salt}".encode(),
                   hashlib.sha256).hexdigest()
    return f"{DELIVERY_TOKEN_PREFIX}{row.id}.{mac}"


def resolve_delivery_token(db: Session, raw: str, secret_key: str) -> DeliveryToken | None:
    """The live token row behind a raw delivery token, or None (unknown, forged or revoked).
    Whether the route may still take confirmations is the caller's question (its time windows)."""
    ident, _, _mac = raw.removeprefix(DELIVERY_TOKEN_PREFIX).partition(".")
    if not raw.startswith(DELIVERY_TOKEN_PREFIX) or not ident.isdigit() or len(raw) > 120:
        return None
    row = db.get(DeliveryToken, int(ident))
    if row is None or row.revoked_at is not None:
        return None
    return row if hmac.compare_digest(raw_delivery_token(row, secret_key), raw) else None


def route_for_link(db: Session, raw_token: str, now: dt.datetime) -> RouteLink | None:
    """The link behind a raw token if it is known, not revoked and not expired."""
    if not raw_token or len(raw_token) > 200:
        return None
    link = db.scalar(select(RouteLink).where(RouteLink.token_hash == auth.token_hash(raw_token)))
    if link is None or link.revoked_at is not None or link.expires_at <= now:
        return None
    return link


# --- publishing --------------------------------------------------------------------------------


def fingerprint(stops: list[Stop]) -> str:
    """What a driver sees of a route: the stops in order with their planned times (minutes)."""
    text = ";".join(f"{s.id}:{s.seq}:{(s.eta or 0) // 60}:{s.boxes}" for s in stops)
    return hashlib.sha256(text.encode()).hexdigest()


def notices(db: Session, route_id: int) -> list[RouteNotice]:
    """What the route's driver was told after republishing, newest first (for the driver's page)."""
    return list(db.scalars(select(RouteNotice).where(RouteNotice.route_id == route_id)
                           .order_by(RouteNotice.id.desc())))


def publish(db: Session, plan: Plan, actor: AuditContext, settings: Settings) -> list[Published]:
    """Freeze the plan's current version and give it to the drivers.

    First publication: a personal link per route with stops. Republishing: routes whose stops or
    times changed since their driver got them are marked (`published_version`) and their drivers
    told; unchanged routes are left alone (their links keep working). Each stop's referral gets
    a `scheduled` event the first time its stop is published.
    """
    plan = planning.lock_plan(db, plan.id)
    if planning.active_job(db, plan) is not None:
        raise PublishError("The day is being planned: wait for the planner to finish, then publish.")
    if plan.status not in (PlanStatus.planned, PlanStatus.published):
        raise PublishError("Plan the day's routes before publishing them.")
    routes = list(db.scalars(select(Route).where(Route.plan_id == plan.id).order_by(Route.colour, Route.id))
                  .unique())
    stops = db.scalars(select(Stop).where(Stop.plan_id == plan.id, Stop.route_id.is_not(None),
                                          Stop.status != StopStatus.removed)
                       .order_by(Stop.seq)).unique().all()
    by_route: dict[int, list[Stop]] = {}
    for stop in stops:
        by_route.setdefault(stop.route_id, []).append(stop)  # type: ignore[arg-type]
    if not by_route:
        raise PublishError("No route has any stop yet: plan the day first.")
    users = {u.id: u for u in db.scalars(select(User).join(Driver, Driver.user_id == User.id)
                                          .where(Driver.id.in_([r.driver_id for r in routes])))}
    now = settings.clock.now()
    out = []
    for route in routes:
        mine = by_route.get(route.id, [])
        first = route.published_version is None
        if first and not mine:
            continue
        print_ = fingerprint(mine)
        changed = not first and route.published_fingerprint != print_
        link = issue_link(db, route, settings) if first else None
        if first or changed:
            route.published_version, route.published_fingerprint = plan.version, print_
            audit.record(db, actor, PUBLISH, "route", route.id,
                         detail=f"plan {plan.id} {plan.date} version {plan.version} {print_}")
        if changed:
            message = (f"Your route for {plan.date:%a %d %b} changed at "
                       f"{now.astimezone(_tz(db, plan)):%H:%M}: {len(mine)} stops now. "
                       "Open your route again before you leave.")
            db.add(RouteNotice(route_id=route.id, message=message[:500]))
            log.info("route %s (driver %s) changed on republishing plan %s: driver notified",
                     route.id, route.driver_id, plan.id)
        user = users.get(route.driver.user_id)
        out.append(Published(route_id=route.id, driver_id=route.driver_id,
                             driver_name=user.display_name if user else "",
                             driver_email=user.email if user else "", stops=len(mine), link=link,
                             changed=changed, first=first))
    # Each referral's timeline (and so its clinic, through webhooks and FHIR) learns its day once.
    stop_events.announce(db, stops, EventKind.scheduled, actor_id=actor.user_id)
    plan.status = PlanStatus.published
    plan.published_version, plan.published_at = plan.version, now
    patient_texts.queue_day_before(db, plan.id)
    db.flush()
    return out


def _tz(db: Session, plan: Plan) -> ZoneInfo:
    food_bank = db.get(Organization, plan.food_bank_id)
    return ZoneInfo(food_bank.timezone if food_bank else "UTC")


# --- the CLI ----------------------------------------------------------------------------------


def route_link_command(database: Database, settings: Settings, driver_email: str, date: dt.date) -> int:
    """`delivery route-link --driver EMAIL --date YYYY-MM-DD`: print a fresh link (the old one stops)."""
    email = auth.normalise_email(driver_email)
    with database.writer() as db:
        driver = db.scalar(select(Driver).join(User, User.id == Driver.user_id).where(User.email == email))
        if driver is None:
            print(f"delivery route-link: no driver with the email {email}", file=sys.stderr)
            return 2
        route = db.scalar(select(Route).join(Plan, Plan.id == Route.plan_id)
                          .where(Route.driver_id == driver.id, Plan.date == date,
                                 Plan.status.in_([PlanStatus.published, PlanStatus.done]),
                                 Route.published_version.is_not(None)))
        if route is None:
            published = db.scalar(select(Plan.id).where(
                Plan.food_bank_id == driver.food_bank_id, Plan.date == date,
                Plan.status.in_([PlanStatus.published, PlanStatus.done])))
            if published is not None:  # the day is out; this driver simply has nothing on it
                print(f"delivery route-link: {driver.user.display_name} has no stops on "
                      f"{date:%a} {date.day} {date:%b}", file=sys.stderr)
            else:
                print(f"delivery route-link: {email} has no published route on {date:%a %d %b %Y} "
                      "(publish the day's plan first)", file=sys.stderr)
            return 2
        link = issue_link(db, route, settings)
        db.commit()
    print(link)
    return 0
