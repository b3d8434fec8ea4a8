"""What patients need besides food and medical care, and the benefits enrollment worklist.

A `Need` is one answer to "Other than medical care, what do you need to be more healthy?" (quick
picks and the patient's own words), or a driver's observation at the door; it belongs to the
referring clinic's worklist. A `BenefitsCase` is a patient flagged for benefits-enrollment staff
(SNAP/CalFresh), with the dates of each step.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, one_of, utcnow
from delivery.models.referrals import Patient


class NeedKind(StrEnum):
    """The quick picks of the "what else do you need?" question."""

    rent_utilities = "rent_utilities"
    fridge_stove = "fridge_stove"  # a working fridge or stove
    ride = "ride"  # a ride to appointments
    food_benefits = "food_benefits"  # help enrolling in food benefits
    someone_to_talk_to = "someone_to_talk_to"
    other = "other"


class NeedStatus(StrEnum):
    open = "open"
    referred_on = "referred_on"  # clinic staff passed it to someone who can help
    resolved = "resolved"


class Need(Base):
    """One need on the referring clinic's worklist: who, what, where it came from and when."""

    __tablename__ = "needs"
    __table_args__ = (CheckConstraint(one_of("status", NeedStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)  # whose worklist
    kinds: Mapped[list[str]] = mapped_column(default=list)  # NeedKind values
    words: Mapped[str | None] = mapped_column(String(500))  # the patient's (or driver's) own words
    source: Mapped[str] = mapped_column(String(10))  # a referral Source, or "driver"
    field_report_id: Mapped[int | None] = mapped_column(ForeignKey("field_reports.id"))
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    raised_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(12), default=NeedStatus.open)
    note: Mapped[str | None] = mapped_column(String(500))  # staff's note with the last status
    updated_at: Mapped[dt.datetime | None]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship(lazy="joined")


class BenefitsStep(StrEnum):
    """Where a benefits case stands; each step after `flagged` has a date."""

    flagged = "flagged"
    contacted = "contacted"
    applied = "applied"
    enrolled = "enrolled"
    declined = "declined"


CLOSED_STEPS = (BenefitsStep.enrolled, BenefitsStep.declined)


class BenefitsCase(Base):
    """A food-insecure patient not enrolled in SNAP/CalFresh, on the benefits-enrollment worklist of
    the referring clinic and of its food bank."""

    __tablename__ = "benefits_cases"
    __table_args__ = (CheckConstraint(one_of("step", BenefitsStep), name="step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    step: Mapped[str] = mapped_column(String(12), default=BenefitsStep.flagged)
    flagged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    flagged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    contacted_on: Mapped[dt.date | None] = mapped_column(Date)
    applied_on: Mapped[dt.date | None] = mapped_column(Date)
    enrolled_on: Mapped[dt.date | None] = mapped_column(Date)
    declined_on: Mapped[dt.date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[dt.datetime | None]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient] = relationship(lazy="joined")
