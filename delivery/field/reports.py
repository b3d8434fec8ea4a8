"""What a driver tells the coordinator besides an outcome: quick flags at a stop ("asked for help",
"no working fridge", "address or phone changed", "seemed unwell", "other") and "report a problem"
about the route. Each is a `FieldReport` on the coordinator's exceptions list until handled. A new
address is never written over the patient's: it becomes a proposed change in the review queue.
Services do not commit.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    FieldReport,
    FieldReportKind,
    Plan,
    ReviewItem,
    ReviewKind,
    Stop,
    User,
    utcnow,
)
from delivery.platform.errors import FieldError
from delivery.referrals import needs

STOP_KINDS = (FieldReportKind.asked_for_help, FieldReportKind.no_fridge, FieldReportKind.address_changed,
              FieldReportKind.phone_changed, FieldReportKind.seemed_unwell, FieldReportKind.other)
NEEDS_DETAIL = (FieldReportKind.address_changed, FieldReportKind.phone_changed, FieldReportKind.other)
MAX_DETAIL = 500


def flag_stop(db: Session, *, stop: Stop, route_id: int, user_id: int, kind: str, detail: str,
              now: dt.datetime) -> FieldReport:
    """A quick flag at a stop; an address change is also proposed for the coordinator's review, and
    a need ("no working fridge", "asked for help") joins the referring clinic's needs list."""
    try:
        flag = FieldReportKind(kind)
    except ValueError:
        raise FieldError(f"Unknown flag {kind!r}: use one of {', '.join(STOP_KINDS)}.", "kind") from None
    if flag not in STOP_KINDS:
        raise FieldError(f"Unknown flag {kind!r}: use one of {', '.join(STOP_KINDS)}.", "kind")
    text = " ".join(detail.split())[:MAX_DETAIL] or None
    if flag in NEEDS_DETAIL and text is None:
        what = {"address_changed": "the new address", "phone_changed": "the new phone number"}
        raise FieldError(f"Write {what.get(flag, 'what you saw')} in the box.", "detail")
    report = FieldReport(route_id=route_id, stop_id=stop.id, user_id=user_id, kind=flag, detail=text)
    db.add(report)
    if flag is FieldReportKind.address_changed:
        _propose_address(db, stop, user_id, text or "")
    db.flush()
    needs.from_driver_flag(db, report, stop, now=now)
    return report


def _propose_address(db: Session, stop: Stop, user_id: int, new_address: str) -> None:
    patient = stop.patient
    food_bank_id = db.scalar(select(Plan.food_bank_id).where(Plan.id == stop.plan_id))
    driver = db.scalar(select(User.display_name).where(User.id == user_id))
    proposed = {"address_line1": new_address[:200], "unit": None, "city": patient.city,
                "state": patient.state, "postal_code": patient.postal_code, "lat": None, "lon": None,
                "source": "driver"}
    db.add(ReviewItem(kind=ReviewKind.address_change, patient_id=patient.id, food_bank_id=food_bank_id,
                      message=f"Driver {driver} reports a new address at the door: {new_address}"[:500],
                      details={"proposed": proposed, "stop_id": stop.id}))


def report_problem(db: Session, *, route_id: int, user_id: int, detail: str) -> FieldReport:
    """"Report a problem" with the route (car trouble, missing boxes, running late…)."""
    text = " ".join(detail.split())[:MAX_DETAIL]
    if not text:
        raise FieldError("Write what the problem is, so the coordinator knows how to help.", "detail")
    report = FieldReport(route_id=route_id, user_id=user_id, kind=FieldReportKind.route_problem, detail=text)
    db.add(report)
    db.flush()
    return report


def mark_handled(db: Session, report: FieldReport, *, user_id: int) -> None:
    """A coordinator has seen to this report; handling twice keeps the first time and person."""
    if report.handled_at is None:
        report.handled_at = utcnow()
        report.handled_by_id = user_id
        db.flush()
