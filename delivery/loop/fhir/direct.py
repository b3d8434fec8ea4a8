"""FHIR "Direct": a clinic's system refers through our server and follows the Task it gets back.

The same write paths as every channel: `intake.refer()` creates the referral, `orders.end_order()`
ends it when the clinic cancels. A Task's status is read from the timeline (`task_status`).
Services here never commit; the web layer does.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from delivery.loop.fhir.bundle import BundleError, ReferralBundle
from delivery.loop.fhir.task_status import Delivery, TaskState, task_state
from delivery.models import (
    FhirTask,
    Order,
    OrderStatus,
    Organization,
    Referral,
    ReferralEvent,
    Source,
    Stop,
)
from delivery.platform.clock import Clock
from delivery.platform.errors import ConflictError
from delivery.program import orders, waitlist
from delivery.referrals import intake
from delivery.timeline import events


@dataclass(frozen=True)
class Received:
    task: FhirTask
    created: bool  # False: the same ServiceRequest again; its Task is returned, nothing is created


def receive(db: Session, bundle: ReferralBundle, *, clinic_id: int, actor_id: int | None,
            clock: Clock) -> Received:
    """Create the referral a Bundle asks for (once per ServiceRequest identifier) and its Task."""
    known = db.scalar(select(FhirTask).where(FhirTask.clinic_id == clinic_id,
                                             FhirTask.request_identifier == bundle.request_identifier))
    if known is not None:
        return Received(known, created=False)
    result = intake.refer(db, bundle.referral, clinic_id=clinic_id, actor_id=actor_id, source=Source.fhir,
                          clock=clock)
    if not result.created:
        raise BundleError(f"Patient {bundle.referral.patient.mrn} already has an open referral "
                          f"({result.referral.id}, {result.referral.status}); follow it instead of "
                          "sending another.", f"Bundle.entry[{bundle.patient_entry}].resource.identifier",
                          "duplicate")
    row = FhirTask(referral_id=result.referral.id, clinic_id=clinic_id,
                   request_identifier=bundle.request_identifier, service_request=bundle.service_request)
    db.add(row)
    db.flush()
    return Received(row, created=True)


@dataclass(frozen=True)
class TaskView:
    """A Task with everything needed to serve it."""

    row: FhirTask
    referral: Referral
    state: TaskState
    clinic: Organization
    food_bank: Organization


def view(db: Session, row: FhirTask, clock: Clock, entries: list[events.Entry] | None = None) -> TaskView:
    """The Task as of now (today is the program's date, where it delivers)."""
    referral = db.get(Referral, row.referral_id)
    assert referral is not None
    clinic, food_bank = db.get(Organization, referral.clinic_id), db.get(Organization, referral.food_bank_id)
    assert clinic is not None and food_bank is not None
    today = clock.today(food_bank.timezone)
    entries = events.history(db, referral.id) if entries is None else entries
    state = task_state(entries, today=today, waitlist_note=waitlist_note(db, referral, food_bank, today),
                       waitlisted_is_rejected=food_bank.waitlisted_is_rejected)
    return TaskView(row, referral, state, clinic, food_bank)


def waitlist_note(db: Session, referral: Referral, food_bank: Organization, today: dt.date) -> str | None:
    """Where a waiting referral stands, in words (None when it does not wait)."""
    order = db.scalar(select(Order).where(Order.referral_id == referral.id,
                                          Order.status == OrderStatus.waitlisted))
    if order is None:
        return None
    weeks = waitlist.program_status(db, food_bank, today).expected_wait_weeks
    wait = f"; expected wait about {weeks} week{'s' if weeks != 1 else ''}" if weeks else ""
    return f"On the waitlist at position {waitlist.position(db, order)}{wait}."


def visible_task(db: Session, task_id: int, clinic_ids: list[int]) -> FhirTask | None:
    """The Task if it belongs to one of these clinics (else None: another clinic's ids reveal nothing)."""
    row = db.get(FhirTask, task_id)
    return row if row is not None and row.clinic_id in clinic_ids else None


@dataclass(frozen=True)
class TaskQuery:
    """Task search parameters, already parsed; None means not asked."""

    clinic_ids: list[int]
    task_ids: list[int] | None = None  # _id, or focus=ServiceRequest/{id} (same number)
    owner_id: int | None = None
    patient_id: int | None = None
    statuses: frozenset[str] | None = None
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None


def search(db: Session, query: TaskQuery, clock: Clock) -> list[TaskView]:
    """Every Task matching the query, oldest first (the caller pages)."""
    last_event = (select(ReferralEvent.referral_id, func.max(ReferralEvent.recorded_at).label("at"))
                  .group_by(ReferralEvent.referral_id).subquery())
    stmt: Select = (select(FhirTask).join(Referral, Referral.id == FhirTask.referral_id)
                    .join(last_event, last_event.c.referral_id == Referral.id)
                    .where(FhirTask.clinic_id.in_(query.clinic_ids)).order_by(FhirTask.id))
    if query.task_ids is not None:
        stmt = stmt.where(FhirTask.id.in_(query.task_ids))
    if query.owner_id is not None:
        stmt = stmt.where(Referral.food_bank_id == query.owner_id)
    if query.patient_id is not None:
        stmt = stmt.where(Referral.patient_id == query.patient_id)
    if query.updated_after is not None:
        stmt = stmt.where(last_event.c.at > query.updated_after)
    if query.updated_before is not None:
        stmt = stmt.where(last_event.c.at < query.updated_before)
    rows = list(db.scalars(stmt))
    by_referral: dict[int, list[events.Entry]] = defaultdict(list)
    for event in db.scalars(select(ReferralEvent).where(ReferralEvent.referral_id.in_(
            [r.referral_id for r in rows])).order_by(ReferralEvent.referral_id, ReferralEvent.sequence)):
        by_referral[event.referral_id].append(events.entry(event))
    views = [view(db, row, clock, by_referral[row.referral_id]) for row in rows]
    return [v for v in views if query.statuses is None or v.state.status in query.statuses]


def delivery(db: Session, stop_id: int, clinic_ids: list[int],
             clock: Clock) -> tuple[Delivery, TaskView] | None:
    """The delivery at this stop, with its Task, if it was made for one of these clinics' Tasks."""
    stop = db.get(Stop, stop_id)
    order = db.get(Order, stop.order_id) if stop is not None else None
    row = (db.scalar(select(FhirTask).where(FhirTask.referral_id == order.referral_id))
           if order is not None else None)
    if row is None or row.clinic_id not in clinic_ids:
        return None
    task = view(db, row, clock)
    found = [d for d in task.state.deliveries if d.stop_id == stop_id]
    return (found[0], task) if found else None


class CancelError(ConflictError):
    """A cancellation the Task cannot take now (it has already ended); the message says why."""


ENDED = frozenset({"rejected", "completed", "failed", "cancelled"})


def cancel(db: Session, task: TaskView, *, actor_id: int | None, reason: str | None, clock: Clock) -> None:
    """The requester cancels: the referral closes through the one path that closes referrals (its
    order ends, the coordinator sees it on the timeline, the waitlist moves up)."""
    if task.state.status in ENDED:
        raise CancelError(f"This Task is {task.state.status} already: there is nothing to cancel.")
    why = (reason or "").strip() or "no reason given"
    orders.close_referral(db, task.referral, f"Cancelled by {task.clinic.name} through FHIR: {why}"[:500],
                          actor_id, today=clock.today(task.food_bank.timezone))
