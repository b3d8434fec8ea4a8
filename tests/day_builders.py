"""A small delivery program as rows, for the planning tests: patients with standing orders around
East Oakland, drivers with shifts on a delivery day (no planner involved in building it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import msgspec
from litestar.testing import TestClient
from sqlalchemy.orm import Session

from delivery.models import (
    Cadence,
    Driver,
    GeocodeStatus,
    Order,
    OrderStatus,
    Patient,
    Referral,
    ReferralStatus,
    Role,
    Shift,
)
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import Program, clock_on, password_hash
from tests.conftest import BASE_URL

DAY = dt.date(2030, 3, 5)  # a Tuesday: the test program delivers on Tuesdays
DEPOT = (37.7425, -122.2011)


@dataclass
class Day:
    date: dt.date
    order_ids: list[int]
    driver_ids: list[int]
    driver_emails: list[str]


def add_order(db: Session, program: Program, n: int, *, date: dt.date = DAY, cadence: str = Cadence.weekly,
              start: dt.date | None = None, end: dt.date | None = None, status: str = OrderStatus.active,
              paused_until: dt.date | None = None, boxes: int = 1, point: bool = True,
              window: tuple[dt.time, dt.time] | None = None, floor: int = 0, language: str = "en",
              priority: int = 0) -> Order:
    lat, lon = 37.735 + (n % 10) * 0.004, -122.21 + (n // 10) * 0.006 + (n % 3) * 0.002
    patient = Patient(clinic_id=program.clinic1_id, mrn=f"T-{n}", given_name=f"Pat{n}", family_name="Test",
                      birth_date=dt.date(1950, 1, 1), language=language,
                      address_line1=f"{1000 + n} International Blvd", city="Oakland", state="CA",
                      postal_code="94601", lat=lat if point else None, lon=lon if point else None,
                      geocode_status=GeocodeStatus.given if point else GeocodeStatus.pending,
                      floor=floor, elevator=False)
    db.add(patient)
    db.flush()
    referral = Referral(clinic_id=program.clinic1_id, food_bank_id=program.food_bank_id,
                        patient_id=patient.id, source="web", status=ReferralStatus.active,
                        outcome="home_delivery", reason="eligible")
    db.add(referral)
    db.flush()
    order = Order(referral_id=referral.id, patient_id=patient.id, food_bank_id=program.food_bank_id,
                  boxes=boxes, cadence=cadence, weekday=date.weekday(),
                  start_date=start or date - dt.timedelta(days=28), end_date=end, status=status,
                  paused_until=paused_until, priority=priority,
                  window_start=window[0] if window else None, window_end=window[1] if window else None)
    db.add(order)
    db.flush()
    return order


def add_driver(db: Session, program: Program, n: int, *, date: dt.date | None = DAY, capacity: int = 12,
               start: dt.time = dt.time(9), end: dt.time = dt.time(13), languages: tuple[str, ...] = ("en",),
               upstairs: bool = True) -> Driver:
    user = auth.create_user(db, email=f"driver{n}@example.org", display_name=f"Driver {n}",
                            memberships=[(program.food_bank_id, Role.driver)],
                            password_hash=password_hash())
    driver = Driver(user_id=user.id, food_bank_id=program.food_bank_id, capacity_boxes=capacity,
                    languages=list(languages), carries_upstairs=upstairs)
    db.add(driver)
    db.flush()
    if date is not None:
        db.add(Shift(driver_id=driver.id, date=date, start=start, end=end, start_depot_id=program.depot_id,
                     end_depot_id=program.depot_id))
        db.flush()
    return driver


def make_day(db: Session, program: Program, *, stops: int = 8, drivers: int = 2, date: dt.date = DAY,
             capacity: int = 12) -> Day:
    orders = [add_order(db, program, n, date=date) for n in range(stops)]
    made = [add_driver(db, program, n + 1, date=date, capacity=capacity) for n in range(drivers)]
    return Day(date=date, order_ids=[o.id for o in orders], driver_ids=[d.id for d in made],
               driver_emails=[f"driver{n + 1}@example.org" for n in range(drivers)])


@contextmanager
def day_before(settings: Settings, database: Database, day: dt.date = DAY) -> Iterator[TestClient]:
    """A client of an app whose clock stands at noon the day before `day`, so its page is open to plan."""
    dated = msgspec.structs.replace(settings, clock=clock_on(day - dt.timedelta(days=1)))
    with TestClient(app=create_app(dated, database), base_url=BASE_URL) as client:
        yield client
