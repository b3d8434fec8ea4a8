"""Starting a real program: the food bank, its depots, its first clinics and the first admin.

One service for both doors, `delivery setup` and the first-run page. It runs once: when any food bank
exists the program has been started, and a second run is refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import BoxType, Depot, Organization, OrganizationKind, Role, User
from delivery.platform import auth
from delivery.platform.errors import FieldError
from delivery.platform.settings import Settings
from delivery.program.program_settings import MAX_BOXES_PER_DAY

Name = Annotated[str, Meta(min_length=1, max_length=200)]


class SetupError(FieldError):
    """The program cannot be started as asked; the message says what to fix, `field` where."""


class DepotIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where boxes are loaded: a name, an address people can find, a point and loading hours."""

    name: Name
    address: Annotated[str, Meta(min_length=1, max_length=300)]
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]
    opens: dt.time = dt.time(8)
    closes: dt.time = dt.time(17)


class ProgramIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything a new program needs; all but the names, a depot and the admin have defaults."""

    food_bank: Name
    timezone: Annotated[str, Meta(min_length=1, max_length=60)]
    depots: Annotated[list[DepotIn], Meta(min_length=1, max_length=20)]
    clinics: Annotated[list[Name], Meta(max_length=50)] = []
    delivery_weekday: Annotated[int, Meta(ge=0, le=6)] = 1
    boxes_per_delivery_day: Annotated[int, Meta(ge=1, le=MAX_BOXES_PER_DAY)] = 50
    box_types: Annotated[list[BoxType], Meta(max_length=len(BoxType))] = []
    admin_email: Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    admin_name: Name = "Admin"
    admin_password: Annotated[str, Meta(max_length=auth.MAX_PASSWORD_LENGTH)]


def has_program(db: Session) -> bool:
    return db.scalar(select(Organization.id).where(Organization.kind == OrganizationKind.food_bank)
                     .limit(1)) is not None


def hours_text(opens: dt.time, closes: dt.time) -> str:
    return f"{opens:%H:%M}–{closes:%H:%M}"


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SetupError(f"{name!r} is not a time zone: write it like America/Los_Angeles.",
                         "timezone") from None
    return name


def add_depot(db: Session, food_bank: Organization, data: DepotIn) -> Depot:
    """A place where drivers load boxes, with its loading hours."""
    if data.closes <= data.opens:
        raise SetupError(f"{data.name}: loading must close after it opens.", "depots")
    depot = Depot(organization_id=food_bank.id, name=data.name.strip(), address=data.address.strip(),
                  lat=data.lat, lon=data.lon, opens=data.opens, closes=data.closes,
                  hours=hours_text(data.opens, data.closes))
    db.add(depot)
    db.flush()
    return depot


def start_program(db: Session, data: ProgramIn, settings: Settings) -> User:
    """Create the program and its first admin; refused when a program already exists."""
    problems = auth.password_problems(data.admin_password)
    if problems:
        raise SetupError(" ".join(problems), "admin_password")
    password_hash = auth.hash_password(data.admin_password, settings)  # slow: before the first query
    check_timezone(data.timezone)
    names = [data.food_bank, *data.clinics]
    if len({name.strip().lower() for name in names}) != len(names):
        raise SetupError("Give the food bank and each clinic a different name.", "clinics")
    if has_program(db):
        raise SetupError("This installation already runs a program: sign in as its admin instead.")
    food_bank = Organization(name=data.food_bank.strip(), kind=OrganizationKind.food_bank,
                             timezone=data.timezone, delivery_weekday=data.delivery_weekday,
                             boxes_per_delivery_day=data.boxes_per_delivery_day,
                             box_types=[b.value for b in data.box_types])
    db.add(food_bank)
    db.flush()
    for depot in data.depots:
        add_depot(db, food_bank, depot)
    db.add_all([Organization(name=name.strip(), kind=OrganizationKind.clinic, food_bank_id=food_bank.id)
                for name in data.clinics])
    return auth.create_user(db, email=data.admin_email, display_name=data.admin_name.strip(),
                            memberships=[(food_bank.id, Role.admin)], password_hash=password_hash)
