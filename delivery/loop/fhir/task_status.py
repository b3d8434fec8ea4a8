"""A referral's FHIR Task status, read from its timeline events (the guide's performer statuses).

A plain function over events: the Task is never stored with a status that could drift from what
happened. Statuses the performer sets, per the SDOH Clinical Care guide: accepted, rejected,
in-progress, on-hold, completed, failed, cancelled (never ready or received).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from delivery.loop.fhir.codes import BusinessStatus
from delivery.models import ConfirmationOutcome, EventKind, Outcome
from delivery.timeline import payloads
from delivery.timeline.events import Entry
from delivery.timeline.text import long_date

ATTEMPTS = {ConfirmationOutcome.no_answer: BusinessStatus.attempt_not_home,
            ConfirmationOutcome.wrong_address: BusinessStatus.attempt_bad_address,
            ConfirmationOutcome.refused: BusinessStatus.attempt_refused}
DECLINED = (Outcome.pickup, Outcome.not_eligible)


@dataclass(frozen=True)
class Delivery:
    """One delivery of the referral: a Procedure (its id is the stop's)."""

    stop_id: int
    at: dt.datetime
    boxes: int


@dataclass
class TaskState:
    status: str = "requested"
    business_status: BusinessStatus | None = None
    reason: str | None = None  # Task.statusReason.text
    deliveries: list[Delivery] = field(default_factory=list)
    last_updated: dt.datetime | None = None


def task_state(entries: list[Entry], *, today: dt.date, waitlist_note: str | None = None,
               waitlisted_is_rejected: bool = False) -> TaskState:
    """The Task's status after these events (oldest first). `waitlist_note` is the live place and
    expected wait, told while the referral waits. A waiting referral is accepted (businessStatus
    waitlisted), or, when the program chose the guide's strict capacity reading
    (`waitlisted_is_rejected`), rejected for no capacity; either way it is accepted once it comes
    off the waitlist."""
    def wait() -> None:
        note = waitlist_note or "On the waitlist."
        if waitlisted_is_rejected:
            _set(state, "rejected", None, f"No capacity: the program is full. {note}")
        else:
            _set(state, "accepted", BusinessStatus.waitlisted, note)

    state = TaskState()
    started = False  # a delivery was planned: a later refusal is a cancellation, not a rejection
    failures: list[str] = []
    before_pause: tuple[str, BusinessStatus | None, str | None] | None = None
    paused_until: dt.date | None = None
    for entry in entries:
        data, kind = entry.data, entry.kind
        state.last_updated = max(state.last_updated or entry.recorded_at, entry.recorded_at)
        if isinstance(data, payloads.OutcomeDecided | payloads.Override):
            outcome = data.outcome if isinstance(data, payloads.OutcomeDecided) else data.after
            if outcome in DECLINED:
                _set(state, "cancelled" if started else "rejected", None, data.reason)
            elif outcome == Outcome.waitlisted:
                wait()
            elif not started:
                _set(state, "accepted", None, None)
        elif kind is EventKind.waitlisted:
            wait()
        elif kind in (EventKind.order_created, EventKind.moved_off_waitlist) and not started:
            _set(state, "accepted", None, None)
        elif kind is EventKind.scheduled:
            started = True
            _set(state, "in-progress", BusinessStatus.scheduled, None)
        elif kind is EventKind.out_for_delivery:
            _set(state, "in-progress", BusinessStatus.out_for_delivery, None)
        elif isinstance(data, payloads.Delivered):
            failures.clear()
            state.deliveries.append(Delivery(data.stop_id, entry.at, data.boxes))
            done = (BusinessStatus.delivered if kind is EventKind.delivered
                    else BusinessStatus.delivered_left_at_door)
            _set(state, "in-progress", done, None)
        elif isinstance(data, payloads.AttemptFailed):
            failures.append(f"{data.reason.replace('_', ' ')} on {long_date(data.date)}")
            _set(state, "in-progress", ATTEMPTS.get(ConfirmationOutcome(data.reason),
                                                    BusinessStatus.attempt_other), None)
        elif isinstance(data, payloads.HeldForReview):
            # The food bank's own rule stopped deliveries after failed attempts: the Task has failed
            # (a coordinator who resumes them brings it back to in-progress with the next delivery).
            _set(state, "failed", state.business_status,
                 "Deliveries stopped after failed attempts: " + "; ".join(failures or data.reasons) + ".")
        elif kind is EventKind.rescheduled:
            state.business_status = BusinessStatus.rescheduled
        elif isinstance(data, payloads.Paused):
            if state.status != "on-hold":
                before_pause = (state.status, state.business_status, state.reason)
            paused_until = data.until
            _set(state, "on-hold", BusinessStatus.paused,
                 f"Deliveries paused until {long_date(data.until)}: {data.reason}")
        elif kind is EventKind.resumed and before_pause is not None:
            _set(state, *before_pause)
            before_pause = paused_until = None
        elif isinstance(data, payloads.Ended):
            ended = "completed" if state.deliveries else "failed" if failures else "cancelled"
            _set(state, ended, state.business_status, None if ended == "completed" else data.reason)
    if state.status == "on-hold" and paused_until is not None and paused_until < today and before_pause:
        _set(state, *before_pause)  # the pause ran out by itself
    return state


def _set(state: TaskState, status: str, business: BusinessStatus | None, reason: str | None) -> None:
    state.status, state.business_status, state.reason = status, business, reason
