"""Request and response bodies (msgspec Structs): closed schemas that name the field at fault."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from delivery.models import BoxType, Cadence, Dietary, HungerAnswer

Name = Annotated[str, Meta(min_length=1, max_length=100)]
ShortText = Annotated[str, Meta(max_length=200)]
Note = Annotated[str, Meta(max_length=1000)]
Phone = Annotated[str, Meta(min_length=7, max_length=32, pattern=r"^\+?[0-9 ().-]{7,31}$")]
Language = Annotated[str, Meta(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]
Priority = Annotated[int, Meta(ge=0, le=2, description="0 normal, 1 high, 2 urgent")]
Weekday = Annotated[int, Meta(ge=0, le=6, description="0 = Monday … 6 = Sunday")]
HourMinute = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM")]
ID_MAX = 2**31 - 1  # every id column is a 32-bit integer on PostgreSQL
Id = Annotated[int, Meta(ge=1, le=ID_MAX)]


class Closed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Unknown fields are an error, so a typo is reported instead of silently ignored."""


class AddressIn(Closed, kw_only=True):
    line1: Annotated[str, Meta(min_length=3, max_length=200)]
    unit: Annotated[str, Meta(max_length=40)] | None = None
    city: Annotated[str, Meta(min_length=2, max_length=100)]
    state: Annotated[str, Meta(min_length=2, max_length=40)]
    postal_code: Annotated[str, Meta(pattern=r"^[0-9]{5}(-[0-9]{4})?$")]
    lat: Latitude | None = None
    lon: Longitude | None = None

    def __post_init__(self) -> None:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither (the address is then geocoded)")


class PatientIn(Closed, kw_only=True):
    mrn: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                             description="The clinic's patient identifier")]
    given_name: Name
    family_name: Name
    birth_date: dt.date
    phone: Phone | None = None
    language: Language = "en"
    address: AddressIn
    floor: Annotated[int, Meta(ge=-5, le=200)] = 0
    elevator: bool = False
    access_notes: Annotated[str, Meta(max_length=500)] | None = None
    dietary: Annotated[list[Dietary], Meta(max_length=8)] = []
    consent_to_share: bool = True
    """The patient agreed to share name, address and phone with the food bank and its drivers.
    A clinic system attests it under its data-sharing agreement; false refuses the referral."""
    do_not_contact: bool = False

    def __post_init__(self) -> None:
        if self.birth_date.year < 1900:
            raise ValueError("birth_date is before 1900")
        if not self.consent_to_share:
            raise ValueError("consent_to_share must be true: home delivery shares the patient's "
                             "name, address and phone with the food bank and its drivers")


class ScreeningIn(Closed, kw_only=True):
    hunger_worried: HungerAnswer
    """Within the past 12 months we worried whether our food would run out before we got money to buy more."""
    hunger_ran_out: HungerAnswer
    """Within the past 12 months the food we bought just didn't last and we didn't have money to get more."""
    transportation_barrier: bool
    mobility_barrier: bool
    """Difficulty carrying groceries or climbing stairs."""
    errands_barrier: bool = False
    """Difficulty doing errands alone."""


class OrderIn(Closed, kw_only=True):
    """What the clinic asks for; every field has the program's default."""

    boxes: Annotated[int, Meta(ge=1, le=6)] = 1
    box_type: BoxType = BoxType.standard
    cadence: Cadence = Cadence.weekly
    weekday: Weekday | None = None
    window_start: HourMinute | None = None
    window_end: HourMinute | None = None
    start_date: dt.date | None = None

    def __post_init__(self) -> None:
        if (self.window_start is None) != (self.window_end is None):
            raise ValueError("give both window_start and window_end, or neither (an open window)")
        if self.window_start and self.window_end and self.window_start >= self.window_end:
            raise ValueError("window_start must be before window_end")


class ReferralIn(Closed, kw_only=True):
    patient: PatientIn
    screening: ScreeningIn
    order: OrderIn | None = None
    priority: Priority = 0
    note: Note | None = None
    clinic_id: Id | None = None
    """Needed only when the referring account belongs to more than one clinic."""


class TimelineEvent(msgspec.Struct, kw_only=True):
    """One event of a referral's timeline, oldest first: its kind and payload as data, and the
    sentence a person reads."""

    sequence: int
    kind: str
    at: dt.datetime
    data: dict[str, Any]
    text: str


class ReferralOut(msgspec.Struct, kw_only=True):
    id: int
    status: str
    outcome: str
    reason: str
    order_id: int | None
    patient_id: int
    clinic_id: int
    priority: int
    created_at: dt.datetime
    geocode_status: str
    waitlist_position: int | None = None
    timeline: list[TimelineEvent] | None = None


def parse_time(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None
