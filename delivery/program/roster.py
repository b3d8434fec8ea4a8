"""The roster: drivers, their shifts for the coming weeks, and the days the program is closed.

One write path per fact: a shift a coordinator enters and a shift a driver offers from their phone
both go through `save_shift` (only `offered_by` differs). Services do not commit; the caller does.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    Depot,
    Driver,
    Holiday,
    Membership,
    Organization,
    Role,
    Route,
    Shift,
    User,
)
from delivery.platform import auth
from delivery.platform.errors import FieldError

HOME = "home"
OFFERED_BY = ("coordinator", "driver")
VEHICLES = ("car", "van")
SHIFT_WEEKS = 4


class RosterError(FieldError):
    """A roster change that cannot be made; the message says what to fix, `field` where."""

    default_code = "roster_refused"


class DriverIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A driver as a coordinator enters them (the web form and any later API take this)."""

    display_name: Annotated[str, Meta(min_length=1, max_length=200)]
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    phone: Annotated[str, Meta(max_length=32, pattern=r"^(\+?[0-9 ().-]{7,31})?$")] | None = None
    vehicle: Annotated[str, Meta(pattern="^(car|van)$")] = "car"
    capacity_boxes: Annotated[int, Meta(ge=1, le=200)]
    languages: Annotated[list[Annotated[str, Meta(pattern=r"^[A-Za-z]{2,3}$")]], Meta(max_length=8)] = []
    carries_upstairs: bool = True
    home_lat: Annotated[float, Meta(ge=-90, le=90)] | None = None
    home_lon: Annotated[float, Meta(ge=-180, le=180)] | None = None

    def __post_init__(self) -> None:
        if (self.home_lat is None) != (self.home_lon is None):
            raise ValueError("give both home latitude and longitude, or neither")


class ShiftIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A shift: the day, the hours, and where it starts and ends ("home" or "depot:ID")."""

    date: dt.date
    start: dt.time
    end: dt.time
    start_place: Annotated[str, Meta(pattern=r"^(home|depot:[0-9]{1,10})$")]
    end_place: Annotated[str, Meta(pattern=r"^(home|depot:[0-9]{1,10})$")]


# --- drivers ----------------------------------------------------------------------------------


def program_drivers(db: Session, food_bank_id: int) -> list[Driver]:
    return list(db.scalars(select(Driver).join(User, User.id == Driver.user_id)
                           .where(Driver.food_bank_id == food_bank_id)
                           .order_by(Driver.is_active.desc(), User.display_name)).all())


def add_driver(db: Session, *, food_bank_id: int, data: DriverIn) -> Driver:
    """A new driver: a personal account (role driver at the food bank, no password: they sign in
    through their personal route link) and the Driver row with car, languages and home."""
    try:
        user = auth.create_user(db, email=data.email, display_name=data.display_name.strip(),
                                memberships=[(food_bank_id, Role.driver)])
    except auth.AccountError as exc:
        raise RosterError(str(exc), "email") from exc
    driver = Driver(user_id=user.id, food_bank_id=food_bank_id)
    _apply(driver, data)
    db.add(driver)
    db.flush()
    return driver


def update_driver(db: Session, driver: Driver, data: DriverIn) -> Driver:
    """Change a driver's details; a new email must not belong to another account."""
    email = auth.normalise_email(data.email)
    user = driver.user
    if email != user.email:
        taken = db.scalar(select(User.id).where(User.email == email, User.id != user.id))
        if taken is not None:
            raise RosterError(f"An account for {email} already exists.", "email")
        user.email = email
    user.display_name = data.display_name.strip()
    if driver.home_lat is not None and data.home_lat is None and _shifts_from_home(db, driver):
        raise RosterError("Upcoming shifts start or end at this driver's home: change them before "
                          "removing the home location.", "home_lat")
    _apply(driver, data)
    db.flush()
    return driver


def _apply(driver: Driver, data: DriverIn) -> None:
    driver.phone = (data.phone or "").strip() or None
    driver.vehicle = data.vehicle
    driver.capacity_boxes = data.capacity_boxes
    driver.languages = sorted({code.lower() for code in data.languages})
    driver.carries_upstairs = data.carries_upstairs
    driver.home_lat, driver.home_lon = data.home_lat, data.home_lon


def _shifts_from_home(db: Session, driver: Driver, today: dt.date) -> bool:
    return db.scalar(select(Shift.id).where(
        Shift.driver_id == driver.id, Shift.date >= today,
        (Shift.start_depot_id.is_(None)) | (Shift.end_depot_id.is_(None))).limit(1)) is not None


def deactivate_driver(db: Session, driver: Driver, *, today: dt.date) -> int:
    """The driver stops driving: their sessions end at once (a phone with a route open is signed
    out), their account is disabled unless they hold a staff role too, and their upcoming shifts
    that no route uses yet are removed. Returns how many shifts were removed."""
    driver.is_active = False
    user = driver.user
    memberships = db.scalars(select(Membership).where(Membership.user_id == user.id)).all()
    if all(m.role == Role.driver for m in memberships):
        user.is_active = False
    auth.end_all_sessions(db, user.id)
    used = select(Route.shift_id).where(Route.shift_id.is_not(None))
    upcoming = db.scalars(select(Shift).where(Shift.driver_id == driver.id, Shift.date >= today,
                                              Shift.id.not_in(used))).all()
    for shift in upcoming:
        db.delete(shift)
    db.flush()
    return len(upcoming)


def reactivate_driver(db: Session, driver: Driver) -> None:
    driver.is_active = True
    driver.user.is_active = True
    db.flush()


