"""The typed payload of each event kind: the ids an event concerns and the values it carries.

Payloads are stored as JSON on the event (`ReferralEvent.data`) and decoded back into these structs
to render the sentence a person reads (`delivery.timeline.text`) or to answer the API. Changes carry
what was before and what is after, so reports read history instead of a row that was overwritten.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from delivery.models import EventKind, Order


class Payload(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base of every payload: closed, so a misspelt field fails when the event is written."""


class Received(Payload):
    clinic_id: int
    clinic_name: str
    source: str  # web, api, csv, fhir, demo
    note: str | None = None  # the clinic's note for the food bank


class OutcomeDecided(Payload):
    outcome: str  # home_delivery, waitlisted, pickup, not_eligible
    reason: str


class Override(Payload):
    """A coordinator set the outcome by hand."""

    before: str
    after: str
    reason: str
    order_id: int | None = None  # the order the referral has after the override, if any


class AllocationUsed(Payload):
    """The referring clinic's allocation for the week, all used when the referral came."""

    unit: str  # new_patients or boxes
    allocation: int
    used: int
    lending: bool  # the food bank lends unused allocation, and none was left


class Waitlisted(Payload):
    order_id: int
    position: int
    allocation_used: AllocationUsed | None = None  # set when the clinic's allocation, not capacity, held it


class MovedOffWaitlist(Payload):
    order_id: int
    first_delivery: dt.date
    allocation: bool = False  # it waited for its clinic's allocation (a new week), not for room


class OrderTerms(Payload):
    """What an order delivers and when."""

    weekday: int  # 0 = Monday
    boxes: int
    box_type: str
    cadence: str
    window_start: dt.time | None = None
    window_end: dt.time | None = None


def terms_of(order: Order) -> OrderTerms:
    """An order's terms as they stand."""
    return OrderTerms(weekday=order.weekday, boxes=order.boxes, box_type=order.box_type,
                      cadence=order.cadence, window_start=order.window_start, window_end=order.window_end)


class OrderCreated(Payload):
    order_id: int
    terms: OrderTerms
    first_delivery: dt.date


class OrderChanged(Payload):
    order_id: int
    before: OrderTerms
    after: OrderTerms


class PriorityChanged(Payload):
    order_id: int
    before: int  # 0 normal, 1 high, 2 urgent
    after: int


class Paused(Payload):
    order_id: int
    until: dt.date
    reason: str
    before_until: dt.date | None = None  # the pause this one replaces, if any


class Resumed(Payload):
    order_id: int
    was_until: dt.date
    first_delivery: dt.date | None


class Ended(Payload):
    """The order ended (order_id), or the referral closed without an order (order_id None)."""

    reason: str
    order_id: int | None = None


class StopPlanned(Payload):
    """A stop on a delivery day: scheduled, or out for delivery on a route."""

    order_id: int
    stop_id: int
    plan_id: int
    date: dt.date
    route_id: int | None = None


class Delivered(Payload):
    """Delivered or left at the door."""

    order_id: int
    stop_id: int
    plan_id: int
    confirmation_id: int
    date: dt.date
    boxes: int


class AttemptFailed(Payload):
    order_id: int
    stop_id: int
    plan_id: int
    confirmation_id: int
    date: dt.date
    reason: str  # the confirmation's outcome: no_answer, refused, wrong_address, unsafe, other
    note: str | None = None


class ConfirmationUndone(Payload):
    """A driver withdrew their confirmation of a stop (within 5 minutes): the stop is pending again."""

    order_id: int
    stop_id: int
    plan_id: int
    confirmation_id: int
    date: dt.date
    outcome: str  # what was withdrawn


class Rescheduled(Payload):
    order_id: int
    from_date: dt.date
    to_date: dt.date
    stop_id: int | None = None


class StopRemoved(Payload):
    order_id: int
    stop_id: int
    plan_id: int
    date: dt.date
    reason: str


class Receipt(Payload):
    """Clinic staff's word that the patient received the food (or did not)."""

    note: str | None = None
    stop_id: int | None = None  # the delivery it is about (None in events written before issue 11)
    order_id: int | None = None


