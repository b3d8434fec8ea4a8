"""The live board of a delivery day: each route's progress as drivers confirm, and the exceptions
(failed attempts, notes from drivers) a coordinator works through and marks handled.
The page polls its own `live` block every 15 seconds (htmx)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.field import confirmations, photos, reports
from delivery.models import (
    Confirmation,
    FieldReport,
    Organization,
    Plan,
    Route,
    Stop,
    StopStatus,
    User,
)
from delivery.platform import audit as audit_trail
from delivery.web.coordinator.overview import COORDINATORS
from delivery.web.coordinator.sheets import coordinator_plan
from delivery.web.driver import clock, day_label, display_name
from delivery.web.render import DB, Audit, Config, PathId, clock_of, page, principal

POLICY = {"roles": COORDINATORS}
LATE_AFTER = dt.timedelta(minutes=30)


class RouteState:
    not_started = "not started"
    in_progress = "in progress"
    late = "late against plan"
    done = "done"


@dataclass
class RouteProgress:
    number: int
    route_id: int
    driver_name: str
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    first_eta: dt.datetime | None = None
    late_etas: list[dt.datetime] = field(default_factory=list)
    state: str = RouteState.not_started
    next_stop: str = ""

    @property
    def total(self) -> int:
        return self.delivered + self.failed + self.pending


@dataclass
class ExceptionRow:
    confirmation_id: int
    route_number: int | None
    seq: int | None
    patient: str
    address: str
    outcome: str
    note: str | None
    reported_by: str
    occurred_at: dt.datetime
    clock_flag: str | None


@dataclass
class ReportRow:
    """A driver's flag at a stop, or a problem with their route, not handled yet."""

    report_id: int
    route_number: int | None
    seq: int | None
    patient: str | None
    kind: str
    detail: str | None
    reported_by: str
    created_at: dt.datetime


def at_eta(plan: Plan, tz: ZoneInfo, seconds: int) -> dt.datetime:
    return dt.datetime.combine(plan.date, dt.time(0), tzinfo=tz) + dt.timedelta(seconds=seconds)


def progress(db: Session, plan: Plan, food_bank: Organization, now: dt.datetime) -> list[RouteProgress]:
    """Each route's counts and state (one query for routes, one for stops)."""
    tz = ZoneInfo(food_bank.timezone)
    routes = db.scalars(select(Route).where(Route.plan_id == plan.id)
                        .order_by(Route.colour, Route.id)).unique().all()
    rows = {r.id: RouteProgress(n, r.id, r.driver.user.display_name) for n, r in enumerate(routes, start=1)}
    stops = db.execute(select(Stop.route_id, Stop.seq, Stop.eta, Stop.status)
                       .where(Stop.plan_id == plan.id, Stop.route_id.is_not(None),
                              Stop.status != StopStatus.removed).order_by(Stop.route_id, Stop.seq)).all()
    for route_id, seq, eta, status in stops:
        row = rows.get(route_id)
        if row is None:
            continue
        when = at_eta(plan, tz, eta) if eta is not None else None
        if when is not None and (row.first_eta is None or when < row.first_eta):
            row.first_eta = when
        if status == StopStatus.delivered:
            row.delivered += 1
        elif status == StopStatus.failed:
            row.failed += 1
        else:
            row.pending += 1
            if not row.next_stop:
                row.next_stop = f"stop {seq} at {clock(eta)}" if eta is not None else f"stop {seq}"
            if when is not None and now > when + LATE_AFTER:
                row.late_etas.append(when)
    for row in rows.values():
        if row.total and not row.pending:
            row.state = RouteState.done
        elif row.late_etas:
            row.state = RouteState.late
        elif row.delivered + row.failed == 0 and (row.first_eta is None or now < row.first_eta):
            row.state = RouteState.not_started
        else:
            row.state = RouteState.in_progress
    return list(rows.values())


def open_exceptions(db: Session, plan: Plan, numbers: dict[int, int]) -> list[ExceptionRow]:
    """Confirmations on this plan that need a look (failed, or with a note) and are not handled."""
    rows = db.execute(
        select(Confirmation, Stop, User).join(Stop, Stop.id == Confirmation.stop_id)
        .join(User, User.id == Confirmation.user_id)
        .where(Stop.plan_id == plan.id, confirmations.waiting_exception())
        .order_by(Confirmation.received_at, Confirmation.id)).unique().all()
    return [ExceptionRow(c.id, numbers.get(s.route_id or -1), s.seq, display_name(s.patient),
                         s.patient.address_line1, c.outcome, c.note, u.display_name, c.occurred_at,
                         confirmations.clock_flag(c.occurred_at, c.received_at))
            for c, s, u in rows]


