"""Printouts and export for a planned day: a route sheet per route (or all in one print), box
labels, and the whole day as CSV. Three queries whatever the size of the day (plan, routes, stops
with their patients): no query per stop."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass

import phonenumbers
from litestar import Controller, Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import Driver, Organization, Plan, Route, Stop, StopStatus
from delivery.platform import audit as audit_trail
from delivery.platform.audit import AuditContext
from delivery.platform.spreadsheets import safe_cell
from delivery.web.coordinator.overview import COORDINATORS
from delivery.web.driver import DriverStop, clock, day_label, driver_stop
from delivery.web.render import DB, Audit, PathId, page, principal

POLICY = {"roles": COORDINATORS}
PHONE_REGION = "US"  # the programs served are in the US (the geocoder is limited to it too)


def coordinator_plan(db: Session, request: Request, plan_id: int) -> tuple[Plan, Organization]:
    """A plan of one of the coordinator's programs; any other id is not found."""
    row = db.execute(select(Plan, Organization).join(Organization, Organization.id == Plan.food_bank_id)
                     .where(Plan.id == plan_id)).first()
    if row is None or row.Plan.food_bank_id not in principal(request).organizations_with(*COORDINATORS):
        raise NotFoundException("No such plan.")
    return row.Plan, row.Organization


@dataclass
class RouteSheet:
    number: int  # 1-based position of the route in the day, printed on labels
    route: Route
    driver_name: str
    start: str
    stops: list[DriverStop]

    @property
    def boxes(self) -> int:
        return sum(s.boxes for s in self.stops)

    @property
    def packing(self) -> list[tuple[str, int]]:
        """Boxes to load by type, most first."""
        counts: Counter[str] = Counter()
        for s in self.stops:
            counts[s.box_type] += s.boxes
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    @property
    def loading_order(self) -> list[DriverStop]:
        """Load the last stop first, so the first stop's boxes are at the door of the car."""
        return list(reversed(self.stops))


def route_sheets(db: Session, plan: Plan, route_id: int | None = None) -> list[RouteSheet]:
    query = select(Route).where(Route.plan_id == plan.id).order_by(Route.colour, Route.id)
    routes = list(db.scalars(query).unique().all())
    numbers = {route.id: n for n, route in enumerate(routes, start=1)}
    if route_id is not None:
        routes = [r for r in routes if r.id == route_id]
        if not routes:
            raise NotFoundException("No such route in this plan.")
    stops = db.scalars(select(Stop).where(Stop.route_id.in_([r.id for r in routes]),
                                          Stop.status != StopStatus.removed)
                       .order_by(Stop.route_id, Stop.seq, Stop.id)).unique().all()
    by_route: dict[int, list[DriverStop]] = {r.id: [] for r in routes}
    for stop in stops:
        by_route[stop.route_id].append(driver_stop(stop))  # type: ignore[index]
    return [RouteSheet(numbers[r.id], r, r.driver.user.display_name, clock(r.planned_start), by_route[r.id])
            for r in routes]


def audit_sheets(request: Request, db: Session, audit: AuditContext, sheets: list[RouteSheet],
                 detail: str) -> None:
    """One read per stop printed (R10.1): the sheets carry names, addresses, phones and notes."""
    ids = [s.stop_id for sheet in sheets for s in sheet.stops]
    patients = {stop_id: patient_id for stop_id, patient_id in
                db.execute(select(Stop.id, Stop.patient_id).where(Stop.id.in_(ids)))}
    audit_trail.record_reads(request.app.state.database, audit, "stop", ((i, patients[i]) for i in ids),
                             detail=detail)


def phone_cell(phone: str) -> str:
    """A phone as dialled from the program's country: "(510) 555-0101", "011 44 20 7946 0958".

    Neither starts with "+", so the cell is safe in a spreadsheet without the leading quote that
    `safe_cell` would add; a number that cannot be read stays as typed (and safe_cell guards it).
    """
    try:
        number = phonenumbers.parse(phone, PHONE_REGION)
    except phonenumbers.NumberParseException:
        return phone
    if not phonenumbers.is_possible_number(number):
        return phone
    if phonenumbers.region_code_for_number(number) == PHONE_REGION:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_out_of_country_calling_number(number, PHONE_REGION)


