"""The funder report for a period: per clinic and overall, read from the referral timeline (events
are data) and the routes driven, so the page, its CSV tables, the PDF and `delivery report` agree.

A delivery counts on its delivery day (the stop's date in the event); receipts, referrals and the
waitlist count on the day they happened in the program's time zone. The number of queries is the
same whatever the size of the program: rows are grouped in SQL or once in Python, never per patient.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from delivery.models import (
    EventKind,
    Order,
    Organization,
    OrganizationKind,
    Plan,
    Referral,
    ReferralEvent,
    Route,
    Stop,
    StopStatus,
)
from delivery.platform.clock import zone
from delivery.platform.errors import FieldError
from delivery.reports import figures

DELIVERED = (EventKind.delivered, EventKind.left_at_door)
ATTEMPTS = (*DELIVERED, EventKind.attempt_failed)
RECEIPTS = (EventKind.receipt_confirmed, EventKind.receipt_denied)
COUNTED = (*RECEIPTS, EventKind.need_raised, EventKind.need_resolved, EventKind.benefits_flagged,
           EventKind.benefits_enrolled)
"""Events counted on the day they happened: receipts, needs raised and resolved, benefits."""
WAITLIST_KINDS = (EventKind.waitlisted, EventKind.moved_off_waitlist, EventKind.ended, EventKind.override)
MAX_DAYS = 366 * 3  # a report covers at most three years


class ReportError(FieldError):
    """A report that cannot be made as asked; the message says what to fix."""


class DaysToFirstBox(msgspec.Struct, kw_only=True):
    median: float | None
    p90: float | None
    patients: int  # patients whose first box was delivered in the period


class Waitlist(msgspec.Struct, kw_only=True):
    length_at_end: int  # waiting when the period ended
    joined: int
    moved_off: int  # moved onto the program in the period
    median_wait_days: float | None  # of those who moved off in the period


class Week(msgspec.Struct, kw_only=True):
    start: dt.date  # the Monday
    deliveries_succeeded: int
    deliveries_failed: int
    boxes_delivered: int


class Figures(msgspec.Struct, kw_only=True):
    """Every figure of the report, for the whole program or one clinic."""

    patients_served: int  # unique patients with at least one box delivered
    boxes_delivered: int
    deliveries_attempted: int
    deliveries_succeeded: int
    success_rate: float | None  # succeeded / attempted
    failed_attempts_by_reason: dict[str, int]
    days_to_first_box: DaysToFirstBox
    receipts_confirmed: int
    receipts_denied: int
    needs_raised: int  # needs besides food patients (or drivers) named, for the clinics' worklists
    needs_resolved: int
    benefits_flagged: int  # patients put on the benefits-enrollment worklist (SNAP/CalFresh)
    benefits_enrollments: int  # of any period's flags, enrollments recorded in this one
    referrals_received: int
    referrals_by_outcome: dict[str, int]  # the program's decision on the referrals received
    waitlist: Waitlist
    volunteer_hours: float  # planned hours of the routes driven
    miles_driven: float  # planned distance of the routes driven
    cost_per_box: float | None  # dollars per delivered box
    weeks: list[Week]


class ClinicFigures(Figures, kw_only=True):
    clinic_id: int


class Report(Figures, kw_only=True):
    """The report as JSON (`delivery report --format json`): the program's figures at the top level,
    each clinic's under `by_clinic` (by name)."""

    program: str
    clinic: str | None  # the one clinic asked for, if any
    from_date: dt.date = msgspec.field(name="from")
    to_date: dt.date = msgspec.field(name="to")
    box_cost: float  # dollars, as set for the program
    mileage_rate: float  # dollars a mile
    by_clinic: dict[str, ClinicFigures]


@dataclass
class _Tally:
    """What one scope (the program or a clinic) adds up while the rows are read."""

    patients: int = 0
    boxes: int = 0
    succeeded: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    first_box_days: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # COUNTED events by kind
    outcomes: Counter[str] = field(default_factory=Counter)
    waits: list[figures.Wait] = field(default_factory=list)
    metres: float = 0.0
    seconds: float = 0.0
    weeks: dict[dt.date, list[int]] = field(default_factory=dict)  # Monday -> [ok, failed, boxes]

    def week(self, day: dt.date) -> list[int]:
        return self.weeks.setdefault(figures.week_start(day), [0, 0, 0])


