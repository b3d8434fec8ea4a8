"""A referral's timeline is data: each change leaves an event of a closed kind with a typed payload
(before/after for changes), numbered per referral, with a thin outbox row in the same transaction."""

from __future__ import annotations

import datetime as dt
import threading
import time

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from delivery.models import EventKind, OutboxMessage, Outcome, Referral, ReferralEvent, User
from delivery.platform.db import Database
from delivery.program import orders
from delivery.referrals import intake, reviews
from delivery.referrals.schemas import AddressIn
from delivery.timeline import events as timeline
from delivery.timeline import payloads as p
from delivery.timeline import text
from tests.builders import Program
from tests.coordinator_builders import refer, set_capacity

TODAY = dt.date(2026, 11, 23)  # a Monday; the program delivers on Tuesdays
NOTE = "Knock twice, gate code 4321"


def last(db, referral_id: int) -> timeline.Entry:
    return timeline.history(db, referral_id)[-1]


def coordinator_id(db, program: Program) -> int:
    return db.scalar(select(User.id).where(User.email == program.coordinator))


def test_an_order_change_keeps_what_it_was_and_what_it_became(database: Database, program: Program) -> None:
    """More boxes on another weekday: one order_changed event with the terms before and after."""
    with database.writer() as db:
        first = refer(db, program, "C1", today=TODAY)
        orders.change_order(db, first.order, boxes=3, weekday=3, actor_id=None, today=TODAY)
        db.commit()
        event = last(db, first.referral.id)
    assert event.kind == EventKind.order_changed
    assert isinstance(event.data, p.OrderChanged) and event.data.order_id == first.order.id
    assert (event.data.before.boxes, event.data.before.weekday) == (1, 1)
    assert (event.data.after.boxes, event.data.after.weekday) == (3, 3)
    assert event.text == "Order changed: delivery day Tuesday → Thursday; boxes 1 → 3."


def test_an_override_and_a_priority_change_keep_before_and_after(database: Database,
                                                                 program: Program) -> None:
    """A coordinator's override names the outcome it replaced; a priority change its old priority."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        refer(db, program, "D1", today=TODAY)
        waiting = refer(db, program, "D2", today=TODAY)
        orders.change_priority(db, waiting.order, 2, actor_id=None, today=TODAY)
        who = coordinator_id(db, program)
        intake.override_outcome(db, waiting.referral, Outcome.pickup, "Prefers to pick up", who, today=TODAY)
        db.commit()
        kinds = [(e.kind, e.data) for e in timeline.history(db, waiting.referral.id)]
        override = last(db, waiting.referral.id)
    assert (EventKind.waitlisted, p.Waitlisted(order_id=waiting.order.id, position=1)) in kinds
    reprioritised = p.PriorityChanged(order_id=waiting.order.id, before=0, after=2)
    assert (EventKind.priority_changed, reprioritised) in kinds
    assert override.kind == EventKind.override and override.actor_id == who
    assert override.data == p.Override(before="waitlisted", after="pickup", reason="Prefers to pick up")
    assert override.text == "Outcome changed from waitlisted to pickup. Reason: Prefers to pick up"


def test_pause_resume_end_and_the_waitlist_tell_their_order(database: Database, program: Program) -> None:
    """Capacity 1: the second patient waits; a pause, its early end and the end of the first order are
    events naming the order, and the freed box moves the second patient off the waitlist."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        first = refer(db, program, "E1", today=TODAY)
        second = refer(db, program, "E2", today=TODAY)
        orders.pause_order(db, first.order, TODAY + dt.timedelta(days=20), "In hospital", None, today=TODAY)
        orders.resume_order(db, first.order, actor_id=None, today=TODAY)
        orders.end_order(db, first.order, "Moved away", None, today=TODAY)
        db.commit()
        mine = [(e.kind, e.data) for e in timeline.history(db, first.referral.id)][-3:]
        theirs = last(db, second.referral.id)
    order_id = first.order.id
    assert mine == [
        (EventKind.paused, p.Paused(order_id=order_id, until=dt.date(2026, 12, 13), reason="In hospital")),
        (EventKind.resumed, p.Resumed(order_id=order_id, was_until=dt.date(2026, 12, 13),
                                      first_delivery=dt.date(2026, 11, 24))),
        (EventKind.ended, p.Ended(order_id=order_id, reason="Moved away"))]
    assert theirs.kind == EventKind.moved_off_waitlist
    assert theirs.data == p.MovedOffWaitlist(order_id=second.order.id, first_delivery=dt.date(2026, 11, 24))