class HeldForReview(Payload):
    """Deliveries stopped until a coordinator looks: failed attempts in a row, or a wrong address."""

    order_id: int
    review_item_id: int
    reasons: list[str]  # the failed attempts' outcomes, oldest first (no_answer, wrong_address, …)


class AddressChanged(Payload):
    patient_id: int
    before: str
    after: str
    point: str  # kept, placed (by hand), locating (being located again)


class FieldChange(Payload):
    """One stored detail of a patient a re-sent referral changed, or proposed for review (not applied)."""

    field: str  # the API's name: "phone", "floor", "address", ...
    before: str | None
    after: str | None
    applied: bool = True


class PatientCorrected(Payload):
    """A re-sent referral (form, API, CSV) brought details that differ from the stored ones."""

    patient_id: int
    source: str  # web, api, csv, fhir, demo
    changes: tuple[FieldChange, ...]


class ReviewResolved(Payload):
    review_item_id: int
    review_kind: str
    resolution: str


class DuplicateChecked(Payload):
    other_referral_id: int  # the newer referral of the same person, which was ended


class NeedRaised(Payload):
    """A need besides food, for the referring clinic's worklist (the words stay on the need row)."""

    need_id: int
    source: str  # web, api, csv, fhir, demo (the referral), or driver (a driver's observation)
    kinds: list[str]  # NeedKind values


class NeedUpdated(Payload):
    """Clinic staff referred a need on, or resolved it."""

    need_id: int
    before: str  # NeedStatus values
    after: str
    note: str | None = None


class BenefitsFlagged(Payload):
    """On the benefits-enrollment worklist: food insecure and not enrolled in SNAP/CalFresh."""

    case_id: int
    snap_enrolled: str  # the screening's answer: yes, no, unknown


class BenefitsStepTaken(Payload):
    """Benefits-enrollment staff recorded a step (contacted, applied, enrolled, declined) and its date."""

    case_id: int
    before: str  # BenefitsStep values
    on: dt.date


class Migrated(Payload):
    """An event written before events were data: its old kind and sentence, kept as they were."""

    old_kind: str
    message: str


PAYLOADS: dict[EventKind, type[Payload]] = {
    EventKind.received: Received,
    EventKind.outcome: OutcomeDecided,
    EventKind.override: Override,
    EventKind.waitlisted: Waitlisted,
    EventKind.moved_off_waitlist: MovedOffWaitlist,
    EventKind.order_created: OrderCreated,
    EventKind.order_changed: OrderChanged,
    EventKind.priority_changed: PriorityChanged,
    EventKind.paused: Paused,
    EventKind.resumed: Resumed,
    EventKind.ended: Ended,
    EventKind.scheduled: StopPlanned,
    EventKind.out_for_delivery: StopPlanned,
    EventKind.delivered: Delivered,
    EventKind.left_at_door: Delivered,
    EventKind.attempt_failed: AttemptFailed,
    EventKind.confirmation_undone: ConfirmationUndone,
    EventKind.rescheduled: Rescheduled,
    EventKind.stop_removed: StopRemoved,
    EventKind.receipt_confirmed: Receipt,
    EventKind.receipt_denied: Receipt,
    EventKind.address_changed: AddressChanged,
    EventKind.patient_corrected: PatientCorrected,
    EventKind.review_resolved: ReviewResolved,
    EventKind.duplicate_checked: DuplicateChecked,
    EventKind.held_for_review: HeldForReview,
    EventKind.need_raised: NeedRaised,
    EventKind.need_referred_on: NeedUpdated,
    EventKind.need_resolved: NeedUpdated,
    EventKind.benefits_flagged: BenefitsFlagged,
    EventKind.benefits_contacted: BenefitsStepTaken,
    EventKind.benefits_applied: BenefitsStepTaken,
    EventKind.benefits_enrolled: BenefitsStepTaken,
    EventKind.benefits_declined: BenefitsStepTaken,
    EventKind.legacy: Migrated,
}
"""The payload type each kind carries (every kind has one)."""


def decode(kind: EventKind, data: dict[str, Any]) -> Payload:
    """The stored JSON back as its struct; an event migrated from free text decodes as `Migrated`."""
    cls = Migrated if "old_kind" in data else PAYLOADS[kind]
    return msgspec.convert(data, cls)
