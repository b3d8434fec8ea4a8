"""A clinic partner's written agreement with the food bank: its weekly referral allocation and terms."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from delivery.models.base import Base, utcnow


class AllocationUnit(StrEnum):
    """What a clinic's weekly allocation counts: patients placed on the program, or their boxes."""

    new_patients = "new_patients"
    boxes = "boxes"


class Partnership(Base):
    """The agreement, one per clinic: how much of the program a clinic may refer into each week
    (its allocation), on which delivery days, how soon a first box comes, who to call on each side,
    and when it started and is reviewed. Every change goes on the audit trail (`partnership`)."""

    __tablename__ = "partnerships"
    __table_args__ = (CheckConstraint("allocation >= 0", name="allocation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), unique=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    allocation: Mapped[int] = mapped_column(Integer)  # per program week (Monday to Sunday)
    unit: Mapped[str] = mapped_column(String(20), default=AllocationUnit.new_patients)
    delivery_days: Mapped[list[int]] = mapped_column(JSON, default=list)  # weekdays, 0 = Monday
    days_to_first_box: Mapped[int] = mapped_column(Integer)  # promised time from referral to first box
    food_bank_contact: Mapped[str] = mapped_column(String(300))  # name, phone, email, as written
    clinic_contact: Mapped[str] = mapped_column(String(300))
    starts_on: Mapped[dt.date] = mapped_column(Date)
    review_on: Mapped[dt.date | None] = mapped_column(Date)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