def test_an_address_change_keeps_the_old_and_the_new_address(database: Database, program: Program) -> None:
    with database.writer() as db:
        first = refer(db, program, "F1", today=TODAY)
        new = AddressIn(line1="55 Elm St", city="Oakland", state="CA", postal_code="94601")
        reviews.correct_address(db, first.referral.patient, new, actor_id=coordinator_id(db, program))
        db.commit()
        event = last(db, first.referral.id)
    assert event.kind == EventKind.address_changed
    assert event.data == p.AddressChanged(patient_id=first.referral.patient_id,
                                          before="1234 98th Ave 3B, Oakland, CA 94603",
                                          after="55 Elm St, Oakland, CA 94601", point="locating")


def test_each_referral_numbers_its_own_events_from_one(database: Database, program: Program) -> None:
    with database.writer() as db:
        first = refer(db, program, "G1", today=TODAY)
        second = refer(db, program, "G2", today=TODAY)
        orders.change_order(db, first.order, boxes=2, actor_id=None, today=TODAY)
        db.commit()
        numbers = {r: [e.sequence for e in timeline.history(db, r)]
                   for r in (first.referral.id, second.referral.id)}
    assert numbers == {first.referral.id: [1, 2, 3, 4], second.referral.id: [1, 2, 3]}


def test_a_payload_must_be_the_one_of_its_kind(database: Database, program: Program) -> None:
    """A mismatched payload is a programming error caught before anything is written."""
    with database.writer() as db:
        first = refer(db, program, "H1", today=TODAY)
        before = db.scalar(select(func.count(ReferralEvent.id)))
        with pytest.raises(TypeError, match="a paused event carries Paused, not Ended"):
            timeline.record(db, first.referral, EventKind.paused, p.Ended(reason="x"))
        with pytest.raises(TypeError, match="only from migrating"):
            timeline.record(db, first.referral, EventKind.legacy, p.Migrated(old_kind="x", message="y"))
        assert db.scalar(select(func.count(ReferralEvent.id))) == before


def test_the_database_refuses_a_kind_outside_the_closed_set(database: Database, program: Program) -> None:
    with database.writer() as db:
        first = refer(db, program, "I1", today=TODAY)
        db.add(ReferralEvent(referral_id=first.referral.id, sequence=99, kind="sent_a_postcard", data={}))
        with pytest.raises(IntegrityError):
            db.flush()


def test_event_and_outbox_row_commit_or_roll_back_together(database: Database, program: Program) -> None:
    """A failure after the event is inserted (here a clashing sequence) rolls back the change, the
    event and its outbox row; a commit keeps exactly one outbox row per event."""
    with database.writer() as db:
        first = refer(db, program, "J1", today=TODAY)
        db.commit()
        order_id, referral_id = first.order.id, first.referral.id
    with database.writer() as db:
        order = db.get(type(first.order), order_id)
        orders.change_order(db, order, boxes=2, actor_id=None, today=TODAY)
        assert db.scalar(select(func.count(OutboxMessage.id))) == 4  # flushed with its event
        db.add(ReferralEvent(referral_id=referral_id, sequence=1, kind=EventKind.received, data={}))
        with pytest.raises(IntegrityError):
            db.flush()
        db.rollback()
    with database.reader() as db:
        kinds = db.scalars(select(ReferralEvent.kind).where(ReferralEvent.referral_id == referral_id)).all()
        assert EventKind.order_changed not in kinds
        assert db.scalar(select(func.count(OutboxMessage.id))) == len(kinds) == 3
        assert db.get(type(first.order), order_id).boxes == 1  # type: ignore[union-attr]
        told = db.execute(select(OutboxMessage.event_id, ReferralEvent.id)
                          .join(ReferralEvent, ReferralEvent.id == OutboxMessage.event_id)).all()
        assert len(told) == 3


