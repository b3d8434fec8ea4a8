"""Benefits enrollment inside the house: food-insecure patients not enrolled in SNAP/CalFresh are
flagged for the benefits-enrollment staff of their clinic and of its food bank, who record each step
(contacted, applied, enrolled, declined) with its date. Each step is audited and on the timeline.

The staff (role `benefits`) see only this worklist and the patients' contact details. Plain rules
first (`should_flag`, `check_step`), then the writes; services do not commit.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, case, or_, select
from sqlalchemy.orm import Session

from delivery.models import CLOSED_STEPS, BenefitsCase, BenefitsStep, EventKind, Referral, SnapAnswer
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.errors import ConflictError, FieldError, NotFoundError
from delivery.timeline import events as timeline
from delivery.timeline import payloads

ORDER = (BenefitsStep.flagged, BenefitsStep.contacted, BenefitsStep.applied, BenefitsStep.enrolled)
"""The steps forward; `declined` may follow any open step."""
EVENTS = {BenefitsStep.contacted: EventKind.benefits_contacted,
          BenefitsStep.applied: EventKind.benefits_applied,
          BenefitsStep.enrolled: EventKind.benefits_enrolled,
          BenefitsStep.declined: EventKind.benefits_declined}
DATE_OF = {BenefitsStep.contacted: "contacted_on", BenefitsStep.applied: "applied_on",
           BenefitsStep.enrolled: "enrolled_on", BenefitsStep.declined: "declined_on"}
NOTE_MAX = 500


# --- rules ----------------------------------------------------------------------------------


def should_flag(*, food_insecure: bool, snap_enrolled: str, asked_for_help: bool,
                do_not_contact: bool) -> bool:
    """Flag a patient who screens food insecure and is not enrolled (or asked for help enrolling),
    never one who asked not to be contacted, nor one already enrolled."""
    if do_not_contact or snap_enrolled == SnapAnswer.yes:
        return False
    return food_insecure and (snap_enrolled == SnapAnswer.no or asked_for_help)


def check_step(before: str, after: str, on: dt.date, *, today: dt.date) -> BenefitsStep:
    """The step to record, if a case at `before` may take it on that date; FieldError says why not."""
    try:
        step = BenefitsStep(after)
    except ValueError:
        raise FieldError("Choose contacted, applied, enrolled or declined.", "step") from None
    if step is BenefitsStep.flagged:
        raise FieldError("Choose contacted, applied, enrolled or declined.", "step")
    if before in CLOSED_STEPS:
        raise FieldError(f"This case is closed ({before}).", "step", code="benefits_closed")
    if step is not BenefitsStep.declined and ORDER.index(step) <= ORDER.index(BenefitsStep(before)):
        raise FieldError(f"This case is already {before}: choose a later step.", "step", code="benefits_step")
    if on > today:
        raise FieldError("The date is in the future: record a step once it has happened.", "on")
    return step


# --- writes ---------------------------------------------------------------------------------


def flag(db: Session, referral: Referral, *, snap_enrolled: str, actor_id: int | None,
         now: dt.datetime) -> BenefitsCase | None:
    """Put the referral's patient on the benefits worklist; None when an open case already has them."""
    open_case = db.scalar(select(BenefitsCase.id).where(BenefitsCase.patient_id == referral.patient_id,
                                                        BenefitsCase.step.not_in(CLOSED_STEPS)).limit(1))
    if open_case is not None or db.scalar(select(BenefitsCase.id).where(
            BenefitsCase.referral_id == referral.id)) is not None:
        return None
    row = BenefitsCase(referral_id=referral.id, patient_id=referral.patient_id, clinic_id=referral.clinic_id,
                       food_bank_id=referral.food_bank_id, step=BenefitsStep.flagged, flagged_at=now,
                       flagged_by_id=actor_id)
    db.add(row)
    db.flush()
    timeline.record(db, referral, EventKind.benefits_flagged,
                    payloads.BenefitsFlagged(case_id=row.id, snap_enrolled=snap_enrolled),
                    actor_id=actor_id, occurred_at=now)
    return row


def flag_on_request(db: Session, referral: Referral, *, food_insecure: bool, actor_id: int,
                    now: dt.datetime) -> BenefitsCase:
    """Clinic staff flag a patient who wants help enrolling (whatever the screening said about SNAP);
    FieldError when the rule does not allow it or the patient is already on the worklist."""
    snap = referral.screening.snap_enrolled
    if not should_flag(food_insecure=food_insecure, snap_enrolled=snap, asked_for_help=True,
                       do_not_contact=referral.patient.do_not_contact):
        why = ("the patient asked not to be contacted" if referral.patient.do_not_contact
               else "the patient is enrolled already" if snap == SnapAnswer.yes
               else "the patient did not screen food insecure")
        raise FieldError(f"Not flagged: {why}.", "benefits", code="benefits_not_due")
    row = flag(db, referral, snap_enrolled=snap, actor_id=actor_id, now=now)
    if row is None:
        raise ConflictError("The patient is on the benefits-enrollment worklist already.", "benefits")
    return row


def record_step(db: Session, ctx: AuditContext, row: BenefitsCase, *, step: str, on: dt.date, note: str,
                today: dt.date, now: dt.datetime) -> None:
    """A step of the case and its date (audited, and on the referral's timeline without the note)."""
    taken = check_step(row.step, step, on, today=today)
    text = " ".join(note.split()) or None
    if text is not None and len(text) > NOTE_MAX:
        raise FieldError(f"Keep the note under {NOTE_MAX} characters.", "note")
    before = row.step
    row.step = taken
    setattr(row, DATE_OF[taken], on)
    row.note = text or row.note
    row.updated_at, row.updated_by_id = now, ctx.user_id
    referral = db.get(Referral, row.referral_id)
    assert referral is not None
    timeline.record(db, referral, EVENTS[taken],
                    payloads.BenefitsStepTaken(case_id=row.id, before=before, on=on),
                    actor_id=ctx.user_id, occurred_at=now)
    audit.record(db, ctx, "U", "benefits_case", row.id, patient_id=row.patient_id,
                 detail=f"{before} -> {taken} on {on.isoformat()}")
    db.flush()


# --- reads ----------------------------------------------------------------------------------


def _visible_to(organization_ids: list[int]) -> ColumnElement[bool]:
    """Cases of the patients of these organizations: a clinic's own, a food bank's whole program."""
    return or_(BenefitsCase.clinic_id.in_(organization_ids), BenefitsCase.food_bank_id.in_(organization_ids))


def worklist(db: Session, organization_ids: list[int], *, include_closed: bool = False,
             limit: int = 300) -> list[BenefitsCase]:
    """The cases these organizations' benefits staff work: earliest step first, oldest first."""
    query = select(BenefitsCase).where(_visible_to(organization_ids))
    if not include_closed:
        query = query.where(BenefitsCase.step.not_in(CLOSED_STEPS))
    order = case(*((BenefitsCase.step == s, n) for n, s in enumerate(ORDER)), else_=len(ORDER))
    return list(db.scalars(query.order_by(order, BenefitsCase.flagged_at, BenefitsCase.id).limit(limit)))


def visible_case(db: Session, organization_ids: list[int], case_id: int) -> BenefitsCase:
    row = db.scalar(select(BenefitsCase).where(BenefitsCase.id == case_id, _visible_to(organization_ids)))
    if row is None:
        raise NotFoundError(f"No benefits case {case_id} on your worklist.")
    return row


def of_referral(db: Session, referral_id: int) -> BenefitsCase | None:
    return db.scalar(select(BenefitsCase).where(BenefitsCase.referral_id == referral_id))
