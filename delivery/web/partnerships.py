"""The partnership pages: each clinic's written agreement with the food bank, read by both sides.

The food bank's admin writes and changes it; coordinators read it for every clinic of their program,
clinic staff only for their own clinic (anyone else's is 404). The page shows this week's allocation
and the agreement's change history (the audit rows: who and when).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import AllocationUnit, Organization, OrganizationKind, Role
from delivery.platform.auth import Principal
from delivery.platform.clock import zone
from delivery.program import allocations, partnerships
from delivery.referrals.schemas import PartnershipIn
from delivery.web.forms import Errors, FormData, convert
from delivery.web.render import DB, Audit, PathId, page, principal, program_today

PROGRAM = (Role.admin, Role.coordinator)
READERS = (Role.admin, Role.coordinator, Role.clinic_staff)
WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
UNIT_OPTIONS = [(AllocationUnit.new_patients.value, "New patients placed on the program"),
                (AllocationUnit.boxes.value, "Boxes (per delivery) of new patients")]


def visible_clinic(db: Session, who: Principal, clinic_id: int) -> tuple[Organization, Organization]:
    """The clinic and its food bank, if this person may read its agreement: staff of that clinic, or
    the coordinators and admins of its program. Anyone else gets 404 (nothing is revealed)."""
    clinic = db.get(Organization, clinic_id)
    if clinic is None or clinic.kind != OrganizationKind.clinic or clinic.food_bank_id is None or (
            clinic.id not in who.organizations_with(Role.clinic_staff)
            and clinic.food_bank_id not in who.organizations_with(*PROGRAM)):
        raise NotFoundException("No such clinic partner.")
    food_bank = db.get(Organization, clinic.food_bank_id)
    assert food_bank is not None
    return clinic, food_bank


def form_values(row: Any) -> dict[str, Any]:
    if row is None:
        return {"unit": AllocationUnit.new_patients.value, "delivery_days": []}
    return {"allocation": row.allocation, "unit": row.unit, "delivery_days": list(row.delivery_days),
            "days_to_first_box": row.days_to_first_box, "food_bank_contact": row.food_bank_contact,
            "clinic_contact": row.clinic_contact, "starts_on": row.starts_on.isoformat(),
            "review_on": row.review_on.isoformat() if row.review_on else ""}


def submitted(data: dict[str, Any]) -> dict[str, Any]:
    """The form's fields as the schema takes them: blanks left out, the days always a list."""
    days = data.get("delivery_days", [])
    skip = ("csrf_token", "delivery_days")
    values: dict[str, Any] = {k: v.strip() for k, v in data.items()
                              if k not in skip and isinstance(v, str) and v.strip()}
    values["delivery_days"] = days if isinstance(days, list) else [days]
    return values


class PartnershipController(Controller):
    path = "/partnerships"

    @get("/", opt={"roles": PROGRAM}, sync_to_thread=True)
    def partnerships(self, request: Request, db: DB) -> Template:
        """Every clinic partner of the coordinator's programs: the agreement, this week's allocation,
        and the clinics that referred far below it for weeks (to call them, not to cut them)."""
        programs = db.scalars(select(Organization).where(
            Organization.id.in_(principal(request).organizations_with(*PROGRAM))).order_by(Organization.name))
        sections = []
        for food_bank in programs:
            today = program_today(request, food_bank)
            ledger = partnerships.ledger(db, food_bank, today)
            clinics = db.scalars(select(Organization).where(Organization.food_bank_id == food_bank.id)
                                 .order_by(Organization.name)).all()
            rows = [(clinic, partnerships.of_clinic(db, clinic.id), ledger.allowance(clinic.id))
                    for clinic in clinics]
            sections.append({"food_bank": food_bank, "rows": rows, "week": allocations.week_of(today),
                             "quiet": partnerships.quiet_clinics(db, food_bank, today)})
        return page(request, "partnerships/list.html", sections=sections, units=partnerships.UNIT_WORDS)

    def _page(self, request: Request, db: Session, clinic: Organization, food_bank: Organization, *,
              values: dict[str, Any] | None = None, errors: Errors | None = None, notice: str = "",
              status_code: int = 200) -> Template:
        row = partnerships.of_clinic(db, clinic.id)
        today = program_today(request, food_bank)
        quiet = next((q for q in partnerships.quiet_clinics(db, food_bank, today)
                      if q.clinic.id == clinic.id), None)
        return page(request, "partnerships/partnership.html", clinic=clinic, food_bank=food_bank,
                    partnership=row, allowance=partnerships.allowance(db, food_bank, clinic.id, today),
                    week=allocations.week_of(today), history=partnerships.history(db, clinic.id),
                    quiet=quiet, units=partnerships.UNIT_WORDS, unit_options=UNIT_OPTIONS,
                    weekdays=list(enumerate(WEEKDAY_NAMES)), values=values or form_values(row),
                    errors=errors or {}, notice=notice, status_code=status_code, tz=zone(food_bank.timezone),
                    can_edit=food_bank.id in principal(request).organizations_with(Role.admin))

    @get("/{clinic_id:int}", opt={"roles": READERS}, sync_to_thread=True)
    def partnership(self, request: Request, db: DB, clinic_id: PathId) -> Template:
        """One clinic's agreement, this week's allocation and the change history (read-only for clinic
        staff and coordinators; the food bank's admin edits it here)."""
        clinic, food_bank = visible_clinic(db, principal(request), clinic_id)
        return self._page(request, db, clinic, food_bank)

    @post("/{clinic_id:int}", opt={"roles": (Role.admin,)}, sync_to_thread=True, status_code=200)
    def save_partnership(self, request: Request, db: DB, audit: Audit, clinic_id: PathId,
                         data: FormData) -> Template:
        """Write or change the agreement; each changed term goes on the audit trail."""
        clinic, food_bank = visible_clinic(db, principal(request), clinic_id)
        if food_bank.id not in principal(request).organizations_with(Role.admin):
            raise NotFoundException("No such clinic partner.")
        values = submitted(data)
        form, errors = convert(PartnershipIn, values)
        if form is not None:
            try:
                terms = partnerships.Terms(**msgspec.structs.asdict(form))
                changes = partnerships.save(db, audit, clinic, terms, actor_id=principal(request).user_id)
            except partnerships.PartnershipError as exc:
                errors = {exc.field or "form": str(exc)}
        if errors:
            db.rollback()
            return self._page(request, db, clinic, food_bank, values=values, errors=errors, status_code=422)
        db.commit()
        return self._page(request, db, clinic, food_bank, notice="Saved: " + "; ".join(changes) + ".")
