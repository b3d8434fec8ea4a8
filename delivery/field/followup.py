"""What happens by itself after a couldn't-deliver: reschedule, or stop and ask a person.

- A failed attempt is retried on the next delivery day with room for it (a one-off stop carried
  from the failed one, `Stop.carried_from_id`), and the timeline says so (`rescheduled`).
- After the program's number of failed attempts in a row (`Organization.max_failed_attempts`,
  default 2), or at once when the driver reports a wrong address, the order stops: it is held
  (paused with no end date), put on the coordinators' review list with the reasons, and the
  clinic is told through the timeline (`held_for_review`, which its webhooks carry too).
Plain rules first (`consecutive_failures`, `next_day_with_room`), the writes after.

The confirmation only queues a `followup` job (`enqueue`, in its own transaction, one per stop):
refreshing the target day's stops holds the writer for the whole program, which the driver's
tap must not wait on. The worker runs `after_attempt` in a transaction of its own; running it again
for a stop already followed up (held, retry carried, confirmation undone) changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.models import (
    ConfirmationOutcome,
    EventKind,
    Order,
    OrderStatus,
    Organization,
    Plan,
    Referral,
    ReviewItem,
    ReviewKind,
    Stop,
    StopStatus,
)
from delivery.plans import day
from delivery.platform import jobs
from delivery.program import waitlist
from delivery.program.scheduling import is_due, next_weekday
from delivery.timeline import events as timeline
from delivery.timeline import payloads

LOOK_AHEAD_DAYS = 3  # delivery days tried for room before a person has to decide
KIND = "followup"


def consecutive_failures(outcomes_newest_first: Sequence[str | None]) -> list[str]:
    """The failed outcomes since the last delivery, oldest first (an unconfirmed stop is skipped)."""
    failed = []
    for outcome in outcomes_newest_first:
        if outcome is None:
            continue
        if ConfirmationOutcome(outcome).delivered_food:
            break
        failed.append(outcome)
    return failed[::-1]


def candidate_days(after: dt.date, weekday: int, count: int) -> list[dt.date]:
    """The next `count` delivery days strictly after `after`."""
    first = next_weekday(weekday, after + dt.timedelta(days=1))
    return [first + dt.timedelta(weeks=i) for i in range(count)]


def next_day_with_room(db: Session, food_bank: Organization, order: Order, after: dt.date) -> dt.date | None:
    """The first delivery day after `after` (not a holiday) where the retry fits the program's boxes:
    free on a day the order is due anyway (its regular stop carries the retry), else its boxes must
    fit beside everything promised and every retry already carried there."""
    weekday = food_bank.delivery_weekday if food_bank.delivery_weekday is not None else after.weekday()
    for candidate in candidate_days(after, weekday, LOOK_AHEAD_DAYS):
        if day.holiday(db, food_bank.id, candidate) is not None:
            continue
        if is_due(waitlist.recurrence(order), candidate) or food_bank.boxes_per_delivery_day is None:
            return candidate
        promised = waitlist.committed(db, food_bank, candidate)[candidate]
        retries = db.scalar(
            select(func.coalesce(func.sum(Stop.boxes), 0)).join(Plan, Plan.id == Stop.plan_id)
            .where(Plan.food_bank_id == food_bank.id, Stop.date == candidate,
                   Stop.carried_from_id.is_not(None), Stop.status != StopStatus.removed)) or 0
        if promised + retries + order.boxes <= food_bank.boxes_per_delivery_day:
            return candidate
    return None


def enqueue(db: Session, stop: Stop, *, actor_id: int | None) -> None:
    """Queue the follow-up of a stop just confirmed as failed (the confirmation's transaction)."""
    jobs.enqueue(db, KIND, {"stop_id": stop.id, "actor_id": actor_id}, dedupe_key=str(stop.id))


def run(ctx: jobs.JobContext) -> None:
    """The `followup` job: follow up one stop in a transaction of its own."""
    with ctx.database.writer() as db:
        stop = db.get(Stop, int(ctx.payload["stop_id"]))
        if stop is not None:
            after_attempt(db, stop, actor_id=ctx.payload.get("actor_id"))
        db.commit()


def job_kind() -> jobs.Kind:
    """followup: retried after 5, 10, 20 … seconds (at most 5 minutes) if it fails. The follow-ups
    of the confirmations of a moment are claimed and finished together (two worker writes, not two
    per stop), each stop still in its own short transaction: one long one would hold the writer
    the drivers' taps wait on."""
    return jobs.Kind(KIND, run, backoff=jobs.exponential(first_s=5.0, max_s=300.0),
                     batch=50, settle_s=0.5)


def after_attempt(db: Session, stop: Stop, *, actor_id: int | None) -> None:
    """Follow up a stop confirmed as failed (the caller's transaction). Does nothing when the stop
    is no longer failed (undone), the order is no longer active (held, ended) or a retry of this
    stop is already on a later day."""
    order = db.get(Order, stop.order_id)
    if (order is None or order.status != OrderStatus.active or stop.outcome is None
            or ConfirmationOutcome(stop.outcome).delivered_food):
        return
    referral = db.get(Referral, order.referral_id)
    food_bank = db.get(Organization, order.food_bank_id)
    assert referral is not None and food_bank is not None
    outcomes = db.scalars(select(Stop.outcome).where(Stop.order_id == order.id, Stop.date <= stop.date)
                          .order_by(Stop.date.desc(), Stop.id.desc())).all()
    failures = consecutive_failures(outcomes)
    if stop.outcome == ConfirmationOutcome.wrong_address:
        _hold(db, order, referral, ReviewKind.address_problem, failures, actor_id,
              "The driver reported a wrong address: check it with the clinic or the patient, then "
              "resume deliveries.")
        return
    if len(failures) >= food_bank.max_failed_attempts:
        _hold(db, order, referral, ReviewKind.failed_attempts, failures, actor_id,
              f"{len(failures)} failed delivery attempts in a row; call the patient or the clinic, "
              "then resume or end deliveries.")
        return
    if db.scalar(select(Stop.id).where(Stop.carried_from_id == stop.id, Stop.status != StopStatus.removed)
                 .limit(1)) is not None:
        return
    to_date = next_day_with_room(db, food_bank, order, stop.date)
    if to_date is None:
        _hold(db, order, referral, ReviewKind.failed_attempts, failures, actor_id,
              f"A failed attempt could not be rescheduled: the next {LOOK_AHEAD_DAYS} delivery days "
              "are full. Choose a day by hand, or resume deliveries on the regular schedule.")
        return
    retry = day.carry(db, food_bank, order, to_date, carried_from=stop.id)
    timeline.record(db, referral, EventKind.rescheduled,
                    payloads.Rescheduled(order_id=order.id, from_date=stop.date, to_date=to_date,
                                         stop_id=retry.id if retry else None), actor_id=None)


def _hold(db: Session, order: Order, referral: Referral, kind: ReviewKind, failures: list[str],
          actor_id: int | None, message: str) -> None:
    """Stop deliveries (paused with no end: not due, not carried) and open a review item."""
    order.status, order.paused_until = OrderStatus.paused, None
    item = ReviewItem(kind=kind, patient_id=order.patient_id, food_bank_id=order.food_bank_id,
                      message=message[:500], details={"order_id": order.id, "reasons": failures})
    db.add(item)
    db.flush()
    timeline.record(db, referral, EventKind.held_for_review,
                    payloads.HeldForReview(order_id=order.id, review_item_id=item.id, reasons=failures),
                    actor_id=actor_id)
