"""A delivery day built directly as rows (Plan, Routes, Stops with their patients, referrals and
orders, drivers with their accounts), so pages around the plan are tested without the planner."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.models import (
    Cadence,
    Driver,
    Order,
    OrderStatus,
    Patient,
    Plan,
    PlanStatus,
    Referral,
    ReferralStatus,
    Role,
    Route,
    RouteLink,
    Stop,
    StopStatus,
    utcnow,
)
from delivery.plans import publishing
from delivery.platform import auth
from tests.builders import Program
from tests.log_guard import watch

CANARY = "PHI-CANARY-123"
# A patient whose MRN and birth date are found nowhere else: neither may reach a driver, a webhook
# or a log line (R3.4, R10.4). The date in every form a page or a log would write it.
CANARY_BIRTH = dt.date(1931, 7, 19)
CANARIES = (CANARY, "1931-07-19", "07/19/1931", "19/07/1931", "July 19, 1931", "19 July 1931")


@dataclass
class StopSpec:
    given: str
    family: str
    boxes: int = 1
    box_type: str = "standard"
    dietary: list[str] = field(default_factory=list)
    access_notes: str | None = None
    unit: str | None = None
    floor: int = 0
    elevator: bool = False
    phone: str | None = "+15105550100"
    do_not_contact: bool = False
    mrn: str | None = None
    line1: str = "1234 98th Ave"
    birth_date: dt.date = dt.date(1948, 3, 2)


@dataclass
class DayPlan:
    plan_id: int
    date: dt.date
    route_ids: list[int]
    driver_ids: list[int]
    driver_emails: list[str]
    stop_ids: list[list[int]]  # per route, in visiting order
    referral_ids: list[list[int]]


def make_driver(db: Session, program: Program, email: str, name: str, *, capacity: int = 20,
                home: tuple[float, float] | None = None) -> Driver:
    user = auth.create_user(db, email=email, display_name=name,
                            memberships=[(program.food_bank_id, Role.driver)])
    driver = Driver(user_id=user.id, food_bank_id=program.food_bank_id, capacity_boxes=capacity,
                    languages=["en"], home_lat=home[0] if home else None, home_lon=home[1] if home else None)
    db.add(driver)
    db.flush()
    return driver


_serial = iter(range(1, 10**9))


def make_stop(db: Session, program: Program, plan: Plan, route: Route | None, seq: int | None,
              eta: int | None, spec: StopSpec) -> Stop:
    n = next(_serial)
    patient = Patient(clinic_id=program.clinic1_id, mrn=spec.mrn or f"MRN-{n}", given_name=spec.given,
                      family_name=spec.family, birth_date=spec.birth_date, phone=spec.phone,
                      address_line1=spec.line1, unit=spec.unit, city="Oakland", state="CA",
                      postal_code="94603", lat=37.75 + n / 10000, lon=-122.17, floor=spec.floor,
                      elevator=spec.elevator, access_notes=spec.access_notes, dietary=spec.dietary,
                      consent_to_share=True, do_not_contact=spec.do_not_contact)
    db.add(patient)
    db.flush()
    referral = Referral(clinic_id=program.clinic1_id, food_bank_id=program.food_bank_id,
                        patient_id=patient.id, source="web", status=ReferralStatus.active,
                        outcome="home_delivery", reason="eligible")
    db.add(referral)
    db.flush()
    order = Order(referral_id=referral.id, patient_id=patient.id, food_bank_id=program.food_bank_id,
                  boxes=spec.boxes, box_type=spec.box_type, cadence=Cadence.weekly,
                  weekday=plan.date.weekday(), start_date=plan.date - dt.timedelta(days=7),
                  status=OrderStatus.active)
    db.add(order)
    db.flush()
    stop = Stop(plan_id=plan.id, order_id=order.id, patient_id=patient.id, date=plan.date,
                route_id=route.id if route else None, seq=seq, eta=eta,
                departure=eta + 300 if eta is not None else None, boxes=spec.boxes,
                box_type=spec.box_type, service_s=300, status=StopStatus.pending)
    db.add(stop)
    db.flush()
    return stop


DEFAULT_STOPS = [
    [StopSpec("Rosa", "Diaz", boxes=2, box_type="diabetic", dietary=["diabetic"],
              access_notes="gate code 1234", unit="3B", floor=3),
     StopSpec("Minh", "Tran", box_type="standard", access_notes="ring twice"),
     StopSpec("Ana", "Lopez", box_type="vegetarian", dietary=["vegetarian", "halal"], floor=2,
              elevator=True)],
    [StopSpec("Wei", "Chen", box_type="low_sodium", dietary=["low_sodium"]),
     StopSpec("Sam", "Okafor", boxes=2)],
]


def make_day(db: Session, program: Program, *, date: dt.date,
             stops: list[list[StopSpec]] | None = None, status: str = PlanStatus.published,
             published_at: dt.datetime | None = None, first_eta: int = 10 * 3600,
             emails: list[str] | None = None) -> DayPlan:
    """A plan for `date` with one route per list in `stops` (one driver each), stops every 20 min."""
    stops = stops if stops is not None else DEFAULT_STOPS
    plan = Plan(food_bank_id=program.food_bank_id, date=date, status=status,
                published_at=(published_at or utcnow() - dt.timedelta(hours=1))
                if status in (PlanStatus.published, PlanStatus.done) else None,
                published_version=1 if status in (PlanStatus.published, PlanStatus.done) else None)
    db.add(plan)
    db.flush()
    emails = emails or [f"driver{i + 1}.{date:%m%d}@example.org" for i in range(len(stops))]
    day = DayPlan(plan.id, date, [], [], [], [], [])
    for i, specs in enumerate(stops):
        driver = make_driver(db, program, emails[i], f"Driver{i + 1} Volunteer")
        route = Route(plan_id=plan.id, driver_id=driver.id, colour=i, planned_start=first_eta - 1800,
                      planned_end=first_eta + len(specs) * 1200, load_boxes=sum(s.boxes for s in specs),
                      published_version=plan.published_version)
        db.add(route)
        db.flush()
        if plan.published_version is not None:  # publishing gives the driver's phone its token
            publishing.issue_delivery_token(db, route)
        made = [make_stop(db, program, plan, route, seq, first_eta + (seq - 1) * 1200, spec)
                for seq, spec in enumerate(specs, start=1)]
        day.route_ids.append(route.id)
        day.driver_ids.append(driver.id)
        day.driver_emails.append(driver.user.email)
        day.stop_ids.append([s.id for s in made])
        day.referral_ids.append([db.get(Order, s.order_id).referral_id for s in made])  # type: ignore[union-attr]
    return day


def make_link(db: Session, route_id: int, *, expires_at: dt.datetime | None = None) -> str:
    """A personal route link (raw token, only its hash stored), as publishing.issue_link makes."""
    raw = watch(secrets.token_urlsafe(32))
    db.add(RouteLink(route_id=route_id, token_hash=auth.token_hash(raw),
                     expires_at=expires_at or utcnow() + dt.timedelta(days=1)))
    db.flush()
    return raw