def open_reports(db: Session, plan: Plan, numbers: dict[int, int]) -> list[ReportRow]:
    rows = db.execute(
        select(FieldReport, Route, User).join(Route, Route.id == FieldReport.route_id)
        .join(User, User.id == FieldReport.user_id)
        .where(Route.plan_id == plan.id, FieldReport.handled_at.is_(None))
        .order_by(FieldReport.created_at, FieldReport.id)).unique().all()
    stops = {s.id: s for s in db.scalars(select(Stop).where(
        Stop.id.in_([r.FieldReport.stop_id for r in rows if r.FieldReport.stop_id]))).unique()}
    out = []
    for report, route, user in rows:
        stop = stops.get(report.stop_id or -1)
        out.append(ReportRow(report.id, numbers.get(route.id), stop.seq if stop else None,
                             display_name(stop.patient) if stop else None, report.kind, report.detail,
                             user.display_name, report.created_at))
    return out


class BoardController(Controller):
    path = "/coordinator/plans/{plan_id:int}"

    def _board(self, request: Request, db: Session, plan_id: int, *, block: str | None) -> Template:
        plan, food_bank = coordinator_plan(db, request, plan_id)
        tz = ZoneInfo(food_bank.timezone)
        now = clock_of(request).local(food_bank.timezone)
        routes = progress(db, plan, food_bank, now)
        numbers = {r.route_id: r.number for r in routes}
        exceptions = open_exceptions(db, plan, numbers)
        reports_ = open_reports(db, plan, numbers)
        totals = {"delivered": sum(r.delivered for r in routes), "failed": sum(r.failed for r in routes),
                  "pending": sum(r.pending for r in routes)}
        states = {state: sum(1 for r in routes if r.state == state) for state in
                  (RouteState.not_started, RouteState.in_progress, RouteState.late, RouteState.done)}
        return page(request, "coordinator/board.html", block=block, plan=plan, day=day_label(plan.date),
                    routes=routes, exceptions=exceptions, reports=reports_, totals=totals, states=states,
                    updated=now.strftime("%H:%M:%S"), tz=tz)

    def _after_handling(self, request: Request, db: DB, plan_id: int) -> Response | Template:
        """What marking something handled answers: the live part of the board for htmx, else the board."""
        if request.headers.get("hx-request"):
            return self._board(request, db, plan_id, block="live")
        return Redirect(f"/coordinator/plans/{plan_id}/board")

    @get("/board", opt=POLICY, sync_to_thread=True)
    def board(self, request: Request, db: DB, plan_id: PathId) -> Template:
        """The whole board; htmx's poll gets only its `live` block."""
        return self._board(request, db, plan_id, block="live" if request.headers.get("hx-request") else None)

    @post("/exceptions/{confirmation_id:int}/handled", opt=POLICY, sync_to_thread=True, status_code=200)
    def mark_handled(self, request: Request, db: DB, plan_id: PathId,
                     confirmation_id: PathId) -> Response | Template:
        plan, _ = coordinator_plan(db, request, plan_id)
        row = db.scalar(select(Confirmation).join(Stop, Stop.id == Confirmation.stop_id)
                        .where(Confirmation.id == confirmation_id, Stop.plan_id == plan.id))
        if row is None:
            raise NotFoundException("No such exception on this plan.")
        confirmations.mark_handled(db, row, user_id=principal(request).user_id)
        db.commit()
        return self._after_handling(request, db, plan_id)

    @get("/confirmations/{confirmation_id:int}/photo", opt={**POLICY, "phi": ("R", "photo")},
         sync_to_thread=True)
    def photo(self, request: Request, db: DB, settings: Config, audit: Audit, plan_id: PathId,
              confirmation_id: PathId) -> Response[bytes]:
        """A delivery photo, for the program's coordinators only, as a download (R4.5)."""
        plan, _ = coordinator_plan(db, request, plan_id)
        row = db.execute(select(Confirmation, Stop).join(Stop, Stop.id == Confirmation.stop_id)
                         .where(Confirmation.id == confirmation_id, Stop.plan_id == plan.id)).first()
        if row is None or row.Confirmation.photo_name is None:
            raise NotFoundException("No photo for this confirmation.")
        data = photos.read(row.Confirmation, settings.photos)
        audit_trail.record_reads(request.app.state.database, audit, "photo",
                                 [(confirmation_id, row.Stop.patient_id)])
        return Response(data, media_type="image/jpeg", headers={
            "Content-Disposition": f'attachment; filename="delivery-{confirmation_id}.jpg"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @post("/reports/{report_id:int}/handled", opt=POLICY, sync_to_thread=True, status_code=200)
    def mark_report_handled(self, request: Request, db: DB, plan_id: PathId,
                            report_id: PathId) -> Response | Template:
        """A driver's flag or problem report has been seen to."""
        plan, _ = coordinator_plan(db, request, plan_id)
        row = db.scalar(select(FieldReport).join(Route, Route.id == FieldReport.route_id)
                        .where(FieldReport.id == report_id, Route.plan_id == plan.id))
        if row is None:
            raise NotFoundException("No such report on this plan.")
        reports.mark_handled(db, row, user_id=principal(request).user_id)
        db.commit()
        return self._after_handling(request, db, plan_id)