Tallies = dict[int, _Tally]
"""A tally per clinic id; rows of clinics outside the report are skipped."""


def check_period(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise ReportError(f"The period ends ({end}) before it starts ({start}): swap the dates.", "to")
    if (end - start).days >= MAX_DAYS:
        raise ReportError("A report covers at most three years: choose a shorter period.", "from")


def clinics_of(db: Session, food_bank: Organization) -> list[Organization]:
    return list(db.scalars(select(Organization).where(Organization.food_bank_id == food_bank.id,
                                                      Organization.kind == OrganizationKind.clinic)
                           .order_by(Organization.name)))


def find_clinic(clinics: list[Organization], name: str) -> Organization:
    for clinic in clinics:
        if clinic.name.casefold() == name.strip().casefold():
            return clinic
    known = ", ".join(c.name for c in clinics) or "none"
    raise ReportError(f"No clinic named {name!r} in this program (its clinics: {known}).", "clinic")


def build(db: Session, food_bank: Organization, start: dt.date, end: dt.date,
          clinic: Organization | None = None) -> Report:
    """The report for the days `start` to `end` (inclusive), for the program or one of its clinics."""
    check_period(start, end)
    clinics = [clinic] if clinic is not None else clinics_of(db, food_bank)
    tz = zone(food_bank.timezone)
    since = dt.datetime.combine(start, dt.time(), tz).astimezone(dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    tallies: Tallies = {c.id: _Tally() for c in clinics}
    _attempts(db, food_bank.id, start, end, tallies)
    _first_boxes(db, food_bank.id, start, end, tz, tallies)
    _receipts_and_referrals(db, food_bank.id, since, until, tallies)
    _waits(db, food_bank.id, until, tallies)
    _routes(db, food_bank.id, start, end, tallies)

    def figures_of(t: _Tally) -> dict[str, Any]:
        miles = figures.miles(t.metres)
        attempted = t.succeeded + sum(t.failed.values())
        return dict(
            patients_served=t.patients, boxes_delivered=t.boxes, deliveries_attempted=attempted,
            deliveries_succeeded=t.succeeded, success_rate=figures.rate(t.succeeded, attempted),
            failed_attempts_by_reason=dict(sorted(t.failed.items(), key=lambda kv: (-kv[1], kv[0]))),
            days_to_first_box=DaysToFirstBox(median=figures.median(t.first_box_days),
                                             p90=figures.p90(t.first_box_days),
                                             patients=len(t.first_box_days)),
            receipts_confirmed=t.counts[EventKind.receipt_confirmed],
            receipts_denied=t.counts[EventKind.receipt_denied],
            needs_raised=t.counts[EventKind.need_raised], needs_resolved=t.counts[EventKind.need_resolved],
            benefits_flagged=t.counts[EventKind.benefits_flagged],
            benefits_enrollments=t.counts[EventKind.benefits_enrolled],
            referrals_received=sum(t.outcomes.values()),
            referrals_by_outcome=dict(sorted(t.outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
            waitlist=_waitlist(t.waits, since, until, tz),
            volunteer_hours=round(t.seconds / 3600, 2), miles_driven=round(miles, 1),
            cost_per_box=figures.cost_per_box(t.boxes, miles, food_bank.box_cost_cents,
                                              food_bank.mileage_rate_cents),
            weeks=[Week(start=monday, deliveries_succeeded=ok, deliveries_failed=failed,
                        boxes_delivered=boxes) for monday, (ok, failed, boxes) in sorted(t.weeks.items())])

    by_clinic = {c.name: ClinicFigures(clinic_id=c.id, **figures_of(tallies[c.id]))
                 for c in clinics}
    overall = _merge(tallies.values())
    return Report(program=food_bank.name, clinic=clinic.name if clinic else None, from_date=start,
                  to_date=end, box_cost=food_bank.box_cost_cents / 100,
                  mileage_rate=food_bank.mileage_rate_cents / 100, by_clinic=by_clinic,
                  **figures_of(overall))


def _waitlist(waits: list[figures.Wait], since: dt.datetime, until: dt.datetime, tz: dt.tzinfo) -> Waitlist:
    moved = [w for w in waits if w.moved_off and w.end is not None and since <= w.end < until]
    waiting = sum(1 for w in waits if w.start < until and (w.end is None or w.end >= until))
    joined = sum(1 for w in waits if since <= w.start < until)
    return Waitlist(length_at_end=waiting, joined=joined, moved_off=len(moved),
                    median_wait_days=figures.median([_days(w.start, w.end, tz) for w in moved if w.end]))


def _days(earlier: dt.datetime, later: dt.datetime, tz: dt.tzinfo) -> int:
    """Whole days between two moments, counted on the program's calendar."""
    return (later.astimezone(tz).date() - earlier.astimezone(tz).date()).days


def _merge(parts: Iterable[_Tally]) -> _Tally:
    total = _Tally()
    for t in parts:
        total.patients += t.patients
        total.boxes += t.boxes
        total.succeeded += t.succeeded
        total.failed += t.failed
        total.first_box_days += t.first_box_days
        total.counts += t.counts
        total.outcomes += t.outcomes
        total.waits += t.waits
        total.metres += t.metres
        total.seconds += t.seconds
        for monday, (ok, failed, boxes) in t.weeks.items():
            week = total.week(monday)
            week[0] += ok
            week[1] += failed
            week[2] += boxes
    return total


def _date_of() -> ColumnElement[str]:
    """The delivery day an attempt event carries (ISO text, so it compares as a date on both databases)."""
    return ReferralEvent.data["date"].as_string()


def _attempts(db: Session, food_bank_id: int, start: dt.date, end: dt.date, tallies: Tallies) -> None:
    """Delivered, left at the door and failed attempts on the period's delivery days, counted in SQL
    by clinic, day and reason; then the patients served, each once (a patient has one clinic)."""
    in_period = (Referral.food_bank_id == food_bank_id, ReferralEvent.kind.in_(ATTEMPTS),
                 _date_of().between(start.isoformat(), end.isoformat()))
    day = _date_of().label("day")
    reason = ReferralEvent.data["reason"].as_string().label("reason")  # labelled: see _receipts_and_referrals
    rows = db.execute(
        select(Referral.clinic_id, ReferralEvent.kind, day, reason, func.count(ReferralEvent.id),
               func.coalesce(func.sum(ReferralEvent.data["boxes"].as_integer()), 0))
        .join(Referral, Referral.id == ReferralEvent.referral_id).where(*in_period)
        .group_by(Referral.clinic_id, ReferralEvent.kind, day, reason))
    for clinic_id, kind, on, why, count, boxes in rows:
        t = tallies.get(clinic_id)
        if t is None:
            continue
        week = t.week(dt.date.fromisoformat(on))
        if kind in DELIVERED:
            t.boxes += boxes
            t.succeeded += count
            week[0] += count
            week[2] += boxes
        else:
            t.failed[why or "other"] += count
            week[1] += count
    served = db.execute(
        select(Referral.clinic_id, func.count(func.distinct(Referral.patient_id))).select_from(ReferralEvent)
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(*in_period[:2], ReferralEvent.kind.in_(DELIVERED), in_period[2])
        .group_by(Referral.clinic_id))
    for clinic_id, patients in served:
        t = tallies.get(clinic_id)
        if t is not None:
            t.patients += patients


def _first_boxes(db: Session, food_bank_id: int, start: dt.date, end: dt.date, tz: dt.tzinfo,
                 tallies: Tallies) -> None:
    """Days from a referral's arrival to its first delivered box, for first boxes in the period."""
    first = (select(ReferralEvent.referral_id, func.min(_date_of()).label("day"))
             .join(Referral, Referral.id == ReferralEvent.referral_id)
             .where(Referral.food_bank_id == food_bank_id, ReferralEvent.kind.in_(DELIVERED))
             .group_by(ReferralEvent.referral_id)
             .having(func.min(_date_of()).between(start.isoformat(), end.isoformat())).subquery())
    received = select(ReferralEvent.referral_id, ReferralEvent.at).where(
        ReferralEvent.kind == EventKind.received).subquery()
    rows = db.execute(select(Referral.clinic_id, first.c.day, received.c.at)
                      .join(first, first.c.referral_id == Referral.id)
                      .join(received, received.c.referral_id == Referral.id))
    for clinic_id, day, at in rows:
        t = tallies.get(clinic_id)
        if t is not None:
            t.first_box_days.append(float((dt.date.fromisoformat(day) - at.astimezone(tz).date()).days))


def _receipts_and_referrals(db: Session, food_bank_id: int, since: dt.datetime, until: dt.datetime,
                            tallies: Tallies) -> None:
    """Receipts, needs and benefits steps recorded, and the program's decisions on referrals
    received, in the period."""
    # Labelled, so GROUP BY names the same expression (PostgreSQL compares it with its parameter).
    outcome = ReferralEvent.data["outcome"].as_string().label("outcome")
    rows = db.execute(
        select(Referral.clinic_id, ReferralEvent.kind, outcome, func.count(ReferralEvent.id))
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(Referral.food_bank_id == food_bank_id,
               ReferralEvent.kind.in_((*COUNTED, EventKind.outcome)),
               ReferralEvent.at >= since, ReferralEvent.at < until)
        .group_by(Referral.clinic_id, ReferralEvent.kind, outcome))
    for clinic_id, kind, decided, count in rows:
        t = tallies.get(clinic_id)
        if t is None:
            continue
        if kind == EventKind.outcome:
            t.outcomes[decided] += count
        else:
            t.counts[kind] += count


def _waits(db: Session, food_bank_id: int, until: dt.datetime, tallies: Tallies) -> None:
    """Every stay on the waitlist that began before the period ended (only referrals ever waitlisted)."""
    ever = select(ReferralEvent.referral_id).where(ReferralEvent.kind == EventKind.waitlisted)
    rows = db.execute(
        select(Referral.clinic_id, ReferralEvent.referral_id, ReferralEvent.kind, ReferralEvent.at)
        .join(Referral, Referral.id == ReferralEvent.referral_id)
        .where(Referral.food_bank_id == food_bank_id, ReferralEvent.kind.in_(WAITLIST_KINDS),
               ReferralEvent.referral_id.in_(ever), ReferralEvent.at < until)
        .order_by(ReferralEvent.referral_id, ReferralEvent.sequence)).all()
    clinic_of = {referral_id: clinic_id for clinic_id, referral_id, _, _ in rows}
    for wait in figures.waits((referral_id, kind, at) for _, referral_id, kind, at in rows):
        t = tallies.get(clinic_of[wait.referral_id])
        if t is not None:
            t.waits.append(wait)


def _routes(db: Session, food_bank_id: int, start: dt.date, end: dt.date, tallies: Tallies) -> None:
    """Planned hours and distance of the routes driven (at least one stop confirmed), shared among
    clinics by their attempted stops on each route."""
    rows = db.execute(
        select(Route.id, Route.distance_m, Route.duration_s, Referral.clinic_id, func.count(Stop.id))
        .join(Plan, Plan.id == Route.plan_id)
        .join(Stop, Stop.route_id == Route.id)
        .join(Order, Order.id == Stop.order_id)
        .join(Referral, Referral.id == Order.referral_id)
        .where(Plan.food_bank_id == food_bank_id, Plan.date.between(start, end),
               Stop.status.in_((StopStatus.delivered, StopStatus.failed)))
        .group_by(Route.id, Route.distance_m, Route.duration_s, Referral.clinic_id))
    routes: dict[int, tuple[int, int, dict[int, int]]] = {}
    for route_id, metres, seconds, clinic_id, stops in rows:
        routes.setdefault(route_id, (metres, seconds, {}))[2][clinic_id] = stops
    for metres, seconds, stops_by_clinic in routes.values():
        for clinic_id, share in figures.shares(stops_by_clinic).items():
            t = tallies.get(clinic_id)
            if t is not None:
                t.metres += metres * share
                t.seconds += seconds * share


def program_for(db: Session, clinic_name: str | None) -> tuple[Organization, Organization | None]:
    """The program (and clinic) a command-line report is about: the clinic's food bank, or the one
    food bank in the database."""
    food_banks = list(db.scalars(select(Organization).where(Organization.kind == OrganizationKind.food_bank)
                                 .order_by(Organization.id)))
    if clinic_name is not None:
        clinics = list(db.scalars(select(Organization).where(Organization.kind == OrganizationKind.clinic)
                                  .order_by(Organization.name)))
        clinic = find_clinic(clinics, clinic_name)
        food_bank = next((f for f in food_banks if f.id == clinic.food_bank_id), None)
        if food_bank is None:
            raise ReportError(f"{clinic.name} refers to no food bank program yet.", "clinic")
        return food_bank, clinic
    if len(food_banks) != 1:
        raise ReportError("This database holds no program yet." if not food_banks else
                          "Several programs here: name a clinic (--clinic) to choose one.")
    return food_banks[0], None