def test_outbox_messages_are_thin_and_carry_status_and_sequence(database: Database, program: Program) -> None:
    """R9.5's shape: every message is the webhook body with ids, kind, time, status and sequence;
    no name, MRN, address, phone, note or reason ever appears in it."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        first = refer(db, program, "K1", today=TODAY, note=NOTE)
        second = refer(db, program, "K2", today=TODAY)
        orders.pause_order(db, first.order, TODAY + dt.timedelta(days=8), "In hospital", None, today=TODAY)
        orders.end_order(db, first.order, "Moved to Fresno", None, today=TODAY)
        db.commit()
        messages = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        events = {e.id: e for e in db.scalars(select(ReferralEvent))}
        patients = [db.get(Referral, r).patient for r in (first.referral.id, second.referral.id)]
    assert len(messages) == len(events) and {m.event_id for m in messages} == set(events)
    assert len({m.webhook_id for m in messages}) == len(messages)
    assert all(m.webhook_id.startswith("msg_") and m.state == "pending" and m.attempts == 0 for m in messages)
    for message in messages:
        event = events[message.event_id]
        assert set(message.payload) == {"type", "timestamp", "data"}
        assert message.payload["type"] == message.kind == event.kind
        data = message.payload["data"]
        assert set(data) <= {"referral_id", "order_id", "stop_id", "status", "sequence"}
        assert (data["referral_id"], data["sequence"]) == (event.referral_id, event.sequence)
        assert message.clinic_id == program.clinic1_id
        said = msgspec.json.encode(message.payload).decode()
        for patient in patients:
            for secret in (patient.given_name, patient.family_name, patient.mrn, patient.address_line1,
                           patient.phone, NOTE, "In hospital", "Fresno"):
                assert secret not in said
    ended = next(m for m in messages if m.kind == "ended")
    assert ended.payload["data"] == {"referral_id": first.referral.id, "order_id": first.order.id,
                                     "status": "closed", "sequence": ended.payload["data"]["sequence"]}


SAMPLES: dict[EventKind, p.Payload] = {
    EventKind.received: p.Received(clinic_id=1, clinic_name="Fruitvale Clinic", source="web", note="Call"),
    EventKind.outcome: p.OutcomeDecided(outcome="pickup", reason="Pick up at the depot."),
    EventKind.override: p.Override(before="pickup", after="home_delivery", reason="Cannot carry", order_id=4),
    EventKind.waitlisted: p.Waitlisted(order_id=4, position=3),
    EventKind.moved_off_waitlist: p.MovedOffWaitlist(order_id=4, first_delivery=dt.date(2026, 12, 1)),
    EventKind.order_created: p.OrderCreated(
        order_id=4, terms=p.OrderTerms(weekday=1, boxes=2, box_type="standard", cadence="weekly"),
        first_delivery=dt.date(2026, 12, 1)),
    EventKind.order_changed: p.OrderChanged(
        order_id=4, before=p.OrderTerms(weekday=1, boxes=2, box_type="standard", cadence="weekly"),
        after=p.OrderTerms(weekday=1, boxes=2, box_type="low_sodium", cadence="weekly",
                           window_start=dt.time(9), window_end=dt.time(12))),
    EventKind.priority_changed: p.PriorityChanged(order_id=4, before=0, after=1),
    EventKind.paused: p.Paused(order_id=4, until=dt.date(2026, 12, 20), reason="Travelling"),
    EventKind.resumed: p.Resumed(order_id=4, was_until=dt.date(2026, 12, 20), first_delivery=None),
    EventKind.ended: p.Ended(reason="Moved away"),
    EventKind.scheduled: p.StopPlanned(order_id=4, stop_id=9, plan_id=2, date=dt.date(2026, 12, 1)),
    EventKind.out_for_delivery: p.StopPlanned(order_id=4, stop_id=9, plan_id=2, date=dt.date(2026, 12, 1),
                                              route_id=5),
    EventKind.delivered: p.Delivered(order_id=4, stop_id=9, plan_id=2, confirmation_id=7,
                                     date=dt.date(2026, 12, 1), boxes=1),
    EventKind.left_at_door: p.Delivered(order_id=4, stop_id=9, plan_id=2, confirmation_id=7,
                                        date=dt.date(2026, 12, 1), boxes=2),
    EventKind.attempt_failed: p.AttemptFailed(order_id=4, stop_id=9, plan_id=2, confirmation_id=7,
                                              date=dt.date(2026, 12, 1), reason="wrong_address"),
    EventKind.confirmation_undone: p.ConfirmationUndone(order_id=4, stop_id=9, plan_id=2, confirmation_id=7,
                                                        date=dt.date(2026, 12, 1), outcome="left_at_door"),
    EventKind.rescheduled: p.Rescheduled(order_id=4, from_date=dt.date(2026, 12, 1),
                                         to_date=dt.date(2026, 12, 8)),
    EventKind.stop_removed: p.StopRemoved(order_id=4, stop_id=9, plan_id=2, date=dt.date(2026, 12, 1),
                                          reason="In hospital"),
    EventKind.receipt_confirmed: p.Receipt(),
    EventKind.receipt_denied: p.Receipt(note="Box was damaged"),
    EventKind.address_changed: p.AddressChanged(patient_id=3, before="1 A St", after="2 B St", point="kept"),
    EventKind.patient_corrected: p.PatientCorrected(patient_id=3, source="csv", changes=(
        p.FieldChange(field="access_notes", before=None, after="gate 12"),
        p.FieldChange(field="address", before="1 A St", after="2 B St", applied=False))),
    EventKind.review_resolved: p.ReviewResolved(review_item_id=6, review_kind="geocode_failed",
                                                resolution="Point set by hand."),
    EventKind.duplicate_checked: p.DuplicateChecked(other_referral_id=8),
    EventKind.held_for_review: p.HeldForReview(order_id=3, review_item_id=9,
                                               reasons=["no_answer", "refused"]),
    EventKind.need_raised: p.NeedRaised(need_id=5, source="web", kinds=["rent_utilities", "ride"]),
    EventKind.need_referred_on: p.NeedUpdated(need_id=5, before="open", after="referred_on",
                                              note="Sent to the housing desk"),
    EventKind.need_resolved: p.NeedUpdated(need_id=5, before="referred_on", after="resolved"),
    EventKind.benefits_flagged: p.BenefitsFlagged(case_id=2, snap_enrolled="no"),
    EventKind.benefits_contacted: p.BenefitsStepTaken(case_id=2, before="flagged", on=dt.date(2026, 12, 1)),
    EventKind.benefits_applied: p.BenefitsStepTaken(case_id=2, before="contacted", on=dt.date(2026, 12, 1)),
    EventKind.benefits_enrolled: p.BenefitsStepTaken(case_id=2, before="applied", on=dt.date(2026, 12, 1)),
    EventKind.benefits_declined: p.BenefitsStepTaken(case_id=2, before="flagged", on=dt.date(2026, 12, 1)),
    EventKind.legacy: p.Migrated(old_kind="postcard_sent", message="A postcard was sent."),
}
SENTENCES = {
    EventKind.received: "Referred by Fruitvale Clinic (web). Note: Call",
    EventKind.outcome: "Pick up at the depot.",
    EventKind.override: "Outcome changed from pickup to home_delivery. Reason: Cannot carry",
    EventKind.waitlisted: "Waitlisted at position 3.",
    EventKind.moved_off_waitlist: "Capacity freed: moved off the waitlist; first delivery Tue 01 Dec 2026.",
    EventKind.order_created: "2 standard box(es), weekly, first delivery Tue 01 Dec 2026.",
    EventKind.order_changed: "Order changed: box type standard → low sodium; "
                             "time window any time → 09:00–12:00.",
    EventKind.priority_changed: "Priority normal → high.",
    EventKind.paused: "Deliveries paused through Sun 20 Dec 2026. Reason: Travelling",
    EventKind.resumed: "Pause ended early (it was through Sun 20 Dec 2026).",
    EventKind.ended: "Referral closed. Reason: Moved away",
    EventKind.scheduled: "Scheduled for delivery on Tue 01 Dec 2026.",
    EventKind.out_for_delivery: "Out for delivery on Tue 01 Dec 2026.",
    EventKind.delivered: "Delivered 1 box on Tue 1 Dec",
    EventKind.left_at_door: "Delivered 2 boxes on Tue 1 Dec (left at the door)",
    EventKind.attempt_failed: "Delivery attempt failed: wrong address",
    EventKind.confirmation_undone: 'The driver withdrew "left at door" for Tue 1 Dec: the stop is open again',
    EventKind.rescheduled: "Delivery moved from Tue 01 Dec 2026 to Tue 08 Dec 2026.",
    EventKind.stop_removed: "Taken off the delivery of Tue 01 Dec 2026. Reason: In hospital",
    EventKind.receipt_confirmed: "The clinic confirmed the patient received the food.",
    EventKind.receipt_denied: "The clinic reported the patient did not receive the food (Box was damaged).",
    EventKind.address_changed: "Address changed from 1 A St to 2 B St; the point on the map stays "
                               "(only the unit changed).",
    EventKind.patient_corrected: "Patient details corrected by a re-sent referral (csv): access notes "
                                 "(none) → gate 12; address 1 A St → 2 B St (proposed for review).",
    EventKind.review_resolved: "Review: Point set by hand.",
    EventKind.duplicate_checked: "A coordinator found referral #8 is the same person; it was ended.",
    EventKind.held_for_review: ("Deliveries on hold after 2 failed attempts in a row (no answer, refused). "
                                "A coordinator will follow up."),
    EventKind.need_raised: "The patient named a need besides food (web): rent or utilities, a ride to "
                           "appointments.",
    EventKind.need_referred_on: "Need #5 referred on (Sent to the housing desk).",
    EventKind.need_resolved: "Need #5 resolved.",
    EventKind.benefits_flagged: ("Flagged for help enrolling in SNAP/CalFresh (enrolled now: no): on the "
                                 "benefits-enrollment worklist."),
    EventKind.benefits_contacted: "SNAP/CalFresh enrollment: patient contacted on Tue 01 Dec 2026.",
    EventKind.benefits_applied: "SNAP/CalFresh enrollment: applied on Tue 01 Dec 2026.",
    EventKind.benefits_enrolled: "SNAP/CalFresh enrollment: enrolled on Tue 01 Dec 2026.",
    EventKind.benefits_declined: "SNAP/CalFresh enrollment: the patient declined on Tue 01 Dec 2026.",
    EventKind.legacy: "A postcard was sent.",
}


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_kind_has_a_payload_that_round_trips_and_a_sentence(kind: EventKind) -> None:
    sample = SAMPLES[kind]
    assert type(sample) is p.PAYLOADS[kind]
    stored = msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(sample)))  # as the JSON column
    assert p.decode(kind, stored) == sample
    assert text.render(kind, sample) == SENTENCES[kind]


def test_concurrent_writers_to_one_referral_get_consecutive_sequences(database: Database,
                                                                      program: Program) -> None:
    """Two transactions record an event on one referral at once: the second waits for the first
    (the referral's row lock on PostgreSQL, the single writer on SQLite) and numbers after it."""
    with database.writer() as db:
        first = refer(db, program, "L1", today=TODAY)
        db.commit()
        referral_id = first.referral.id
    recorded, release, sequences = threading.Event(), threading.Event(), []

    def writer(reason: str, hold: bool) -> None:
        with database.writer() as db:
            referral = db.get(Referral, referral_id)
            assert referral is not None
            event = timeline.record(db, referral, EventKind.ended, p.Ended(reason=reason))
            sequences.append((reason, event.sequence))
            if hold:
                recorded.set()
                release.wait(10)
            db.commit()

    slow = threading.Thread(target=writer, args=("first", True))
    slow.start()
    assert recorded.wait(10)
    fast = threading.Thread(target=writer, args=("second", False))
    fast.start()
    time.sleep(0.5)  # the second writer is now waiting for the first transaction
    assert sequences == [("first", 4)]
    release.set()
    slow.join(10)
    fast.join(10)
    assert sequences == [("first", 4), ("second", 5)]
    with database.reader() as db:
        assert [e.sequence for e in timeline.history(db, referral_id)] == [1, 2, 3, 4, 5]
