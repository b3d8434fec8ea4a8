"""Drivers' pages: redeem a personal route link, see today's route on a phone, confirm each stop,
flag what they saw, finish the route, offer shifts, in their language.

Minimum necessary (R3.4): a driver page is rendered from `DriverStop`, an allowlist of fields;
the Patient row never reaches a driver template, so MRN, birth date, screening and clinical data
cannot leak into one by a template edit. Access is object- and time-bound (R3.3, R3.5): only the
driver's own route, only from publication until the end of the route day plus a short grace.

The route page works without JavaScript (plain forms posting here, calling the same services);
with it, `static/js/driver.js` queues each confirmation on the phone and sends it to
`POST /api/v1/stops/{id}/confirmations` with the route's delivery token, online or later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import File, Redirect, Template
from msgspec import Meta
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from delivery.field import access, confirmations, reports
from delivery.models import (
    Confirmation,
    ConfirmationOutcome,
    Depot,
    Driver,
    Organization,
    Patient,
    Plan,
    Role,
    Route,
    RouteLink,
    Shift,
    Stop,
    StopStatus,
    User,
)
from delivery.plans import publishing
from delivery.platform import audit as audit_trail
from delivery.platform import auth
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.errors import FieldError
from delivery.platform.settings import ROOT
from delivery.program import roster
from delivery.web import i18n
from delivery.web.render import DB, Audit, Config, PathId, clock_of, page, principal, program_today
from delivery.web.security import session_cookie

DRIVERS = (Role.driver,)
DEVICE_COOKIE = "__Host-device"  # which phone opened a personal link (R1.3: single use per device)
DEVICE_MAX_AGE = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days
SHIFT_WEEKS = 6  # how far ahead a driver may offer shifts

GREETINGS = {"en": "Hello", "es": "Hola", "zh": "你好", "vi": "Xin chào", "tl": "Kumusta",
             "ko": "안녕하세요", "ar": "مرحبا", "ru": "Здравствуйте", "pt": "Olá", "fr": "Bonjour",
             "fa": "سلام", "am": "ሰላም", "so": "Salaam", "hi": "नमस्ते", "pa": "ਸਤ ਸ੍ਰੀ ਅਕਾਲ", "ja": "こんにちは"}
UNIT_WORDS = ("apt", "apartment", "unit", "suite", "ste", "room", "rm", "fl", "floor", "bldg", "building")


# --- the allowlist of what a driver sees -----------------------------------------------------


@dataclass(frozen=True)
class DriverStop:
    """Exactly what a driver may see about a stop (R3.4): nothing else is passed to the template."""

    stop_id: int
    seq: int | None
    eta: str
    window: str
    display_name: str
    language: str
    greeting: str | None
    address: str
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
    confirmation_id: int | None
    undo_until: dt.datetime | None


def display_name(patient: Patient) -> str:
    """First name and last initial: enough to greet someone at the door."""
    initial = patient.family_name[:1].upper()
    return f"{patient.given_name} {initial}." if initial else patient.given_name


def clock(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds // 3600 % 24:02d}:{seconds % 3600 // 60:02d}"


def unit_text(unit: str | None) -> str | None:
    """"3B" → "Apt 3B"; "Apt 3B", "Unit 4", "#12" stay as written (never "unit Apt 3B")."""
    unit = (unit or "").strip()
    if not unit:
        return None
    first = unit.split()[0].rstrip(".").lower()
    if first in UNIT_WORDS or unit.startswith("#"):
        return unit
    return f"Apt {unit}"


def street_address(patient: Patient) -> str:
    unit = unit_text(patient.unit)
    return (f"{patient.address_line1}{', ' + unit if unit else ''}, {patient.city} {patient.postal_code}")


def navigate_url(patient: Patient, user_agent: str) -> str:
    """The phone's own maps app: `geo:` on Android, Apple Maps on iOS, a web maps link otherwise."""
    destination = f"{patient.address_line1}, {patient.city}, {patient.state} {patient.postal_code}"
    if "Android" in user_agent:
        return "geo:0,0?q=" + quote(destination, safe="")
    if any(device in user_agent for device in ("iPhone", "iPad", "iPod")):
        return "https://maps.apple.com/?daddr=" + quote(destination, safe="")
    return "https://www.google.com/maps/dir/?api=1&destination=" + quote(destination, safe="")


