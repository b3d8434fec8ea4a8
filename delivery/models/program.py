"""What the program delivers and with whom: orders, depots, drivers, shifts, closed days."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, utcnow

if TYPE_CHECKING:
    from delivery.models.people import User
    from delivery.models.referrals import Patient, Referral


class BoxType(StrEnum):
    standard = "standard"
    diabetic = "diabetic"
    low_sodium = "low_sodium"
    vegetarian = "vegetarian"
    family = "family"


class Dietary(StrEnum):
    diabetic = "diabetic"
    low_sodium = "low_sodium"
    vegetarian = "vegetarian"
    halal = "halal"
    kosher = "kosher"
    no_pork = "no_pork"
    nut_allergy = "nut_allergy"
    soft_foods = "soft_foods"


class Cadence(StrEnum):
    weekly = "weekly"
    biweekly = "biweekly"  # every two weeks
    once = "once"


class OrderStatus(StrEnum):
    active = "active"
    waitlisted = "waitlisted"
    paused = "paused"
    ended = "ended"


class Order(Base):
    """What is to be delivered, and when."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    boxes: Mapped[int] = mapped_column(Integer, default=1)
    box_type: Mapped[str] = mapped_column(String(40), default="standard")
    cadence: Mapped[str] = mapped_column(String(10), default=Cadence.weekly)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    window_start: Mapped[dt.time | None] = mapped_column(Time)
    window_end: Mapped[dt.time | None] = mapped_column(Time)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), index=True)
    paused_until: Mapped[dt.date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(500))
    ended_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    waitlisted_at: Mapped[dt.datetime | None]
    # The program dates (its time zone) it was asked for and put on the program: a clinic's weekly
    # allocation counts these. Null on orders from before allocations were kept.
    placed_on: Mapped[dt.date | None] = mapped_column(Date)
    accepted_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    # Why it waits while waitlisted: "capacity" (the program is full) or "allocation" (its clinic's
    # allocation this week is used); only a capacity wait holds other clinics' referrals behind it.
    waitlist_reason: Mapped[str | None] = mapped_column(String(12))

    patient: Mapped[Patient] = relationship(lazy="joined")
    referral: Mapped[Referral] = relationship(lazy="raise")


class Depot(Base):
    """Where boxes are loaded (food bank, clinic), with location and hours."""

    __tablename__ = "depots"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    opens: Mapped[dt.time] = mapped_column(Time)
    closes: Mapped[dt.time] = mapped_column(Time)
    hours: Mapped[str] = mapped_column(String(200))  # as people read it: "Mon-Fri 9am-5pm"
    pickup: Mapped[bool] = mapped_column(Boolean, default=True)  # patients may pick up here


class Driver(Base):
    """A volunteer (or staff) who drives."""

    __tablename__ = "drivers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    vehicle: Mapped[str] = mapped_column(String(10), default="car")  # car or van
    capacity_boxes: Mapped[int] = mapped_column(Integer)
    languages: Mapped[list[str]] = mapped_column(default=list)
    carries_upstairs: Mapped[bool] = mapped_column(Boolean, default=True)
    home_lat: Mapped[float | None] = mapped_column(Float)
    home_lon: Mapped[float | None] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str | None] = mapped_column(String(10))  # the language the driver chose for their pages

    user: Mapped[User] = relationship(lazy="joined")


class Shift(Base):
    """A driver's availability on a day: start and end time, start and end place."""

    __tablename__ = "shifts"
    __table_args__ = (UniqueConstraint("driver_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    driver_id: Mapped[int] = mapped_column(ForeignKey("drivers.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    start: Mapped[dt.time] = mapped_column(Time)
    end: Mapped[dt.time] = mapped_column(Time)
    start_depot_id: Mapped[int | None] = mapped_column(ForeignKey("depots.id"))
    end_depot_id: Mapped[int | None] = mapped_column(ForeignKey("depots.id"))
    offered_by: Mapped[str] = mapped_column(String(20), default="coordinator")  # or "driver"

    driver: Mapped[Driver] = relationship(lazy="joined")


class Holiday(Base):
    """A day the program marks closed: no Stops are built for it."""

    __tablename__ = "holidays"
    __table_args__ = (UniqueConstraint("food_bank_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    date: Mapped[dt.date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(100))
