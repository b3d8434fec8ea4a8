"""The funder report on the web: a chosen week, month or range, per clinic and overall, with its
charts (SVG from their own URLs, so the page's CSP stays strict), a CSV per table and the PDF.
Coordinators and admins see their program and may choose a clinic; clinic staff see their clinic."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from delivery.models import Organization, Role
from delivery.reports import charts, costs, document, funder, tables
from delivery.reports.figures import month_bounds, week_start
from delivery.web import throttle
from delivery.web.coordinator.overview import COORDINATORS
from delivery.web.render import DB, clock_of, page, principal, program_today

READERS = {"roles": (*COORDINATORS, Role.clinic_staff)}
Money = Annotated[float, msgspec.Meta(ge=0, le=1_000)]  # dollars, to the cent


class CostsForm(msgspec.Struct, forbid_unknown_fields=True):
    box_cost: Money
    mileage_rate: Money
    csrf_token: str = ""


def scope(db: Session, request: Request, clinic_id: int) -> tuple[Organization, Organization | None]:
    """The program and clinic this person may see: a coordinator's program (any of its clinics),
    or a clinic's own report for its staff. Anything else is not found."""
    me = principal(request)
    programs = me.organizations_with(*COORDINATORS)
    if programs:
        food_bank = db.get(Organization, programs[0])
        clinic = db.get(Organization, clinic_id) if clinic_id else None
        if food_bank is None or (clinic_id and (clinic is None or clinic.food_bank_id != food_bank.id)):
            raise NotFoundException("No such clinic in your program.")
        return food_bank, clinic
    own = me.organizations_with(Role.clinic_staff)[0]
    if clinic_id and clinic_id != own:
        raise NotFoundException("No such clinic.")
    clinic = db.get(Organization, own)
    food_bank = db.get(Organization, clinic.food_bank_id) if clinic and clinic.food_bank_id else None
    if clinic is None or food_bank is None:
        raise NotFoundException("Your clinic refers to no program yet.")
    return food_bank, clinic


def period(request: Request, food_bank: Organization, start: dt.date | None,
           end: dt.date | None) -> tuple[dt.date, dt.date]:
    """The dates asked for; by default this month so far."""
    today = program_today(request, food_bank)
    first, _ = month_bounds(today)
    return start or first, end or today


def quick_periods(today: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    monday = week_start(today)
    this_month = month_bounds(today)
    last_month = month_bounds(this_month[0] - dt.timedelta(days=1))
    return [("This week", monday, monday + dt.timedelta(days=6)),
            ("Last week", monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)),
            ("This month", *this_month), ("Last month", *last_month)]


def _report(db: Session, request: Request, start: dt.date | None, end: dt.date | None,
            clinic_id: int) -> funder.Report:
    food_bank, clinic = scope(db, request, clinic_id)
    first, last = period(request, food_bank, start, end)
    try:
        return funder.build(db, food_bank, first, last, clinic)
    except funder.ReportError as exc:
        raise NotFoundException(str(exc)) from None


def _download(body: bytes | str, media_type: str, filename: str) -> Response[bytes | str]:
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


class ReportController(Controller):
    path = "/reports"

    @get("/", opt=READERS, sync_to_thread=True)
    def report(self, request: Request, db: DB, start: FromQuery[dt.date | None] = None,
               end: FromQuery[dt.date | None] = None, clinic: FromQuery[int] = 0,
               done: FromQuery[str] = "") -> Template:
        """The report page: the period and clinic to show, the figures, charts and tables."""
        food_bank, chosen = scope(db, request, clinic)
        first, last = period(request, food_bank, start, end)
        problem = ""
        try:
            report = funder.build(db, food_bank, first, last, chosen)
        except funder.ReportError as exc:
            problem, first, last = str(exc), *period(request, food_bank, None, None)
            report = funder.build(db, food_bank, first, last, chosen)
        me = principal(request)
        qs = urlencode({"start": first.isoformat(), "end": last.isoformat(),
                        **({"clinic": clinic} if clinic else {})})
        return page(request, "coordinator/report.html", food_bank=food_bank,
                    clinics=funder.clinics_of(db, food_bank), chosen=clinic, first=first, last=last,
                    is_coordinator=bool(me.organizations_with(*COORDINATORS)),
                    quick=quick_periods(program_today(request, food_bank)), problem=problem, done=done,
                    qs=qs, chart_src=lambda name: f"/reports/charts/{name}?{qs}",
                    csv_href=lambda name: f"/reports/tables/{name}?{qs}", **document.body_context(report))

    @get("/charts/{name:str}", opt=READERS, sync_to_thread=True)
    def chart(self, request: Request, db: DB, name: FromPath[str], start: FromQuery[dt.date | None] = None,
              end: FromQuery[dt.date | None] = None, clinic: FromQuery[int] = 0) -> Response[bytes]:
        """One chart as SVG, for an <img> on the page."""
        if name not in charts.CHARTS:
            raise NotFoundException("No such chart.")
        report = _report(db, request, start, end, clinic)
        return Response(charts.svg(report, name), media_type="image/svg+xml")

    @get("/tables/{name:str}", opt=READERS, sync_to_thread=True)
    def table_csv(self, request: Request, db: DB, name: FromPath[str],
                  start: FromQuery[dt.date | None] = None, end: FromQuery[dt.date | None] = None,
                  clinic: FromQuery[int] = 0) -> Response[bytes | str]:
        """One table of the report as CSV, safe to open in a spreadsheet."""
        report = _report(db, request, start, end, clinic)
        chosen = tables.table(report, name)
        if chosen is None:
            raise NotFoundException("No such table.")
        return _download(tables.to_csv([chosen]), "text/csv; charset=utf-8",
                         f"report-{name}-{report.from_date}-{report.to_date}.csv")

    @get("/pdf", opt=READERS, sync_to_thread=True)
    def pdf(self, request: Request, db: DB, start: FromQuery[dt.date | None] = None,
            end: FromQuery[dt.date | None] = None, clinic: FromQuery[int] = 0) -> Response[bytes | str]:
        """The whole report as a PDF to attach to a grant report."""
        report = _report(db, request, start, end, clinic)
        food_bank, _ = scope(db, request, clinic)
        with throttle.one_at_a_time(request, "A report PDF"):  # seconds of CPU each (R6.4)
            body = document.pdf(report, clock_of(request).local(food_bank.timezone))
        return _download(body, "application/pdf", f"report-{report.from_date}-{report.to_date}.pdf")

    @post("/costs", opt={"roles": COORDINATORS}, sync_to_thread=True)
    def set_costs(self, request: Request, db: DB,
                  data: Annotated[CostsForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Redirect:
        """The cost of a box and the mileage rate the report's cost per box uses."""
        food_bank, _ = scope(db, request, 0)
        try:
            costs.set_costs(db, food_bank, box_cost_cents=round(data.box_cost * 100),
                            mileage_rate_cents=round(data.mileage_rate * 100))
        except costs.CostError as exc:
            raise ValidationException(str(exc)) from None
        db.commit()
        return Redirect("/reports?done=costs")