def driver_stop(stop: Stop, confirmation: Confirmation | None = None, user_agent: str = "") -> DriverStop:
    patient = stop.patient
    window = (f"{clock(stop.window_start)}–{clock(stop.window_end)}"
              if stop.window_start is not None and stop.window_end is not None else "")
    return DriverStop(
        stop_id=stop.id, seq=stop.seq, eta=clock(stop.eta), window=window,
        display_name=display_name(patient), language=patient.language,
        greeting=GREETINGS.get(patient.language.split("-")[0].lower()) if patient.language != "en" else None,
        address=street_address(patient), floor=patient.floor, elevator=patient.elevator,
        access_notes=patient.access_notes, phone=None if patient.do_not_contact else patient.phone,
        boxes=stop.boxes, box_type=stop.box_type,
        dietary=tuple(patient.dietary or ()),
        navigate_url=navigate_url(patient, user_agent), status=stop.status, outcome=stop.outcome,
        confirmation_id=confirmation.id if confirmation else None,
        undo_until=confirmation.received_at + confirmations.UNDO_WINDOW if confirmation else None)


def route_stops(db: Session, route_id: int) -> list[Stop]:
    """The route's stops in visiting order, each with its patient (one query)."""
    return list(db.scalars(select(Stop).where(Stop.route_id == route_id, Stop.status != StopStatus.removed)
                           .order_by(Stop.seq, Stop.id)).unique().all())


def live_confirmations(db: Session, stop_ids: list[int]) -> dict[int, Confirmation]:
    rows = db.scalars(select(Confirmation).where(Confirmation.stop_id.in_(stop_ids),
                                                 Confirmation.undone_at.is_(None))
                      .order_by(Confirmation.id.desc()))
    return {c.stop_id: c for c in rows}


def day_label(day: dt.date) -> str:
    """For staff pages (English); driver pages format dates in the driver's locale with Babel."""
    return f"{day:%A} {day.day} {day:%B}"


def own_route(db: Session, user_id: int, route_id: int, now: dt.datetime) -> access.RouteAccess:
    """The signed-in driver's own published route within its time window; anything else is 404,
    so another driver's route id reveals nothing (R3.3, R3.5)."""
    found = access.own_route(db, user_id, route_id)
    if found is None or found.route.published_version is None \
            or not access.is_visible(found.plan, found.food_bank, now):
        raise NotFoundException("No such route.")
    return found


def audit_views(request: Request, audit: AuditContext, stops: list[Stop]) -> None:
    """One audit event per stop whose details a driver's page showed (R10.1)."""
    audit_trail.record_reads(request.app.state.database, audit, "stop",
                             ((s.id, s.patient_id) for s in stops), detail="driver route page")


def locale_of(request: Request, db: Session, user_id: int | None) -> str:
    saved = db.scalar(select(Driver.locale).where(Driver.user_id == user_id)) if user_id else None
    return i18n.choose(saved, request.headers.get("accept-language"))


def driver_page(request: Request, db: Session, template: str, *, status_code: int = 200,
                **context: Any) -> Template:
    me: auth.Principal | None = request.scope.get("user")
    locale = locale_of(request, db, me.user_id if me else None)
    return page(request, template, status_code=status_code, **i18n.template_context(locale), **context)


# --- forms -------------------------------------------------------------------------------------

Text = Annotated[str, Meta(max_length=confirmations.MAX_NOTE_LENGTH)]


class ConfirmForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    outcome: ConfirmationOutcome
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=confirmations.MAX_KEY_LENGTH)]
    note: Text = ""
    csrf_token: str = ""


class ReportForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    kind: Annotated[str, Meta(max_length=20)]
    detail: Annotated[str, Meta(max_length=500)] = ""
    csrf_token: str = ""


TimeOfDay = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")]  # a time input


class ShiftForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    date: dt.date
    start: TimeOfDay
    end: TimeOfDay
    start_place: Annotated[str, Meta(max_length=20)]
    csrf_token: str = ""


class LanguageForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    locale: Annotated[str, Meta(max_length=10)]
    next: Annotated[str, Meta(max_length=200)] = "/driver"
    csrf_token: str = ""


Form = Body(media_type=RequestEncodingType.URL_ENCODED)
NOTICES = ("confirmed", "conflict", "late", "undone", "undo_late", "reported", "problem_sent")


def back_to_route(route_id: int, notice: str, stop_id: int | None = None) -> Redirect:
    anchor = f"#stop-{stop_id}" if stop_id else ""
    return Redirect(f"/driver/routes/{route_id}?notice={notice}{anchor}", status_code=303)


def _refused(request: Request, db: Session, reason: str, status_code: int) -> Template:
    return driver_page(request, db, "driver/link.html", reason=reason, status_code=status_code)


def device_hash(raw: str | None) -> str | None:
    return hashlib.sha256(raw.encode()).hexdigest() if raw and len(raw) <= 100 else None


class DriverController(Controller):
    path = "/"

    @get("/r/{token:str}", opt={"public": True, "throttle": "login"}, sync_to_thread=True,
         include_in_schema=False)
    def open_link(self, request: Request, settings: Config, audit: Audit,
                  token: FromPath[str]) -> Response | Template:
        """Redeem a personal route link (R1.3). The first open makes a device session that lasts
        until the link expires, marks the link used and remembers the phone (a device cookie); that
        phone may open the link again, after signing out too, until it expires. Another phone, an
        expired or a revoked link gets a plain page saying how to get a new one."""
        database: Database = request.app.state.database
        now = settings.clock.now()
        me: auth.Principal | None = request.scope.get("user")
        device = request.cookies.get(DEVICE_COOKIE)
        with database.writer() as db:
            link = publishing.route_for_link(db, token, now)
            if link is None:  # unknown (404), or known but expired or revoked (410)
                known = len(token) <= 200 and db.scalar(
                    select(RouteLink.id).where(RouteLink.token_hash == auth.token_hash(token))) is not None
                return _refused(request, db, "expired" if known else "unknown", 410 if known else 404)
            row = db.execute(select(Route, Driver, User, Plan, Organization)
                             .join(Driver, Driver.id == Route.driver_id).join(User, User.id == Driver.user_id)
                             .join(Plan, Plan.id == Route.plan_id)
                             .join(Organization, Organization.id == Plan.food_bank_id)
                             .where(Route.id == link.route_id)).one()
            route, driver, user, plan, food_bank = row
            target = f"/driver/routes/{route.id}"
            if me is not None and me.user_id == user.id:
                return Redirect(target)  # this browser already holds the driver's session
            if not user.is_active or not driver.is_active or not access.is_visible(plan, food_bank, now):
                return _refused(request, db, "expired", 410)
            if link.opened_at is not None:
                if link.device_hash is None or device_hash(device) != link.device_hash:
                    return _refused(request, db, "used", 403)
            else:
                device = device or secrets.token_urlsafe(32)
                claimed = db.execute(update(RouteLink)
                                     .where(RouteLink.id == link.id, RouteLink.opened_at.is_(None))
                                     .values(opened_at=now, device_hash=device_hash(device))).rowcount
                if claimed != 1:  # another browser opened it a moment ago
                    db.rollback()
                    return _refused(request, db, "used", 403)
            raw, session = auth.start_session(db, user, settings)
            session.expires_at = link.expires_at
            audit_trail.record(db, audit.acting_as(user.id, {food_bank.id: Role.driver}),
                               "login", "route_link", link.id)
            db.commit()
        response = Redirect(target)
        max_age = max(int((link.expires_at - now).total_seconds()), 0)
        response.set_cookie(**session_cookie(settings, raw, max_age=max_age))
        response.set_cookie(key=DEVICE_COOKIE, value=device, path="/", httponly=True, secure=True,
                            samesite="lax", max_age=DEVICE_MAX_AGE)
        return response

    @get("/driver", opt={"roles": DRIVERS}, sync_to_thread=True)
    def routes(self, request: Request, db: DB) -> Template:
        """The signed-in driver's published routes for today and the coming days, and their shifts."""
        now = clock_of(request).now()
        me = principal(request)
        rows = db.execute(select(Route, Plan, Organization).join(Plan, Plan.id == Route.plan_id)
                          .join(Organization, Organization.id == Plan.food_bank_id)
                          .join(Driver, Driver.id == Route.driver_id)
                          .where(Driver.user_id == me.user_id, Plan.status.in_(access.VISIBLE_PLANS),
                                 Route.published_version.is_not(None),
                                 Plan.date >= (now - dt.timedelta(days=2)).date())
                          .order_by(Plan.date)).all()
        counts: dict[int, int] = dict(db.execute(  # type: ignore[arg-type]
            select(Stop.route_id, func.count(Stop.id))
            .where(Stop.route_id.in_([r.Route.id for r in rows]), Stop.status != StopStatus.removed)
            .group_by(Stop.route_id)).all())
        routes = [{"id": route.id, "date": plan.date, "start": clock(route.planned_start),
                   "stops": counts.get(route.id, 0), "boxes": route.load_boxes}
                  for route, plan, food_bank in rows if access.is_visible(plan, food_bank, now)]
        return driver_page(request, db, "driver/routes.html", routes=routes)

    @get("/driver/routes/{route_id:int}", opt={"roles": DRIVERS, "phi": ("R", "stop")}, sync_to_thread=True)
    def route(self, request: Request, db: DB, settings: Config, audit: Audit, route_id: PathId,
              notice: FromQuery[str] = "", reason_for: FromQuery[int] = 0) -> Template:
        """The day: overview, progress, the next stop on top with its card, done stops folded away.
        Also hands the page the route's delivery token for the confirmation API."""
        me = principal(request)
        found = own_route(db, me.user_id, route_id, clock_of(request).now())
        route, plan = found.route, found.plan
        stops = route_stops(db, route.id)
        done = live_confirmations(db, [s.id for s in stops])
        agent = request.headers.get("user-agent") or ""
        cards = [driver_stop(s, done.get(s.id), agent) for s in stops]
        token_row = publishing.delivery_token_for(db, route.id, me.user_id)
        shift = db.get(Shift, route.shift_id) if route.shift_id else None
        depot = db.get(Depot, shift.start_depot_id) if shift and shift.start_depot_id else None
        loading = Counter[str]()
        for s in stops:
            loading[s.box_type] += s.boxes
        audit_views(request, audit, stops)
        return driver_page(
            request, db, "driver/route.html", route_id=route.id, date=plan.date,
            start=clock(route.planned_start), finish=clock(route.planned_end),
            start_place=depot.name if depot else None,
            pending=[c for c in cards if c.status == StopStatus.pending],
            done=[c for c in cards if c.status != StopStatus.pending],
            total=len(cards), loading=sorted(loading.items()), boxes=sum(loading.values()),
            notice_text=next(iter(publishing.notices(db, route.id)), None),
            notice=notice if notice in NOTICES else "", reason_for=reason_for,
            delivery_token=publishing.raw_delivery_token(token_row, settings.secret_key) if token_row else "",
            new_key=lambda: str(uuid.uuid4()), now=clock_of(request).now(), report_kinds=reports.STOP_KINDS)

    @post("/driver/stops/{stop_id:int}/confirm", opt={"roles": DRIVERS}, sync_to_thread=True)
    def confirm(self, request: Request, db: DB, stop_id: PathId,
                data: Annotated[ConfirmForm, Form]) -> Redirect:
        """The no-JavaScript way to confirm: the same service the API calls, at the server's time."""
        me = principal(request)
        found = access.confirmable_stop(db, stop_id=stop_id, user_id=me.user_id)
        if found is None:
            raise NotFoundException("No such stop on your routes.")
        try:
            with confirmations.holding_key(me.user_id, data.idempotency_key):
                result = confirmations.confirm_stop(
                    db, stop=found.stop, user_id=me.user_id, outcome=data.outcome, note=data.note,
                    occurred_at=clock_of(request).now(), idempotency_key=data.idempotency_key,
                    window=found.window, now=clock_of(request).now())
        except confirmations.OutsideWindow:
            return back_to_route(found.route.id, "late", stop_id)
        except (confirmations.ConfirmError, confirmations.KeyInFlight):
            return back_to_route(found.route.id, "conflict", stop_id)
        if not result.ok:
            return back_to_route(found.route.id, "conflict", stop_id)
        db.commit()
        return back_to_route(found.route.id, "confirmed", stop_id)

    @post("/driver/confirmations/{confirmation_id:int}/undo", opt={"roles": DRIVERS}, sync_to_thread=True)
    def undo(self, request: Request, db: DB, audit: Audit, confirmation_id: PathId) -> Response:
        """Withdraw one's own confirmation within 5 minutes (an audited correction, not a delete)."""
        me = principal(request)
        confirmation = db.get(Confirmation, confirmation_id)
        found = confirmation and access.confirmable_stop(db, stop_id=confirmation.stop_id, user_id=me.user_id)
        if confirmation is None or not found or confirmation.user_id != me.user_id:
            raise NotFoundException("No such confirmation of yours.")
        try:
            confirmations.undo(db, confirmation, user_id=me.user_id, now=clock_of(request).now())
        except confirmations.UndoError as exc:
            if request.headers.get("accept", "").startswith("application/json"):
                return Response({"detail": str(exc)}, status_code=409)
            return back_to_route(found.route.id, "undo_late", confirmation.stop_id)
        audit_trail.record(db, audit, "U", "confirmation", confirmation.id, patient_id=found.stop.patient_id,
                           detail="undone by its driver within 5 minutes")
        db.commit()
        if request.headers.get("accept", "").startswith("application/json"):
            return Response({"stop_id": confirmation.stop_id, "status": StopStatus.pending}, status_code=200)
        return back_to_route(found.route.id, "undone", confirmation.stop_id)

    @post("/driver/stops/{stop_id:int}/reports", opt={"roles": DRIVERS}, sync_to_thread=True)
    def flag_stop(self, request: Request, db: DB, stop_id: PathId,
                  data: Annotated[ReportForm, Form]) -> Redirect:
        """A quick flag at a stop for the coordinator (an address change goes to their review queue)."""
        me = principal(request)
        found = access.confirmable_stop(db, stop_id=stop_id, user_id=me.user_id)
        if found is None or not access.is_visible(found.plan, db.get(Organization, found.plan.food_bank_id),  # type: ignore[arg-type]
                                                  clock_of(request).now()):
            raise NotFoundException("No such stop on your routes.")
        try:
            reports.flag_stop(db, stop=found.stop, route_id=found.route.id, user_id=me.user_id,
                              kind=data.kind, detail=data.detail, now=clock_of(request).now())
        except FieldError as exc:
            raise _bad_request(str(exc)) from None
        db.commit()
        return back_to_route(found.route.id, "reported", stop_id)

    @post("/driver/routes/{route_id:int}/problem", opt={"roles": DRIVERS}, sync_to_thread=True)
    def report_problem(self, request: Request, db: DB, route_id: PathId,
                       data: Annotated[ReportForm, Form]) -> Redirect:
        """"Report a problem": a message about the route for the coordinator's exceptions list."""
        me = principal(request)
        found = own_route(db, me.user_id, route_id, clock_of(request).now())
        try:
            reports.report_problem(db, route_id=found.route.id, user_id=me.user_id, detail=data.detail)
        except FieldError as exc:
            raise _bad_request(str(exc)) from None
        db.commit()
        return back_to_route(found.route.id, "problem_sent")

    @get("/driver/routes/{route_id:int}/summary", opt={"roles": DRIVERS}, sync_to_thread=True)
    def summary(self, request: Request, db: DB, route_id: PathId) -> Template:
        """End of the route: delivered, not delivered, boxes to bring back."""
        me = principal(request)
        found = own_route(db, me.user_id, route_id, clock_of(request).now())
        stops = route_stops(db, found.route.id)
        delivered = [s for s in stops if s.status == StopStatus.delivered]
        failed = [s for s in stops if s.status == StopStatus.failed]
        pending = [s for s in stops if s.status == StopStatus.pending]
        back = Counter[str]()
        for s in failed + pending:
            back[s.box_type] += s.boxes
        return driver_page(request, db, "driver/summary.html", route_id=found.route.id, date=found.plan.date,
                           delivered=len(delivered), failed=len(failed), pending=len(pending),
                           bring_back=sorted(back.items()), bring_back_total=sum(back.values()))

    @get("/driver/shifts", opt={"roles": DRIVERS}, sync_to_thread=True)
    def shifts(self, request: Request, db: DB) -> Template:
        """The shifts the driver offered or was given for the coming weeks, and a form to offer one."""
        return self._shifts_page(request, db, error=None)

    @post("/driver/shifts", opt={"roles": DRIVERS}, sync_to_thread=True)
    def offer_shift(self, request: Request, db: DB, data: Annotated[ShiftForm, Form]) -> Response:
        """Offer a shift through the roster's one write path; the coordinator sees it on the roster."""
        driver = self._driver(db, principal(request).user_id)
        today = program_today(request, db.get(Organization, driver.food_bank_id))  # type: ignore[arg-type]
        if data.date > today + dt.timedelta(weeks=SHIFT_WEEKS):
            return self._shifts_page(request, db, status_code=400, form=data,
                                     error=f"Offer shifts up to {SHIFT_WEEKS} weeks ahead.")
        try:
            roster.save_shift(db, driver=driver, today=today, offered_by="driver", data=roster.ShiftIn(
                date=data.date, start=dt.time.fromisoformat(data.start), end=dt.time.fromisoformat(data.end),
                start_place=data.start_place,
                end_place=data.start_place))
        except roster.RosterError as exc:
            return self._shifts_page(request, db, status_code=400, form=data, error=str(exc))
        db.commit()
        return Redirect("/driver/shifts", status_code=303)

    def _driver(self, db: Session, user_id: int) -> Driver:
        driver = db.scalar(select(Driver).where(Driver.user_id == user_id))
        if driver is None:
            raise NotFoundException("Your account is not on a program's roster of drivers.")
        return driver

    def _shifts_page(self, request: Request, db: Session, *, error: str | None, status_code: int = 200,
                     form: ShiftForm | None = None) -> Template:
        driver = self._driver(db, principal(request).user_id)
        today = program_today(request, db.get(Organization, driver.food_bank_id))  # type: ignore[arg-type]
        mine = roster.shifts_between(db, driver, today, today + dt.timedelta(weeks=SHIFT_WEEKS))
        depots = roster.program_depots(db, driver.food_bank_id)
        names = {d.id: d.name for d in depots}
        places = [(f"depot:{d.id}", d.name) for d in depots]
        if driver.home_lat is not None:
            places.append(("home", "home"))
        return driver_page(request, db, "driver/shifts.html", status_code=status_code, error=error,
                           shifts=[{"date": s.date, "start": s.start, "end": s.end,
                                    "place": names.get(s.start_depot_id or -1)} for s in mine],
                           places=places, capacity=driver.capacity_boxes, form=form,
                           first_day=today, last_day=today + dt.timedelta(weeks=SHIFT_WEEKS))

    @post("/driver/language", opt={"roles": DRIVERS}, sync_to_thread=True)
    def choose_language(self, request: Request, db: DB, data: Annotated[LanguageForm, Form]) -> Redirect:
        """The driver's language, remembered on their account."""
        if data.locale not in i18n.available():
            raise _bad_request(f"Choose one of: {', '.join(i18n.available())}.")
        self._driver(db, principal(request).user_id).locale = data.locale
        db.commit()
        target = data.next if data.next.startswith("/driver") and "//" not in data.next else "/driver"
        return Redirect(target, status_code=303)

    @get("/sw.js", opt={"public": True}, sync_to_thread=False, include_in_schema=False)
    def service_worker(self) -> File:
        """The driver pages' service worker, served from the root so it may control /driver/."""
        response = File(ROOT / "static" / "js" / "sw.js", media_type="text/javascript",
                        content_disposition_type="inline")
        response.headers["Cache-Control"] = "no-cache"
        return response


def _bad_request(detail: str) -> ClientException:
    return ClientException(detail)
