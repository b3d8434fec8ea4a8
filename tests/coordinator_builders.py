"""Small real data for the coordinator's referral-side tests: referrals through intake, a second
food bank, and a geocoder that always gives the same answer (the Geocoder protocol, no network)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy.orm import Session

from delivery.models import Depot, Organization, OrganizationKind, Role, Source
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.referrals import intake
from delivery.referrals.geocoding import GeocodeAnswer, geocode_pending
from delivery.referrals.schemas import ReferralIn
from delivery.timeline import events
from tests.builders import Program, clock_on, password_hash, referral_body


def program_today() -> dt.date:
    """Today where the test program delivers: what the coordinator's pages use."""
    return dt.datetime.now(ZoneInfo("America/Los_Angeles")).date()


def refer(db: Session, program: Program, mrn: str, *, today: dt.date, given: str | None = None,
          boxes: int = 1, cadence: str = "weekly", priority: int = 0, point: bool = True,
          note: str | None = None, clinic_id: int | None = None, start_date: dt.date | None = None,
          **patient: Any) -> intake.IntakeResult:
    """A clinic refers a patient through the one intake path (the caller commits)."""
    body = referral_body(patient__mrn=mrn, patient__given_name=given or f"P{mrn}")
    if not point:
        body["patient"]["address"].pop("lat")
        body["patient"]["address"].pop("lon")
    body["patient"].update(patient)
    body |= {"priority": priority, "order": {"boxes": boxes, "cadence": cadence}}
    if start_date is not None:
        body["order"]["start_date"] = start_date.isoformat()
    if note is not None:
        body["note"] = note
    return intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=clinic_id or program.clinic1_id,
                        actor_id=None, source=Source.api, clock=clock_on(today))


def set_capacity(db: Session, program: Program, boxes: int) -> None:
    food_bank = db.get(Organization, program.food_bank_id)
    assert food_bank is not None
    food_bank.boxes_per_delivery_day = boxes


@dataclass(frozen=True)
class OtherProgram:
    food_bank_id: int
    clinic_id: int
    coordinator: str = "west-coordinator@example.org"


def other_program(db: Session) -> OtherProgram:
    """A second food bank with its own clinic and coordinator (the caller commits)."""
    food_bank = Organization(name="Westside Food Bank", kind=OrganizationKind.food_bank,
                             boxes_per_delivery_day=50, delivery_weekday=3)
    db.add(food_bank)
    db.flush()
    clinic = Organization(name="Harbor Clinic", kind=OrganizationKind.clinic, food_bank_id=food_bank.id)
    db.add(clinic)
    db.add(Depot(organization_id=food_bank.id, name="Westside depot", address="1 Harbor Way, Oakland",
                 lat=37.80, lon=-122.27, opens=dt.time(9), closes=dt.time(17), hours="Mon-Fri", pickup=True))
    db.flush()
    built = OtherProgram(food_bank.id, clinic.id)
    auth.create_user(db, email=built.coordinator, display_name="Wes West",
                     memberships=[(food_bank.id, Role.coordinator)], password_hash=password_hash())
    return built


class FixedGeocoder:
    """Answers every query the same way: enough to send an address to the review queue."""

    provider = "fixed"

    def __init__(self, answer: GeocodeAnswer) -> None:
        self.answer = answer

    def lookup(self, query: str) -> GeocodeAnswer:
        return self.answer


def geocode_with(database: Database, settings: Settings, answer: GeocodeAnswer) -> None:
    """One geocoding pass over pending addresses, every one getting `answer`."""
    geocode_pending(database, settings, geocoder=FixedGeocoder(answer))


def timeline(db: Session, referral_id: int) -> list[tuple[str, str]]:
    """The referral's timeline as (kind, sentence), oldest first."""
    return [(e.kind, e.text) for e in events.history(db, referral_id)]


def htmx(token: str) -> dict[str, str]:
    """Headers htmx sends for a swap from a signed-in page."""
    return {"HX-Request": "true", "X-CSRF-Token": token}
