"""Benefits-enrollment staff's page: their worklist (SNAP/CalFresh) and each patient's contact
details, nothing else: no screening answers, no delivery history (their role opens no other page)."""

from __future__ import annotations

import datetime as dt

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from delivery.models import BenefitsStep, Organization, Role
from delivery.platform import audit as audit_trail
from delivery.platform.errors import FieldError
from delivery.program import benefits
from delivery.referrals.schemas import LANGUAGES
from delivery.web.forms import FormData
from delivery.web.render import DB, Audit, PathId, clock_of, page, principal

POLICY = {"roles": (Role.benefits,)}
STEP_WORDS = {BenefitsStep.flagged: "To contact", BenefitsStep.contacted: "Contacted",
              BenefitsStep.applied: "Applied", BenefitsStep.enrolled: "Enrolled",
              BenefitsStep.declined: "Declined"}


def _today(request: Request, db: Session, organization_ids: list[int]) -> dt.date:
    """Today in the program's time zone (a clinic's is its food bank's)."""
    organization = db.get(Organization, organization_ids[0])
    program = (db.get(Organization, organization.food_bank_id)
               if organization is not None and organization.food_bank_id else organization)
    return clock_of(request).today(program.timezone if program else "UTC")


class BenefitsController(Controller):
    path = "/benefits"

    @get("/", opt=POLICY, sync_to_thread=True)
    def worklist(self, request: Request, db: DB, audit: Audit, show: FromQuery[str] = "open") -> Template:
        """The patients to help enroll, earliest step first, with their contact details."""
        return self._page(request, db, audit, show=show)

    def _page(self, request: Request, db: Session, audit: Audit, *, show: str = "open",
              errors: dict[int, str] | None = None, status_code: int = 200) -> Template:
        mine = principal(request).organizations_with(Role.benefits)
        rows = benefits.worklist(db, mine, include_closed=show == "all")
        audit_trail.record_reads(request.app.state.database, audit, "benefits_case",
                                 ((c.id, c.patient_id) for c in rows), detail="benefits worklist")
        return page(request, "benefits/worklist.html", rows=rows, show=show, steps=STEP_WORDS,
                    languages=LANGUAGES, today=_today(request, db, mine), errors=errors or {},
                    status_code=status_code)

    @post("/{case_id:int}", opt=POLICY, sync_to_thread=True, status_code=200)
    def record_step(self, request: Request, db: DB, audit: Audit, case_id: PathId,
                    data: FormData) -> Response | Template:
        """Contacted, applied, enrolled or declined, on a date (audited; on the referral's timeline)."""
        mine = principal(request).organizations_with(Role.benefits)
        row = benefits.visible_case(db, mine, case_id)
        try:
            on = dt.date.fromisoformat(str(data.get("on") or ""))
        except ValueError:
            on = None
        try:
            if on is None:
                raise FieldError("Give the date of this step (YYYY-MM-DD).", "on")
            benefits.record_step(db, audit, row, step=str(data.get("step") or ""), on=on,
                                 note=str(data.get("note") or ""), today=_today(request, db, mine),
                                 now=clock_of(request).now())
        except FieldError as exc:
            db.rollback()
            return self._page(request, db, audit, errors={case_id: str(exc)}, status_code=422)
        db.commit()
        return Redirect("/benefits", status_code=303)