CSV_COLUMNS = ["date", "route", "driver", "seq", "eta", "stop_id", "order_id", "first_name", "last_name",
               "address", "unit", "city", "postal_code", "floor", "elevator", "phone", "access_notes",
               "boxes", "box_type", "dietary", "status", "outcome", "unassigned_reason"]


class SheetsController(Controller):
    path = "/coordinator/plans/{plan_id:int}"

    @get("/routes/{route_id:int}/sheet", opt={**POLICY, "phi": ("R", "stop")}, sync_to_thread=True)
    def route_sheet(self, request: Request, db: DB, audit: Audit, plan_id: PathId,
                    route_id: PathId) -> Template:
        """One route's printable manifest: stops in order with access notes, and the packing list."""
        plan, _ = coordinator_plan(db, request, plan_id)
        sheets = route_sheets(db, plan, route_id)
        audit_sheets(request, db, audit, sheets, "route sheet")
        return page(request, "coordinator/sheet.html", plan=plan, day=day_label(plan.date), sheets=sheets)

    @get("/sheets", opt={**POLICY, "phi": ("R", "stop")}, sync_to_thread=True)
    def all_sheets(self, request: Request, db: DB, audit: Audit, plan_id: PathId) -> Template:
        """Every route's sheet in one print, a page break between routes."""
        plan, _ = coordinator_plan(db, request, plan_id)
        sheets = route_sheets(db, plan)
        audit_sheets(request, db, audit, sheets, "route sheets")
        return page(request, "coordinator/sheets.html", plan=plan, day=day_label(plan.date), sheets=sheets)

    @get("/labels", opt={**POLICY, "phi": ("R", "stop")}, sync_to_thread=True)
    def labels(self, request: Request, db: DB, audit: Audit, plan_id: PathId) -> Template:
        """A label per box: first name, route and stop number, box type, dietary marks."""
        plan, _ = coordinator_plan(db, request, plan_id)
        sheets = route_sheets(db, plan)
        audit_sheets(request, db, audit, sheets, "box labels")
        return page(request, "coordinator/labels.html", plan=plan, day=day_label(plan.date), sheets=sheets)

    @get("/export.csv", opt={**POLICY, "phi": ("E", "stop")}, sync_to_thread=True)
    def export(self, request: Request, db: DB, audit: Audit, plan_id: PathId) -> Response[str]:
        """The whole day, one row per stop (assigned or not), safe to open in a spreadsheet."""
        plan, _ = coordinator_plan(db, request, plan_id)
        routes = {r.id: (n, r) for n, r in enumerate(
            db.scalars(select(Route).where(Route.plan_id == plan.id).order_by(Route.colour, Route.id))
            .unique().all(), start=1)}
        stops = db.scalars(select(Stop).where(Stop.plan_id == plan.id)).unique().all()
        ordered = sorted(stops, key=lambda s: (routes[s.route_id][0] if s.route_id in routes else 10**6,
                                               s.seq or 0, s.id))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for stop in ordered:
            p = stop.patient
            number, route = routes.get(stop.route_id or -1, (None, None))
            driver: Driver | None = route.driver if route else None
            writer.writerow([safe_cell(v) for v in [
                plan.date.isoformat(), number or "", driver.user.display_name if driver else "",
                stop.seq or "", clock(stop.eta), stop.id, stop.order_id, p.given_name, p.family_name,
                p.address_line1, p.unit or "", p.city, p.postal_code, p.floor, "yes" if p.elevator else "no",
                "" if p.do_not_contact or not p.phone else phone_cell(p.phone), p.access_notes or "",
                stop.boxes, stop.box_type,
                " ".join(p.dietary or []), stop.status, stop.outcome or "", stop.unassigned_reason or ""]])
        audit_trail.record_reads(request.app.state.database, audit, "stop",
                                 ((s.id, s.patient_id) for s in ordered), detail="day export (CSV)",
                                 action="E")
        filename = f"delivery-{plan.date.isoformat()}.csv"
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