# --- shifts -----------------------------------------------------------------------------------


def program_depots(db: Session, food_bank_id: int) -> list[Depot]:
    """Depots of the program: the food bank's own and those of its clinics."""
    orgs = select(Organization.id).where(
        (Organization.id == food_bank_id) | (Organization.food_bank_id == food_bank_id))
    return list(db.scalars(select(Depot).where(Depot.organization_id.in_(orgs))
                           .order_by(Depot.name)).all())


def shifts_between(db: Session, driver: Driver, first: dt.date, last: dt.date) -> list[Shift]:
    return list(db.scalars(select(Shift).where(Shift.driver_id == driver.id, Shift.date >= first,
                                               Shift.date <= last).order_by(Shift.date, Shift.start)).all())


def day_label(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def save_shift(db: Session, *, driver: Driver, data: ShiftIn, offered_by: str, today: dt.date,
               shift: Shift | None = None) -> Shift:
    """Add a shift (shift=None) or change one. The same rules whoever offers it:
    an active driver, not in the past, not on a day the program is closed, ends after it starts,
    no overlap with the driver's other shift that day, places are depots of the program or the
    driver's home (which needs a home location)."""
    if offered_by not in OFFERED_BY:
        raise RosterError(f"offered_by must be one of {', '.join(OFFERED_BY)}.", "offered_by")
    if shift is not None and shift.driver_id != driver.id:
        raise RosterError("This shift belongs to another driver.")
    if not driver.is_active:
        raise RosterError(f"{driver.user.display_name} is not an active driver.")
    if data.date < today:
        raise RosterError(f"{day_label(data.date)} is in the past; choose today or a later day.", "date")
    if data.end <= data.start:
        raise RosterError(f"The shift must end after it starts ({data.start:%H:%M}).", "end")
    holiday = db.scalar(select(Holiday).where(Holiday.food_bank_id == driver.food_bank_id,
                                              Holiday.date == data.date))
    if holiday is not None:
        raise RosterError(f"The program is closed on {day_label(data.date)} ({holiday.name}).", "date")
    others = db.scalars(select(Shift).where(Shift.driver_id == driver.id, Shift.date == data.date,
                                            Shift.id != (shift.id if shift else -1))).all()
    for other in others:
        if data.start < other.end and other.start < data.end:
            raise RosterError(
                f"This overlaps {driver.user.display_name}'s shift on {day_label(other.date)} from "
                f"{other.start:%H:%M} to {other.end:%H:%M}; change that shift instead.", "start")
        raise RosterError(
            f"{driver.user.display_name} already has a shift on {day_label(other.date)} "
            f"({other.start:%H:%M}–{other.end:%H:%M}); a driver has one shift a day, so change it.", "date")
    depot_ids = {d.id for d in program_depots(db, driver.food_bank_id)}
    start_depot = _place(driver, data.start_place, depot_ids, "start_place")
    end_depot = _place(driver, data.end_place, depot_ids, "end_place")
    if shift is None:
        shift = Shift(driver_id=driver.id, offered_by=offered_by)
        db.add(shift)
    shift.date, shift.start, shift.end = data.date, data.start, data.end
    shift.start_depot_id, shift.end_depot_id = start_depot, end_depot
    db.flush()
    return shift


def _place(driver: Driver, place: str, depot_ids: set[int], field: str) -> int | None:
    if place == HOME:
        if driver.home_lat is None or driver.home_lon is None:
            raise RosterError(f"{driver.user.display_name} has no home location yet: add it to the "
                              "driver's details, or start and end at a depot.", field)
        return None
    depot_id = int(place.removeprefix("depot:"))
    if depot_id not in depot_ids:
        raise RosterError("Choose one of the program's depots.", field)
    return depot_id


def remove_shift(db: Session, shift: Shift) -> None:
    """Take a shift off the roster; one a route already uses stays (re-plan the day first)."""
    if db.scalar(select(Route.id).where(Route.shift_id == shift.id).limit(1)) is not None:
        raise RosterError(f"A plan for {day_label(shift.date)} already uses this shift: take the driver "
                          "off that plan first.")
    db.delete(shift)
    db.flush()


# --- holidays ---------------------------------------------------------------------------------


def mark_holiday(db: Session, *, food_bank_id: int, date: dt.date, name: str, today: dt.date) -> Holiday:
    """Close the program on a day; the day is then not built and shifts cannot be offered for it."""
    name = name.strip()
    if not name:
        raise RosterError("Give the closed day a name, such as Thanksgiving.", "name")
    if len(name) > 100:
        raise RosterError("Use at most 100 characters for the name.", "name")
    if date < today:
        raise RosterError(f"{day_label(date)} is in the past.", "date")
    existing = db.scalar(select(Holiday).where(Holiday.food_bank_id == food_bank_id, Holiday.date == date))
    if existing is not None:
        raise RosterError(f"{day_label(date)} is already marked closed ({existing.name}).", "date")
    holiday = Holiday(food_bank_id=food_bank_id, date=date, name=name)
    db.add(holiday)
    db.flush()
    return holiday


def shifts_on(db: Session, food_bank_id: int, date: dt.date) -> list[Shift]:
    """The shifts already offered for a day (a coordinator marking it closed should know)."""
    return list(db.scalars(select(Shift).join(Driver, Driver.id == Shift.driver_id)
                           .where(Driver.food_bank_id == food_bank_id, Shift.date == date)).all())


def remove_holiday(db: Session, holiday: Holiday) -> None:
    db.delete(holiday)
    db.flush()
