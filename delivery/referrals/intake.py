"""Referral intake: the one write path from a clinic's referral to an outcome and an Order.

The web form, the JSON API and the CSV import all call `refer()`; so every channel gets the
same eligibility rule, the same capacity check and the same timeline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from geopy.distance import great_circle
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    OPEN_STATUSES,
    Depot,
    EventKind,
    GeocodeStatus,
    NeedKind,
    Order,
    OrderStatus,
    Organization,
    OrganizationKind,
    Outcome,
    Patient,
    Referral,
    ReferralStatus,
    ReviewItem,
    ReviewKind,
    Screening,
    Source,
    address_text,
    utcnow,
)
from delivery.platform.clock import Clock
from delivery.platform.errors import FieldError
from delivery.program import allocations, benefits, partnerships, waitlist
from delivery.program.scheduling import next_weekday
from delivery.referrals import needs
from delivery.referrals.addresses import Point, PostalAddress, set_address
from delivery.referrals.eligibility import ScreeningAnswers, assess
from delivery.referrals.schemas import OrderIn, PatientIn, ReferralIn, parse_time
from delivery.timeline import events as timeline
from delivery.timeline import payloads
from delivery.timeline.payloads import FieldChange

REPEAT_WINDOW = dt.timedelta(days=30)
STATUS_FOR_OUTCOME = {
    Outcome.home_delivery: ReferralStatus.active,
    Outcome.waitlisted: ReferralStatus.waitlisted,
    Outcome.pickup: ReferralStatus.pickup,
    Outcome.not_eligible: ReferralStatus.not_eligible,
}


class IntakeError(FieldError):
    """A referral that cannot be accepted as sent; the message says what to fix."""

    default_code = "referral_refused"


@dataclass(frozen=True)
class IntakeResult:
    referral: Referral
    order: Order | None
    created: bool  # False: the patient already had an open referral, which is returned instead
    changes: tuple[FieldChange, ...] = ()  # what the referral changed in the stored patient


def clinic_for(db: Session, clinic_id: int) -> tuple[Organization, Organization]:
    """The referring clinic and the food bank whose program serves it."""
    clinic = db.get(Organization, clinic_id)
    if clinic is None or clinic.kind != OrganizationKind.clinic:
        raise IntakeError(f"Organization {clinic_id} is not a clinic.", "clinic_id")
    if clinic.food_bank_id is None:
        raise IntakeError(f"{clinic.name} is not linked to a food bank program yet; ask an admin.")
    food_bank = db.get(Organization, clinic.food_bank_id)
    assert food_bank is not None
    return clinic, food_bank


def refer(db: Session, data: ReferralIn, *, clinic_id: int, actor_id: int | None, source: Source,
          clock: Clock) -> IntakeResult:
    """Accept a referral: upsert the patient, decide the outcome, create the Order, record it all.

    The caller commits. Nothing is written when this raises.
    """
    clinic, food_bank = clinic_for(db, clinic_id)
    today = clock.today(food_bank.timezone)
    if data.patient.birth_date > today:
        raise IntakeError("The birth date is in the future: check the year.", "patient.birth_date")
    patient, is_new, changes = upsert_patient(db, clinic.id, food_bank.id, data.patient, actor_id=actor_id)

    now = clock.now()
    existing = None if is_new else _same_referral(db, patient.id, data, now)
    if existing is not None:
        _record_changes(db, existing, changes, source, actor_id)
        # A repeat may still bring the patient's answer about other needs (the same open one is not added).
        needs.from_referral(db, existing, data.needs, source=source, actor_id=actor_id, now=now)
        order = db.scalar(select(Order).where(Order.referral_id == existing.id,
                                              Order.status != OrderStatus.ended))
        return IntakeResult(existing, order, created=False, changes=changes)

    s = data.screening
    answers = ScreeningAnswers(s.hunger_worried, s.hunger_ran_out, s.transportation_barrier,
                               s.mobility_barrier, s.errands_barrier)
    eligibility = assess(answers)
    referral = Referral(clinic_id=clinic.id, food_bank_id=food_bank.id, patient_id=patient.id,
                        referred_by_id=actor_id, source=source, priority=data.priority,
                        status=STATUS_FOR_OUTCOME[eligibility.outcome],
                        outcome=eligibility.outcome, reason=eligibility.reason)
    db.add(referral)
    db.flush()
    db.add(Screening(referral_id=referral.id, hunger_worried=s.hunger_worried,
                     hunger_ran_out=s.hunger_ran_out,
                     transportation_barrier=s.transportation_barrier,
                     mobility_barrier=s.mobility_barrier, errands_barrier=s.errands_barrier,
                     snap_enrolled=s.snap_enrolled))
    timeline.record(db, referral, EventKind.received,
                    payloads.Received(clinic_id=clinic.id, clinic_name=clinic.name, source=source,
                                      note=data.note), actor_id=actor_id)
    _record_changes(db, referral, changes, source, actor_id)
    needs.from_referral(db, referral, data.needs, source=source, actor_id=actor_id, now=now)
    if benefits.should_flag(food_insecure=answers.food_insecure, snap_enrolled=s.snap_enrolled,
                            asked_for_help=bool(data.needs and NeedKind.food_benefits in data.needs.picks),
                            do_not_contact=patient.do_not_contact):
        benefits.flag(db, referral, snap_enrolled=s.snap_enrolled, actor_id=actor_id, now=now)

    order = None
    if eligibility.outcome == Outcome.home_delivery:
        order = _place_order(db, referral, food_bank, data.order or OrderIn(), today, actor_id)
    elif eligibility.outcome == Outcome.pickup:
        referral.reason += " " + pickup_advice(db, food_bank, patient)
    timeline.record(db, referral, EventKind.outcome,
                    payloads.OutcomeDecided(outcome=referral.outcome, reason=referral.reason),
                    actor_id=actor_id)
    db.flush()
    return IntakeResult(referral, order, created=True, changes=changes)


def _record_changes(db: Session, referral: Referral, changes: tuple[FieldChange, ...], source: str,
                    actor_id: int | None) -> None:
    """Before and after of every stored detail the referral changed, on the timeline. An applied
    address change is left out: `set_address` tells it already (`address_changed`)."""
    told = tuple(c for c in changes if not (c.field == "address" and c.applied))
    if told:
        timeline.record(db, referral, EventKind.patient_corrected,
                        payloads.PatientCorrected(patient_id=referral.patient_id, source=source,
                                                  changes=told), actor_id=actor_id)


def _same_referral(db: Session, patient_id: int, data: ReferralIn, now: dt.datetime) -> Referral | None:
    """The referral this one repeats: the patient's open one, or a decided one (pick-up, not
    eligible) from the last weeks with the very same screening answers: a re-sent file or form,
    not news. New answers are a new referral."""
    open_referral = db.scalar(select(Referral).where(Referral.patient_id == patient_id,
                                                     Referral.status.in_(OPEN_STATUSES)))
    if open_referral is not None:
        return open_referral
    s = data.screening
    return db.scalar(
        select(Referral).join(Screening, Screening.referral_id == Referral.id)
        .where(Referral.patient_id == patient_id,
               Referral.status.in_((ReferralStatus.pickup, ReferralStatus.not_eligible)),
               Referral.created_at >= now - REPEAT_WINDOW,
               Screening.hunger_worried == s.hunger_worried, Screening.hunger_ran_out == s.hunger_ran_out,
               Screening.transportation_barrier == s.transportation_barrier,
               Screening.mobility_barrier == s.mobility_barrier,
               Screening.errands_barrier == s.errands_barrier)
        .order_by(Referral.id.desc()).limit(1))


def _place_order(db: Session, referral: Referral, food_bank: Organization, wanted: OrderIn,
                 today: dt.date, actor_id: int | None, force_waitlist: bool = False) -> Order:
    """Create the Order and put it on the program; or on the waitlist when the program is full, or
    when the referring clinic has used its allocation this week (even with room in the program)."""
    weekday = wanted.weekday if wanted.weekday is not None else (food_bank.delivery_weekday or 0)
    order = Order(referral_id=referral.id, patient_id=referral.patient_id,
                  food_bank_id=food_bank.id, boxes=wanted.boxes, box_type=wanted.box_type,
                  cadence=wanted.cadence, weekday=weekday,
                  window_start=parse_time(wanted.window_start),
                  window_end=parse_time(wanted.window_end),
                  start_date=next_weekday(weekday, max(today, wanted.start_date or today)),
                  priority=referral.priority, status=OrderStatus.active, placed_on=today)
    waitlist.lock_program(db, food_bank.id)
    if not force_waitlist and waitlist.held_for_allocation(db, food_bank.id, referral.clinic_id):
        # In a new week the clinic's referrals held for its allocation go first, before this one.
        waitlist.promote(db, food_bank, today, actor_id)
    allowance = partnerships.allowance(db, food_bank, referral.clinic_id, today)
    over_allocation = (not force_waitlist and allowance is not None
                       and not allowance.admits(allocations.units(allowance.unit, order.boxes)))
    # Nobody jumps the queue: with patients of the same or higher priority already waiting, a new
    # order waits too, even when it alone would fit (promote() serves the queue strictly in order).
    if (force_waitlist or over_allocation
            or waitlist.waiting_ahead(db, food_bank.id, order.priority, referral.clinic_id)
            or not waitlist.order_fits(db, food_bank, order, today)):
        order.status = OrderStatus.waitlisted
        order.waitlisted_at = utcnow()
        order.waitlist_reason = waitlist.HELD_BY_ALLOCATION if over_allocation else waitlist.HELD_BY_CAPACITY
    else:
        order.accepted_on = today
    db.add(order)
    db.flush()
    if order.status == OrderStatus.waitlisted:
        referral.status = ReferralStatus.waitlisted
        referral.outcome = Outcome.waitlisted
        place = waitlist.position(db, order)
        held = None
        if over_allocation:
            assert allowance is not None
            held = payloads.AllocationUsed(unit=allowance.unit, allocation=allowance.allocation,
                                           used=allowance.used, lending=allowance.lending)
            referral.reason = (f"Eligible for home delivery, but the clinic's allocation this week is used "
                               f"({waitlist.allocation_words(allowance)}), though the program has room: "
                               f"waitlisted at position {place}.")
        else:
            referral.reason = (f"Eligible for home delivery, but the program's "
                               f"{food_bank.boxes_per_delivery_day} boxes per delivery day are taken: "
                               f"waitlisted at position {place}.")
        timeline.record(db, referral, EventKind.waitlisted,
                        payloads.Waitlisted(order_id=order.id, position=place, allocation_used=held),
                        actor_id=actor_id)
    else:
        referral.status = ReferralStatus.active
        referral.outcome = Outcome.home_delivery
        timeline.record(db, referral, EventKind.order_created,
                        payloads.OrderCreated(order_id=order.id, terms=payloads.terms_of(order),
                                              first_delivery=order.start_date), actor_id=actor_id)
    return order


def pickup_advice(db: Session, food_bank: Organization, patient: Patient) -> str:
    """The nearest pick-up depot and its hours, in words (all of them when the point is unknown)."""
    depots = list(db.scalars(select(Depot).where(Depot.organization_id == food_bank.id,
                                                 Depot.pickup.is_(True)).order_by(Depot.id)))
    if not depots:
        return f"Contact {food_bank.name} for pick-up times."
    if patient.lat is None or patient.lon is None:
        return "Pick up at " + "; or ".join(f"{d.name}, {d.address} ({d.hours})" for d in depots) + "."
    here = (patient.lat, patient.lon)
    nearest = min(depots, key=lambda d: great_circle(here, (d.lat, d.lon)).km)
    km = great_circle(here, (nearest.lat, nearest.lon)).km
    return f"Nearest pick-up: {nearest.name}, {nearest.address}, {km:.1f} km away ({nearest.hours})."


# --- patients -------------------------------------------------------------------------------


NEW_PATIENT_DEFAULTS: dict[str, object] = {"phone": None, "language": "en", "floor": 0, "elevator": False,
                                           "access_notes": None, "dietary": [], "do_not_contact": False,
                                           "text_consent": False}


def _details(p: PatientIn) -> dict[str, object]:
    """The details the referral gives; a field left out or blank is not given (None)."""
    return {"given_name": p.given_name.strip(), "family_name": p.family_name.strip(),
            "birth_date": p.birth_date, "phone": p.phone,
            "language": p.language.lower() if p.language else None, "floor": p.floor, "elevator": p.elevator,
            "access_notes": (p.access_notes or "").strip() or None,
            "dietary": [str(d) for d in p.dietary] if p.dietary else None,
            "consent_to_share": p.consent_to_share, "do_not_contact": p.do_not_contact,
            "text_consent": p.consent_to_text}


def _shown(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or None
    return str(value)


def upsert_patient(db: Session, clinic_id: int, food_bank_id: int, p: PatientIn, *,
                   actor_id: int | None = None) -> tuple[Patient, bool, tuple[FieldChange, ...]]:
    """Find the clinic's patient by MRN (update them) or create them; True when created, and the
    stored details this changed.

    A detail the referral leaves out or blank keeps what is stored; a different value is applied
    and reported as a change. An address a coordinator corrected by hand is never overwritten: the
    difference becomes a proposed change in the review queue. A new MRN with the same name and
    birth date as another patient is created and flagged for review, never merged silently.
    """
    patient = db.scalar(select(Patient).where(Patient.clinic_id == clinic_id, Patient.mrn == p.mrn))
    given = _details(p)
    a = p.address
    address = PostalAddress.of(a.line1, a.unit, a.city, a.state, a.postal_code)
    point = Point(a.lat, a.lon, GeocodeStatus.given) if a.lat is not None and a.lon is not None else None

    if patient is None:
        details = {key: NEW_PATIENT_DEFAULTS[key] if value is None and key in NEW_PATIENT_DEFAULTS
                   else value for key, value in given.items()}
        patient = Patient(clinic_id=clinic_id, mrn=p.mrn, **details)
        db.add(patient)
        set_address(db, patient, address, point=point)
        twin = db.scalar(select(Patient).where(
            Patient.clinic_id == clinic_id, Patient.id != patient.id,
            Patient.given_name == patient.given_name, Patient.family_name == patient.family_name,
            Patient.birth_date == patient.birth_date))
        if twin is not None:
            db.add(ReviewItem(kind=ReviewKind.possible_duplicate, patient_id=patient.id,
                              food_bank_id=food_bank_id,
                              message=(f"Same name and birth date as MRN {twin.mrn}: the same person "
                                       "under two MRNs?"),
                              details={"other_patient_id": twin.id, "other_mrn": twin.mrn}))
        return patient, True, ()

    changes: list[FieldChange] = []
    for key, value in given.items():
        before = getattr(patient, key)
        if value is not None and value != before:
            changes.append(FieldChange(field=key, before=_shown(before), after=_shown(value)))
            setattr(patient, key, value)
    stored = PostalAddress.of_patient(patient)
    if address.unit is None and dataclasses.replace(address, unit=stored.unit) == stored:
        address = stored  # a blank unit at the same street address keeps the stored one
    changed = address != stored
    if changed:
        changes.append(FieldChange(field="address", before=patient.address_text,
                                   after=address_text(address.line1, address.unit, address.city,
                                                      address.state, address.postal_code),
                                   applied=patient.address_corrected_at is None))
    if changed and patient.address_corrected_at is not None:
        proposed = {**address.as_fields(), "lat": a.lat if point else None, "lon": a.lon if point else None}
        already = db.scalar(select(ReviewItem.id).where(
            ReviewItem.patient_id == patient.id, ReviewItem.kind == ReviewKind.address_change,
            ReviewItem.resolved_at.is_(None)))
        if already is None:
            db.add(ReviewItem(kind=ReviewKind.address_change, patient_id=patient.id,
                              food_bank_id=food_bank_id,
                              message="The clinic sent a different address than the one a "
                                      "coordinator corrected.", details={"proposed": proposed}))
    elif changed:
        set_address(db, patient, address, point=point, actor_id=actor_id)
    elif point is not None and patient.geocode_status in (GeocodeStatus.pending,
                                                           GeocodeStatus.needs_review):
        set_address(db, patient, point=point, actor_id=actor_id)
    db.flush()
    return patient, False, tuple(changes)


# --- a coordinator's override ----------------------------------------------------------------


def override_outcome(db: Session, referral: Referral, outcome: Outcome, reason: str,
                     actor_id: int, today: dt.date) -> Order | None:
    """A coordinator sets the outcome by hand; the written reason goes on the timeline."""
    reason = reason.strip()
    if len(reason) < 3:
        raise IntakeError("Write the reason for the override.", "reason")
    if len(reason) > 400:
        raise IntakeError("Keep the reason under 400 characters.", "reason")
    food_bank = db.get(Organization, referral.food_bank_id)
    assert food_bank is not None
    before = referral.outcome
    open_order = db.scalar(select(Order).where(Order.referral_id == referral.id,
                                               Order.status != OrderStatus.ended))
    order = open_order
    if outcome in (Outcome.home_delivery, Outcome.waitlisted):
        if open_order is None:
            order = _place_order(db, referral, food_bank, OrderIn(), today, actor_id,
                                 force_waitlist=outcome == Outcome.waitlisted)
        elif outcome == Outcome.home_delivery and open_order.status == OrderStatus.waitlisted:
            open_order.status = OrderStatus.active  # the coordinator takes it over capacity on purpose
            open_order.accepted_on = today
            open_order.waitlist_reason = None
        elif outcome == Outcome.waitlisted and open_order.status == OrderStatus.active:
            open_order.status = OrderStatus.waitlisted
            open_order.waitlisted_at = utcnow()
            open_order.waitlist_reason = waitlist.HELD_BY_CAPACITY
    elif open_order is not None:
        open_order.status = OrderStatus.ended
        open_order.ended_at = utcnow()
        open_order.end_reason = f"Outcome overridden to {outcome}: {reason}"
        order = None
    referral.outcome = outcome
    referral.status = STATUS_FOR_OUTCOME[outcome]
    referral.reason = f"Set by a coordinator: {reason}"
    timeline.record(db, referral, EventKind.override,
                    payloads.Override(before=before, after=outcome, reason=reason,
                                      order_id=order.id if order else None), actor_id=actor_id)
    db.flush()
    if open_order is not None and order is None:
        waitlist.promote(db, food_bank, today, actor_id)
    return order
