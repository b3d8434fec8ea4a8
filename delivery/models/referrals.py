"""Patients, their referrals with screening and timeline, the review queue and the geocode cache."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, utcnow

if TYPE_CHECKING:
    from delivery.models.timeline import ReferralEvent


class HungerAnswer(StrEnum):
    """Hunger Vital Sign answers."""

    often = "often"
    sometimes = "sometimes"
    never = "never"


class SnapAnswer(StrEnum):
    """The screening's "enrolled in SNAP/CalFresh?" answer."""

    yes = "yes"
    no = "no"
    unknown = "unknown"


class Outcome(StrEnum):
    """What the program decided for a referral."""

    home_delivery = "home_delivery"
    waitlisted = "waitlisted"
    pickup = "pickup"
    not_eligible = "not_eligible"


class ReferralStatus(StrEnum):
    active = "active"  # home delivery under way
    waitlisted = "waitlisted"
    pickup = "pickup"  # referred to pick up at a depot
    not_eligible = "not_eligible"
    closed = "closed"


OPEN_STATUSES = (ReferralStatus.active, ReferralStatus.waitlisted)  # the clinic still waits on these


class GeocodeStatus(StrEnum):
    pending = "pending"  # not yet looked up (or a retryable error)
    found = "found"
    given = "given"  # the referrer sent coordinates
    manual = "manual"  # a coordinator set the point by hand
    needs_review = "needs_review"  # not found or ambiguous: in the review queue


class ReviewKind(StrEnum):
    geocode_failed = "geocode_failed"
    geocode_ambiguous = "geocode_ambiguous"
    address_change = "address_change"  # an import proposes a new address for a corrected one
    possible_duplicate = "possible_duplicate"  # same name and birth date under another MRN
    address_problem = "address_problem"  # a driver found the address wrong: deliveries wait for it
    failed_attempts = "failed_attempts"  # consecutive failed attempts: deliveries wait for a person
    receipt_denied = "receipt_denied"  # the clinic says the patient did not get a delivered box


class Source(StrEnum):
    web = "web"
    api = "api"
    csv = "csv"
    fhir = "fhir"
    demo = "demo"


class Patient(Base):
    """A person receiving deliveries; belongs to the referring clinic."""

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("clinic_id", "mrn"),
        Index("ix_patients_name_birth", "clinic_id", "family_name", "given_name", "birth_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    mrn: Mapped[str] = mapped_column(String(64))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16), default="en")
    address_line1: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(40))
    postal_code: Mapped[str] = mapped_column(String(20))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    geocode_status: Mapped[str] = mapped_column(String(20), default=GeocodeStatus.pending)
    geocode_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when a coordinator corrects the address by hand: imports then only propose changes.
    address_corrected_at: Mapped[dt.datetime | None]
    floor: Mapped[int] = mapped_column(Integer, default=0)
    elevator: Mapped[bool] = mapped_column(Boolean, default=False)
    access_notes: Mapped[str | None] = mapped_column(String(500))
    dietary: Mapped[list[str]] = mapped_column(default=list)
    consent_to_share: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    # The patient agreed to texts about their deliveries; an opt-out reply (STOP, ALTO…) stops them
    # at once and is kept as when it came, so a later re-sent referral cannot quietly undo it.
    text_consent: Mapped[bool] = mapped_column(Boolean, server_default=false())
    texts_stopped_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def address_text(self) -> str:
        return address_text(self.address_line1, self.unit, self.city, self.state, self.postal_code)


def address_text(address_line1: str, unit: str | None, city: str, state: str, postal_code: str) -> str:
    """An address on one line, as people write it."""
    unit = f" {unit}" if unit else ""
    return f"{address_line1}{unit}, {city}, {state} {postal_code}"


class Referral(Base):
    """A clinic's request for service for a patient; a status and a timeline of events."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)

    patient: Mapped[Patient] = relationship(lazy="joined")
    screening: Mapped[Screening] = relationship(back_populates="referral", lazy="joined")
    events: Mapped[list[ReferralEvent]] = relationship(
        back_populates="referral", lazy="raise", order_by="ReferralEvent.sequence"
    )


class Screening(Base):
    """The answers that justify a referral."""

    __tablename__ = "screenings"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), unique=True)
    hunger_worried: Mapped[str] = mapped_column(String(10))
    hunger_ran_out: Mapped[str] = mapped_column(String(10))
    transportation_barrier: Mapped[bool] = mapped_column(Boolean)
    mobility_barrier: Mapped[bool] = mapped_column(Boolean)  # carrying groceries, climbing stairs
    errands_barrier: Mapped[bool] = mapped_column(Boolean, default=False)  # errands alone
    snap_enrolled: Mapped[str] = mapped_column(String(10), default=SnapAnswer.unknown,
                                               server_default=SnapAnswer.unknown.value)

    referral: Mapped[Referral] = relationship(back_populates="screening")


class ReviewItem(Base):
    """The coordinators' review queue: nothing that needs a person is dropped silently."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    message: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(String(500))

    patient: Mapped[Patient] = relationship(lazy="joined")


class GeocodeCacheEntry(Base):
    """A geocoder's answer for one normalised address, so we never ask twice."""

    __tablename__ = "geocode_cache"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    query: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(20))  # found, not_found, ambiguous
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    display_name: Mapped[str | None] = mapped_column(Text)
    candidates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("provider", "query"),)
