"""A patient's address and point on the map: one writer, whoever changes them.

Intake (form, API, CSV), the geocoder, and a coordinator's corrections and reviews all call
`set_address`: it writes the fields, keeps, places or clears the point, re-queues geocoding when
the searchable address changed, and tells the referral's timeline what changed (before → after).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import OPEN_STATUSES, EventKind, GeocodeStatus, Patient, Referral, utcnow
from delivery.platform import jobs
from delivery.timeline import events as timeline
from delivery.timeline import payloads

_UNIT_TAIL = re.compile(r"(?:,\s*|\s+)(?:apt|apartment|unit|ste|suite|#)\.?\s*#?\s*[\w-]+\s*$", re.I)
KIND = "geocode"  # the job that locates pending patients (delivery.referrals.geocoding runs it)
JOB_MAX_ATTEMPTS = 50
"""Passes that end on a geocoder error before the job gives up (each one counts an attempt against
the first pending patient, who goes to review after MAX_ATTEMPTS); the next address queues it again."""
# Who placed a point: the clinic sent it, the geocoder found it, a coordinator set it by hand.
POINT_SOURCES = (GeocodeStatus.given, GeocodeStatus.found, GeocodeStatus.manual)


@dataclass(frozen=True)
class PostalAddress:
    line1: str
    unit: str | None
    city: str
    state: str
    postal_code: str

    @classmethod
    def of(cls, line1: str, unit: str | None, city: str, state: str, postal_code: str) -> PostalAddress:
        """Trimmed, an empty unit as None (how every channel's input is stored)."""
        return cls(line1.strip(), (unit or "").strip() or None, city.strip(), state.strip(),
                   postal_code.strip())

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> PostalAddress:
        """From the stored shape (`address_line1`, `unit`, …), as a review item proposes it."""
        return cls.of(str(fields.get("address_line1") or ""), fields.get("unit"),
                      str(fields.get("city") or ""), str(fields.get("state") or ""),
                      str(fields.get("postal_code") or ""))

    @classmethod
    def of_patient(cls, patient: Patient) -> PostalAddress:
        return cls(patient.address_line1, patient.unit, patient.city, patient.state, patient.postal_code)

    def as_fields(self) -> dict[str, str | None]:
        return {"address_line1": self.line1, "unit": self.unit, "city": self.city, "state": self.state,
                "postal_code": self.postal_code}

    @property
    def query(self) -> str:
        return normalise_query(self.line1, self.city, self.state, self.postal_code)



@dataclass(frozen=True)
class Point:
    lat: float
    lon: float
    source: GeocodeStatus  # given, found or manual

    def __post_init__(self) -> None:
        assert self.source in POINT_SOURCES, self.source


def normalise_query(line1: str, city: str, state: str, postal_code: str) -> str:
    """The text sent to the geocoder and the cache key: "1234 98th ave, oakland, ca 94603".

    The unit is never sent (geocoders know buildings, not flats); one written into line 1
    ("… Apt 3B", "… #3B") is cut off.
    """
    def clean(value: str) -> str:
        return " ".join(value.replace("\u00a0", " ").split()).strip(" ,").casefold()

    street = clean(_UNIT_TAIL.sub("", clean(line1)))
    region = " ".join(p for p in (clean(state), clean(postal_code)) if p)
    return ", ".join(p for p in (street, clean(city), region) if p)[:400]


def patient_query(patient: Patient) -> str:
    return normalise_query(patient.address_line1, patient.city, patient.state, patient.postal_code)


def referral_of(db: Session, patient_id: int) -> Referral | None:
    """The patient's open referral (the newest one), else their newest: where events belong."""
    return db.scalar(select(Referral).where(Referral.patient_id == patient_id)
                     .order_by(Referral.status.in_(OPEN_STATUSES).desc(), Referral.id.desc()).limit(1))


def queue(db: Session) -> None:
    """Ask for a geocoding pass, in the caller's transaction (one queued pass covers every patient)."""
    jobs.enqueue(db, KIND, dedupe_key="pending", max_attempts=JOB_MAX_ATTEMPTS)


def set_address(db: Session, patient: Patient, address: PostalAddress | None = None, *,
                point: Point | None = None, relocate: bool = False, corrected: bool | None = None,
                actor_id: int | None = None, now: dt.datetime | None = None) -> str:
    """Set a patient's address and/or point (the caller commits). Returns what happened to the
    point: "placed", "kept" or "locating" (`delivery.timeline.text.POINT` says it in words).

    - `address`: the new address; when its search text changed (or there is no point yet) and no
      `point` comes with it, the point is cleared and the patient waits for the geocoder again.
    - `point`: where the patient is, and who said so (clinic, geocoder, coordinator).
    - `relocate`: ask the geocoder again even though nothing changed.
    - `corrected`: True when a coordinator corrected it by hand (a later clinic import then proposes
      its changes for review instead of undoing this), False when the clinic's address is back.

    A change of address, or a point a person placed, becomes an `address_changed` event with
    before and after on the patient's referral timeline (a new patient has none yet).
    """
    before = PostalAddress.of_patient(patient) if patient.id is not None else None
    before_text, before_point = (patient.address_text if before else ""), (patient.lat, patient.lon)
    old_query = patient_query(patient) if before else None
    if address is not None:
        for key, value in address.as_fields().items():
            setattr(patient, key, value)
    if corrected is not None:
        patient.address_corrected_at = (now or utcnow()) if corrected else None
    if point is not None:
        patient.lat, patient.lon = point.lat, point.lon
        patient.geocode_status = point.source
        state = "placed"
    elif relocate or patient.lat is None or patient_query(patient) != old_query:
        patient.lat = patient.lon = None
        patient.geocode_status = GeocodeStatus.pending
        patient.geocode_attempts = 0
        queue(db)
        state = "locating"
    else:
        state = "kept"
    moved = address is not None and before is not None and address != before
    placed = (point is not None and point.source == GeocodeStatus.manual
              and before_point != (point.lat, point.lon))
    referral = referral_of(db, patient.id) if before is not None and (moved or placed) else None
    if referral is not None:
        timeline.record(db, referral, EventKind.address_changed,
                        payloads.AddressChanged(patient_id=patient.id, before=before_text,
                                                after=patient.address_text, point=state),
                        actor_id=actor_id)
    db.flush()
    return state
