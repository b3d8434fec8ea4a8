"""Small real data for tests: a program (food bank, two clinics, people) and referral bodies."""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from litestar.testing import TestClient
from sqlalchemy.orm import Session

from delivery.models import Depot, Organization, OrganizationKind, Role
from delivery.platform import auth
from delivery.platform.clock import FixedClock
from delivery.platform.settings import Settings
from tests.log_guard import watch

PASSWORD = "correct horse battery staple"


LIGHT_PASSWORDS = {"password_time_cost": 1, "password_memory_kib": 8 * 1024, "password_parallelism": 1}
"""argon2id parameters for tests (Settings fields): the production ones take ~0.5 s on a busy 2-core box."""


@cache
def password_hash() -> str:
    """One real argon2id hash of PASSWORD for test users, made with the tests' light parameters
    (verifying costs what the hash's own parameters say)."""
    return auth.hash_password(PASSWORD, Settings(**LIGHT_PASSWORDS))


@dataclass(frozen=True)
class Program:
    food_bank_id: int
    clinic1_id: int
    clinic2_id: int
    depot_id: int
    coordinator: str = "coordinator@example.org"
    clinic1: str = "staff1@example.org"
    clinic2: str = "staff2@example.org"
    admin: str = "admin@example.org"


def make_program(db: Session, *, boxes_per_delivery_day: int | None = 100) -> Program:
    food_bank = Organization(name="Eastside Food Bank", kind=OrganizationKind.food_bank,
                             boxes_per_delivery_day=boxes_per_delivery_day, delivery_weekday=1)
    db.add(food_bank)
    db.flush()
    clinics = [Organization(name=name, kind=OrganizationKind.clinic, food_bank_id=food_bank.id)
               for name in ("Fruitvale Clinic", "Elmhurst Clinic")]
    db.add_all(clinics)
    depot = Depot(organization_id=food_bank.id, name="Eastside warehouse",
                  address="7900 Edgewater Dr, Oakland",
                  lat=37.7425, lon=-122.2011, opens=dt.time(9), closes=dt.time(17),
                  hours="Mon-Fri 9am-5pm", pickup=True)
    db.add(depot)
    db.flush()
    built = Program(food_bank.id, clinics[0].id, clinics[1].id, depot.id)
    for email, name, memberships in [
        (built.coordinator, "Casey Coordinator", [(food_bank.id, Role.coordinator)]),
        (built.admin, "Ari Admin", [(food_bank.id, Role.admin)]),
        (built.clinic1, "Sam Staff", [(clinics[0].id, Role.clinic_staff)]),
        (built.clinic2, "Lee Staff", [(clinics[1].id, Role.clinic_staff)]),
    ]:
        auth.create_user(db, email=email, display_name=name, memberships=memberships,
                         password_hash=password_hash())
    return built


REFERRAL: dict[str, Any] = {
    "patient": {"mrn": "A-1001", "given_name": "Rosa", "family_name": "Diaz", "birth_date": "1948-03-02",
                "phone": "+15105550101", "language": "es",
                "address": {"line1": "1234 98th Ave", "unit": "3B", "city": "Oakland", "state": "CA",
                            "postal_code": "94603", "lat": 37.7491, "lon": -122.1690},
                "floor": 3, "elevator": False, "access_notes": "gate code 1234", "dietary": ["diabetic"]},
    "screening": {"hunger_worried": "often", "hunger_ran_out": "sometimes",
                  "transportation_barrier": True, "mobility_barrier": False},
}


def referral_body(**changes: Any) -> dict[str, Any]:
    """The DESIGN.md example body; keyword arguments replace parts (`patient__mrn="B-2"`)."""
    body = copy.deepcopy(REFERRAL)
    for key, value in changes.items():
        *parents, leaf = key.split("__")
        target = body
        for part in parents:
            target = target[part]
        target[leaf] = value
    return body


def api_token(db: Session, email: str) -> dict[str, str]:
    """Authorization headers with a fresh token for this user (the caller commits)."""
    return {"Authorization": f"Bearer {watch(auth.create_api_token(db, email))}"}


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the page's CSRF token for later posts."""
    response = client.post("/login", data={"email": email, "password": password}, follow_redirects=True)
    assert response.status_code == 200, response.text
    watch(client.cookies.get("__Host-session") or "")
    return csrf_token(response.text)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page carries no CSRF token"
    return match.group(1)


def clock_on(day: dt.date, hour: int = 12, timezone: str = "America/Los_Angeles") -> FixedClock:
    """A clock standing at `hour` o'clock of `day` in the program's time zone (the builders' default)."""
    return FixedClock(dt.datetime.combine(day, dt.time(hour), tzinfo=ZoneInfo(timezone)))
