"""The sentence a person reads for an event, rendered from its kind and payload at display time.

One small function per kind, each a single English template filled from the payload, so a
translation (Babel's gettext) can later wrap each template without touching stored events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from delivery.models import EventKind, NeedKind
from delivery.timeline import payloads as p

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PRIORITIES = {0: "normal", 1: "high", 2: "urgent"}
NEED_LABELS = {NeedKind.rent_utilities: "rent or utilities",
               NeedKind.fridge_stove: "a working fridge or stove",
               NeedKind.ride: "a ride to appointments",
               NeedKind.food_benefits: "help enrolling in food benefits",
               NeedKind.someone_to_talk_to: "someone to talk to",
               NeedKind.other: "something else"}
"""The quick picks of "what else do you need?", as the form and the worklist say them."""
POINT = {"kept": "the point on the map stays (only the unit changed).",
         "placed": "placed on the map by hand.",
         "locating": "it is being located on the map again."}


def render(kind: EventKind, data: p.Payload) -> str:
    """The sentence for one event (an event migrated from free text keeps its old sentence)."""
    if isinstance(data, p.Migrated):
        return data.message
    return _SENTENCES[kind](data)  # type: ignore[arg-type]


def long_date(day: dt.date) -> str:
    return f"{day:%a %d %b %Y}"


def window_text(start: dt.time | None, end: dt.time | None) -> str:
    return f"{start:%H:%M}–{end:%H:%M}" if start and end else "any time"


def short_date(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def _with_note(sentence: str, note: str | None) -> str:
    return f"{sentence} ({note})" if note else sentence


def _received(d: p.Received) -> str:
    note = f" Note: {d.note}" if d.note else ""
    return f"Referred by {d.clinic_name} ({d.source}).{note}"


def _outcome(d: p.OutcomeDecided) -> str:
    return d.reason


def _override(d: p.Override) -> str:
    return f"Outcome changed from {d.before} to {d.after}. Reason: {d.reason}"


def _waitlisted(d: p.Waitlisted) -> str:
    held = d.allocation_used
    if held is None:
        return f"Waitlisted at position {d.position}."
    unit = "boxes" if held.unit == "boxes" else "new patients"
    lent = "; no unused allocation of another clinic was left to lend" if held.lending else ""
    return (f"Waitlisted at position {d.position}: the clinic's allocation this week is used "
            f"({held.used} of {held.allocation} {unit}){lent}, though the program has room.")


def _moved_off_waitlist(d: p.MovedOffWaitlist) -> str:
    why = "The clinic's allocation for a new week" if d.allocation else "Capacity freed"
    return f"{why}: moved off the waitlist; first delivery {long_date(d.first_delivery)}."


def _order_created(d: p.OrderCreated) -> str:
    t = d.terms
    return f"{t.boxes} {t.box_type} box(es), {t.cadence}, first delivery {long_date(d.first_delivery)}."


def _order_changed(d: p.OrderChanged) -> str:
    before, after = d.before, d.after
    changes = []
    if before.weekday != after.weekday:
        changes.append(f"delivery day {WEEKDAYS[before.weekday]} → {WEEKDAYS[after.weekday]}")
    if before.boxes != after.boxes:
        changes.append(f"boxes {before.boxes} → {after.boxes}")
    if before.box_type != after.box_type:
        changes.append(f"box type {before.box_type} → {after.box_type}".replace("_", " "))
    if before.cadence != after.cadence:
        changes.append(f"cadence {before.cadence} → {after.cadence}")
    if (before.window_start, before.window_end) != (after.window_start, after.window_end):
        changes.append(f"time window {window_text(before.window_start, before.window_end)} → "
                       f"{window_text(after.window_start, after.window_end)}")
    return "Order changed: " + "; ".join(changes) + "."


def _priority_changed(d: p.PriorityChanged) -> str:
    return f"Priority {PRIORITIES[d.before]} → {PRIORITIES[d.after]}."


def _paused(d: p.Paused) -> str:
    return f"Deliveries paused through {long_date(d.until)}. Reason: {d.reason}"


def _resumed(d: p.Resumed) -> str:
    when = f"; next delivery {long_date(d.first_delivery)}" if d.first_delivery else ""
    return f"Pause ended early (it was through {long_date(d.was_until)}){when}."


def _ended(d: p.Ended) -> str:
    if d.order_id is None:
        return f"Referral closed. Reason: {d.reason}"
    return f"Deliveries ended. Reason: {d.reason}"


def _scheduled(d: p.StopPlanned) -> str:
    return f"Scheduled for delivery on {long_date(d.date)}."


def _out_for_delivery(d: p.StopPlanned) -> str:
    return f"Out for delivery on {long_date(d.date)}."


def _boxes(n: int) -> str:
    return f"{n} box{'es' if n != 1 else ''}"


def _delivered(d: p.Delivered) -> str:
    return f"Delivered {_boxes(d.boxes)} on {short_date(d.date)}"


def _left_at_door(d: p.Delivered) -> str:
    return f"Delivered {_boxes(d.boxes)} on {short_date(d.date)} (left at the door)"


def _attempt_failed(d: p.AttemptFailed) -> str:
    return _with_note(f"Delivery attempt failed: {d.reason.replace('_', ' ')}", d.note)


def _confirmation_undone(d: p.ConfirmationUndone) -> str:
    withdrawn = d.outcome.replace("_", " ")
    return f"The driver withdrew \"{withdrawn}\" for {short_date(d.date)}: the stop is open again"


def _rescheduled(d: p.Rescheduled) -> str:
    return f"Delivery moved from {long_date(d.from_date)} to {long_date(d.to_date)}."


def _stop_removed(d: p.StopRemoved) -> str:
    return f"Taken off the delivery of {long_date(d.date)}. Reason: {d.reason}"


def _receipt_confirmed(d: p.Receipt) -> str:
    return _with_note("The clinic confirmed the patient received the food", d.note) + "."


def _receipt_denied(d: p.Receipt) -> str:
    return _with_note("The clinic reported the patient did not receive the food", d.note) + "."


def _address_changed(d: p.AddressChanged) -> str:
    # The clinic (a re-sent referral), a coordinator or a review changed it: the actor says who.
    if d.before == d.after:
        return f"Point on the map for {d.after}: {POINT.get(d.point, d.point)}"
    return f"Address changed from {d.before} to {d.after}; {POINT.get(d.point, d.point)}"


def change_text(c: p.FieldChange) -> str:
    """One changed detail, before → after ("floor 3 → 5")."""
    said = f"{c.field.replace('_', ' ')} {c.before or '(none)'} → {c.after or '(none)'}"
    return said if c.applied else f"{said} (proposed for review)"


def _patient_corrected(d: p.PatientCorrected) -> str:
    return (f"Patient details corrected by a re-sent referral ({d.source}): "
            + "; ".join(change_text(c) for c in d.changes) + ".")


def _review_resolved(d: p.ReviewResolved) -> str:
    return f"Review: {d.resolution}"


def _duplicate_checked(d: p.DuplicateChecked) -> str:
    return f"A coordinator found referral #{d.other_referral_id} is the same person; it was ended."


def _held_for_review(d: p.HeldForReview) -> str:
    reasons = ", ".join(r.replace("_", " ") for r in d.reasons)
    if d.reasons and d.reasons[-1] == "wrong_address":
        return (f"Deliveries on hold: the driver found the address wrong ({reasons}). "
                "A coordinator is checking it.")
    return (f"Deliveries on hold after {len(d.reasons)} failed attempts in a row ({reasons}). "
            "A coordinator will follow up.")


def needs_text(kinds: list[str]) -> str:
    """The picks in words ("rent or utilities, a ride to appointments")."""
    return ", ".join(NEED_LABELS.get(k, k.replace("_", " ")) for k in kinds) or "in their own words"


def _need_raised(d: p.NeedRaised) -> str:
    if d.source == "driver":
        return f"A driver noted a need at the door: {needs_text(d.kinds)}. It is on the clinic's needs list."
    return f"The patient named a need besides food ({d.source}): {needs_text(d.kinds)}."


def _need_referred_on(d: p.NeedUpdated) -> str:
    return _with_note(f"Need #{d.need_id} referred on", d.note) + "."


def _need_resolved(d: p.NeedUpdated) -> str:
    return _with_note(f"Need #{d.need_id} resolved", d.note) + "."


def _benefits_flagged(d: p.BenefitsFlagged) -> str:
    return (f"Flagged for help enrolling in SNAP/CalFresh (enrolled now: {d.snap_enrolled}): "
            "on the benefits-enrollment worklist.")


def _benefits_step(step: str) -> Callable[[p.BenefitsStepTaken], str]:
    def sentence(d: p.BenefitsStepTaken) -> str:
        return f"SNAP/CalFresh enrollment: {step} on {long_date(d.on)}."
    return sentence


def _legacy(d: p.Migrated) -> str:
    return d.message


_SENTENCES: dict[EventKind, Callable[..., str]] = {
    EventKind.received: _received,
    EventKind.outcome: _outcome,
    EventKind.override: _override,
    EventKind.waitlisted: _waitlisted,
    EventKind.moved_off_waitlist: _moved_off_waitlist,
    EventKind.order_created: _order_created,
    EventKind.order_changed: _order_changed,
    EventKind.priority_changed: _priority_changed,
    EventKind.paused: _paused,
    EventKind.resumed: _resumed,
    EventKind.ended: _ended,
    EventKind.scheduled: _scheduled,
    EventKind.out_for_delivery: _out_for_delivery,
    EventKind.delivered: _delivered,
    EventKind.left_at_door: _left_at_door,
    EventKind.attempt_failed: _attempt_failed,
    EventKind.confirmation_undone: _confirmation_undone,
    EventKind.rescheduled: _rescheduled,
    EventKind.stop_removed: _stop_removed,
    EventKind.receipt_confirmed: _receipt_confirmed,
    EventKind.receipt_denied: _receipt_denied,
    EventKind.address_changed: _address_changed,
    EventKind.patient_corrected: _patient_corrected,
    EventKind.review_resolved: _review_resolved,
    EventKind.duplicate_checked: _duplicate_checked,
    EventKind.held_for_review: _held_for_review,
    EventKind.need_raised: _need_raised,
    EventKind.need_referred_on: _need_referred_on,
    EventKind.need_resolved: _need_resolved,
    EventKind.benefits_flagged: _benefits_flagged,
    EventKind.benefits_contacted: _benefits_step("patient contacted"),
    EventKind.benefits_applied: _benefits_step("applied"),
    EventKind.benefits_enrolled: _benefits_step("enrolled"),
    EventKind.benefits_declined: _benefits_step("the patient declined"),
    EventKind.legacy: _legacy,
}
