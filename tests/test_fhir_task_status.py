"""A Task's status is read from the referral's timeline: each event kind moves it as the guide says."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from delivery.loop.fhir.codes import FORBIDDEN_STATUSES, PERFORMER_STATUSES
from delivery.loop.fhir.task_status import task_state
from delivery.models import EventKind
from delivery.timeline import payloads as p
from delivery.timeline.events import Entry

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)
DAY = dt.date(2026, 12, 8)
TODAY = dt.date(2026, 12, 2)
STOP = {"order_id": 1, "plan_id": 1, "date": DAY}


def entries(*events: tuple[EventKind, p.Payload]) -> list[Entry]:
    times = [T0 + dt.timedelta(hours=n) for n in range(len(events))]
    return [Entry(sequence=n + 1, kind=kind, at=times[n], recorded_at=times[n], actor_id=None, data=data,
                  text="") for n, (kind, data) in enumerate(events)]


ACCEPTED = [(EventKind.received, p.Received(clinic_id=2, clinic_name="Clinic", source="fhir")),
            (EventKind.order_created, p.OrderCreated(order_id=1, terms=p.OrderTerms(
                weekday=1, boxes=1, box_type="standard", cadence="weekly"), first_delivery=DAY)),
            (EventKind.outcome, p.OutcomeDecided(outcome="home_delivery", reason="Food insecure."))]
SCHEDULED = (EventKind.scheduled, p.StopPlanned(stop_id=7, **STOP))


def delivered(stop_id: int) -> tuple[EventKind, p.Payload]:
    return EventKind.delivered, p.Delivered(stop_id=stop_id, confirmation_id=stop_id, boxes=1, **STOP)


def failed(stop_id: int, reason: str = "no_answer") -> tuple[EventKind, p.Payload]:
    return EventKind.attempt_failed, p.AttemptFailed(stop_id=stop_id, confirmation_id=stop_id, reason=reason,
                                                     **STOP)


def test_an_order_is_accepted_and_a_planned_stop_is_in_progress() -> None:
    assert task_state(entries(*ACCEPTED), today=TODAY).status == "accepted"
    state = task_state(entries(*ACCEPTED, SCHEDULED), today=TODAY)
    assert (state.status, state.business_status) == ("in-progress", "scheduled")


def test_out_for_delivery_stays_in_progress_until_the_door() -> None:
    out = (EventKind.out_for_delivery, p.StopPlanned(stop_id=7, **STOP))
    state = task_state(entries(*ACCEPTED, SCHEDULED, out), today=TODAY)
    assert (state.status, state.business_status) == ("in-progress", "out-for-delivery")
    done = task_state(entries(*ACCEPTED, SCHEDULED, out, delivered(7)), today=TODAY)
    assert (done.status, done.business_status) == ("in-progress", "delivered")


def test_each_delivery_is_an_output_and_an_ending_after_deliveries_completes() -> None:
    state = task_state(entries(*ACCEPTED, SCHEDULED, delivered(7), delivered(8),
                               (EventKind.ended, p.Ended(order_id=1, reason="Six months served."))),
                       today=TODAY)
    assert state.status == "completed" and state.reason is None
    assert [d.stop_id for d in state.deliveries] == [7, 8]
    assert state.last_updated == T0 + dt.timedelta(hours=6)


HELD = (EventKind.held_for_review, p.HeldForReview(order_id=1, review_item_id=3,
                                                   reasons=["no_answer", "refused", "unsafe"]))


def test_failed_attempts_name_what_happened_and_deliveries_held_for_review_fail_the_task() -> None:
    one = task_state(entries(*ACCEPTED, SCHEDULED, failed(7, "wrong_address")), today=TODAY)
    assert (one.status, one.business_status) == ("in-progress", "attempt-bad-address")
    three = task_state(entries(*ACCEPTED, failed(7), failed(8, "refused"), failed(9, "unsafe")), today=TODAY)
    assert (three.status, three.business_status) == ("in-progress", "attempt-other")
    held = task_state(entries(*ACCEPTED, failed(7), failed(8, "refused"), failed(9, "unsafe"), HELD),
                      today=TODAY)
    assert (held.status, held.business_status) == ("failed", "attempt-other")
    assert held.reason.startswith("Deliveries stopped after failed attempts: no answer on Tue 08 Dec 2026;")
    recovered = task_state(entries(*ACCEPTED, failed(7), HELD, delivered(9), failed(10)), today=TODAY)
    assert (recovered.status, recovered.business_status) == ("in-progress", "attempt-not-home")


def test_a_pause_is_on_hold_until_resumed_or_over() -> None:
    pause = (EventKind.paused, p.Paused(order_id=1, until=dt.date(2026, 12, 20), reason="In hospital"))
    held = task_state(entries(*ACCEPTED, SCHEDULED, pause), today=TODAY)
    assert (held.status, held.business_status) == ("on-hold", "paused")
    assert held.reason == "Deliveries paused until Sun 20 Dec 2026: In hospital"
    resumed = task_state(entries(*ACCEPTED, SCHEDULED, pause, (EventKind.resumed, p.Resumed(
        order_id=1, was_until=dt.date(2026, 12, 20), first_delivery=DAY))), today=TODAY)
    assert (resumed.status, resumed.business_status) == ("in-progress", "scheduled")
    over = task_state(entries(*ACCEPTED, SCHEDULED, pause), today=dt.date(2026, 12, 21))
    assert over.status == "in-progress"


def test_declined_before_service_is_rejected_and_after_it_cancelled() -> None:
    decided = (EventKind.outcome, p.OutcomeDecided(outcome="pickup", reason="Nearest pick-up: the depot."))
    rejected = task_state(entries(ACCEPTED[0], decided), today=TODAY)
    assert (rejected.status, rejected.reason) == ("rejected", "Nearest pick-up: the depot.")
    override = (EventKind.override,
                p.Override(before="home_delivery", after="not_eligible", reason="Moved away"))
    assert task_state(entries(*ACCEPTED, SCHEDULED, override), today=TODAY).status == "cancelled"
    ended = (EventKind.ended, p.Ended(order_id=1, reason="Cancelled by Clinic through FHIR: moved"))
    cancelled = task_state(entries(*ACCEPTED, ended), today=TODAY)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "Cancelled by Clinic through FHIR: moved")


def test_waitlisted_is_accepted_with_the_live_place() -> None:
    waiting = [ACCEPTED[0], (EventKind.waitlisted, p.Waitlisted(order_id=1, position=4)),
               (EventKind.outcome, p.OutcomeDecided(outcome="waitlisted", reason="Full."))]
    state = task_state(entries(*waiting), today=TODAY, waitlist_note="On the waitlist at position 2.")
    assert (state.status, state.business_status, state.reason) == (
        "accepted", "waitlisted", "On the waitlist at position 2.")
    moved = (EventKind.moved_off_waitlist, p.MovedOffWaitlist(order_id=1, first_delivery=DAY))
    assert task_state(entries(*waiting, moved), today=TODAY).business_status is None


def test_a_program_that_reads_capacity_strictly_rejects_while_the_referral_waits() -> None:
    waiting = [ACCEPTED[0], (EventKind.waitlisted, p.Waitlisted(order_id=1, position=4)),
               (EventKind.outcome, p.OutcomeDecided(outcome="waitlisted", reason="Full."))]
    state = task_state(entries(*waiting), today=TODAY, waitlist_note="On the waitlist at position 2.",
                       waitlisted_is_rejected=True)
    assert (state.status, state.business_status, state.reason) == (
        "rejected", None, "No capacity: the program is full. On the waitlist at position 2.")
    moved = (EventKind.moved_off_waitlist, p.MovedOffWaitlist(order_id=1, first_delivery=DAY))
    room = task_state(entries(*waiting, moved), today=TODAY, waitlisted_is_rejected=True)
    assert (room.status, room.reason) == ("accepted", None)


EVENTS = [*ACCEPTED, SCHEDULED, delivered(7), failed(8), failed(9, "refused"),
          (EventKind.out_for_delivery, p.StopPlanned(stop_id=9, **STOP)),
          (EventKind.paused, p.Paused(order_id=1, until=DAY, reason="Away")),
          (EventKind.resumed, p.Resumed(order_id=1, was_until=DAY, first_delivery=DAY)),
          (EventKind.rescheduled, p.Rescheduled(order_id=1, from_date=DAY, to_date=DAY)),
          (EventKind.ended, p.Ended(order_id=1, reason="Ended")),
          (EventKind.waitlisted, p.Waitlisted(order_id=1, position=1)), HELD]


@given(st.lists(st.sampled_from(EVENTS), max_size=12), st.dates(dt.date(2026, 1, 1), dt.date(2027, 12, 31)))
def test_any_history_gives_a_status_the_guide_allows(history, today) -> None:  # type: ignore[no-untyped-def]
    """Never ready or received; a rejected, cancelled, on-hold or failed Task always says why."""
    state = task_state(entries(*history), today=today)
    assert state.status in PERFORMER_STATUSES | {"requested"}
    assert state.status not in FORBIDDEN_STATUSES
    if state.status in ("rejected", "cancelled", "on-hold", "failed"):
        assert state.reason
