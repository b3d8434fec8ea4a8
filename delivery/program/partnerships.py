"""Partnerships: the written agreement with each clinic partner, its change history, and what is left
of a clinic's weekly allocation (`delivery.program.allocations` does the arithmetic).

Only the food bank's admin changes an agreement; every change is an audit row (`partnership`,
the clinic's id) with who and when, which is also the history both sides read on the page.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, fields

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.models import (
    AuditEvent,
    Order,
    Organization,
    OrganizationKind,
    Partnership,
    Referral,
    User,
    utcnow,
)
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.errors import FieldError
from delivery.program import allocations

RESOURCE = "partnership"
UNIT_WORDS = {"new_patients": "new patients", "boxes": "boxes"}


class PartnershipError(FieldError):
    default_code = "partnership_refused"


@dataclass(frozen=True)
class Terms:
    """What the agreement says (the admin's form, checked by `schemas.PartnershipIn`)."""

    allocation: int
    unit: str
    delivery_days: list[int]
    days_to_first_box: int
    food_bank_contact: str
    clinic_contact: str
    starts_on: dt.date
    review_on: dt.date | None = None


def _shown(name: str, value: object) -> str:
    if value is None:
        return "none"
    if name == "delivery_days":
        return ", ".join(calendar.day_name[day] for day in sorted(value))  # type: ignore[attr-defined]
    if name == "unit":
        return UNIT_WORDS[str(value)]
    return str(value)


LABELS = {"allocation": "allocation per week", "unit": "counted in", "delivery_days": "delivery days",
          "days_to_first_box": "days from referral to first box",
          "food_bank_contact": "food bank contact", "clinic_contact": "clinic contact",
          "starts_on": "start date", "review_on": "review date"}


def of_clinic(db: Session, clinic_id: int) -> Partnership | None:
    return db.scalar(select(Partnership).where(Partnership.clinic_id == clinic_id))


def save(db: Session, ctx: AuditContext, clinic: Organization, terms: Terms, *,
         actor_id: int | None) -> list[str]:
    """Write the clinic's agreement (the first time, or a change); each changed term is one audit
    row saying before → after. Returns the changes in words."""
    if clinic.kind != OrganizationKind.clinic or clinic.food_bank_id is None:
        raise PartnershipError(f"{clinic.name} is not a clinic of a program.")
    row = of_clinic(db, clinic.id)
    wanted = {f.name: getattr(terms, f.name) for f in fields(Terms)}
    wanted["delivery_days"] = sorted(set(terms.delivery_days))
    if row is None:
        row = Partnership(clinic_id=clinic.id, food_bank_id=clinic.food_bank_id, **wanted)
        db.add(row)
        changes = [f"agreement written: {_summary(row)}"]
    else:
        changes = [f"{LABELS[name]} {_shown(name, getattr(row, name))} → {_shown(name, value)}"
                   for name, value in wanted.items() if getattr(row, name) != value]
        if not changes:
            raise PartnershipError("Nothing to change: this is the agreement as it stands.")
        for name, value in wanted.items():
            setattr(row, name, value)
    row.updated_at = utcnow()
    row.updated_by_id = actor_id
    for change in changes:
        audit.record(db, ctx, "U", RESOURCE, clinic.id, detail=change)
    db.flush()
    return changes


def _summary(row: Partnership) -> str:
    days = _shown("delivery_days", row.delivery_days)
    return (f"{row.allocation} {UNIT_WORDS[row.unit]} per week, delivered {days}, "
            f"first box within {row.days_to_first_box} days, from {row.starts_on}"
            + (f", review {row.review_on}" if row.review_on else ""))


@dataclass(frozen=True)
class Change:
    at: dt.datetime
    who: str
    what: str


def history(db: Session, clinic_id: int) -> list[Change]:
    """Every change to the clinic's agreement, newest first, with who made it and when."""
    rows = db.execute(select(AuditEvent.at, User.display_name, AuditEvent.client_id, AuditEvent.detail)
                      .outerjoin(User, User.id == AuditEvent.user_id)
                      .where(AuditEvent.resource == RESOURCE, AuditEvent.resource_id == str(clinic_id))
                      .order_by(AuditEvent.at.desc(), AuditEvent.id.desc()))
    return [Change(at, name or client or "unknown", detail or "") for at, name, client, detail in rows]


def _used(db: Session, food_bank_id: int, monday: dt.date, sunday: dt.date) -> dict[int, tuple[int, int]]:
    """(orders, boxes) each clinic of the program placed on the program in the week."""
    boxes = func.coalesce(func.sum(Order.boxes), 0)
    rows = db.execute(select(Referral.clinic_id, func.count(Order.id), boxes)
                      .join(Referral, Referral.id == Order.referral_id)
                      .where(Order.food_bank_id == food_bank_id, Order.accepted_on >= monday,
                             Order.accepted_on <= sunday)
                      .group_by(Referral.clinic_id))
    return {clinic_id: (int(count), int(boxes)) for clinic_id, count, boxes in rows}


def shares(db: Session, food_bank_id: int, today: dt.date) -> list[allocations.Share]:
    """Every clinic whose agreement is in force today, with what it used of this week's allocation."""
    rows = db.scalars(select(Partnership).where(Partnership.food_bank_id == food_bank_id,
                                                Partnership.starts_on <= today)).all()
    if not rows:  # a program without agreements: intake pays no more than this one query
        return []
    used = _used(db, food_bank_id, *allocations.week_of(today))
    result = []
    for row in rows:
        count, boxes = used.get(row.clinic_id, (0, 0))
        result.append(allocations.Share(row.clinic_id, row.unit, row.allocation,
                                        boxes if row.unit == "boxes" else count))
    return result


def ledger(db: Session, food_bank: Organization, today: dt.date) -> allocations.Ledger:
    """This week's allocations of the program's clinics, with the program's lending setting."""
    return allocations.Ledger(shares(db, food_bank.id, today), lending=food_bank.lend_allocation)


def allowance(db: Session, food_bank: Organization, clinic_id: int,
              today: dt.date) -> allocations.Allowance | None:
    """What the clinic may still refer onto the program this week; None when no agreement is in force
    (then only the program's capacity applies)."""
    return ledger(db, food_bank, today).allowance(clinic_id)


@dataclass(frozen=True)
class Quiet:
    """A clinic that referred far below its allocation for weeks: time for a conversation."""

    clinic: Organization
    partnership: Partnership
    weeks: list[allocations.QuietWeek]


def quiet_clinics(db: Session, food_bank: Organization, today: dt.date) -> list[Quiet]:
    """Clinics of the program that referred far below their allocation in each of the last whole
    weeks (what they asked for, placed on the program or waitlisted)."""
    this_monday, _ = allocations.week_of(today)
    since = this_monday - dt.timedelta(weeks=allocations.QUIET_WEEKS)
    referred: dict[int, dict[dt.date, int]] = defaultdict(lambda: defaultdict(int))
    units_of = {row.clinic_id: row.unit for row in db.scalars(
        select(Partnership).where(Partnership.food_bank_id == food_bank.id))}
    for clinic_id, placed_on, count, boxes in db.execute(
            select(Referral.clinic_id, Order.placed_on, func.count(Order.id), func.sum(Order.boxes))
            .join(Referral, Referral.id == Order.referral_id)
            .where(Order.food_bank_id == food_bank.id, Order.placed_on >= since,
                   Order.placed_on < this_monday)
            .group_by(Referral.clinic_id, Order.placed_on)):
        monday, _ = allocations.week_of(placed_on)
        used = int(boxes) if units_of.get(clinic_id) == "boxes" else int(count)
        referred[clinic_id][monday] += used
    found = []
    for row, clinic in db.execute(select(Partnership, Organization)
                                  .join(Organization, Organization.id == Partnership.clinic_id)
                                  .where(Partnership.food_bank_id == food_bank.id)
                                  .order_by(Organization.name)):
        weeks = allocations.quiet_weeks(referred[row.clinic_id], allocation=row.allocation,
                                        starts_on=row.starts_on, today=today)
        if weeks:
            found.append(Quiet(clinic, row, weeks))
    return found
