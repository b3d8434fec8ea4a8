"""Standing orders over time: pause, resume, change, end, reprioritise.

Every change is on the referral's timeline. A change that needs more boxes on a delivery day is
refused when the program has no room (the message names the day); one that frees boxes moves the
waitlist up at once, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    BoxType,
    EventKind,
    Order,
    OrderStatus,
    Organization,
    Referral,
    ReferralStatus,
    utcnow,
)
from delivery.platform.errors import FieldError
from delivery.program import capacity, waitlist
from delivery.program.scheduling import Recurrence, due_dates
from delivery.timeline import events as timeline
from delivery.timeline import payloads
from delivery.timeline.text import PRIORITIES, WEEKDAYS

MAX_BOXES = 6  # as a clinic may ask (schemas.OrderIn)
NEXT_DELIVERY_LOOKAHEAD = dt.timedelta(weeks=26)  # "next delivery" is searched this far (past long pauses)
Window = tuple[dt.time | None, dt.time | None]
"""A time window (start, end); (None, None) is any time of the day."""


class OrderError(FieldError):
    """A change an order cannot take; the message says why."""

    default_code = "order_refused"


def _context(db: Session, order: Order) -> tuple[Referral, Organization]:
    referral = db.get(Referral, order.referral_id)
    food_bank = db.get(Organization, order.food_bank_id)
    assert referral is not None and food_bank is not None
    return referral, food_bank


def pause_order(db: Session, order: Order, until: dt.date, reason: str, actor_id: int | None,
                today: dt.date) -> list[Order]:
    """No deliveries through `until` (a hospital stay, a trip). Returns the orders moved off the waitlist."""
    if order.status != OrderStatus.active:
        raise OrderError(f"Only an active order can be paused; this one is {order.status}.")
    if until < today:
        raise OrderError("The pause must end today or later.")
    if not reason.strip():
        raise OrderError("Write why deliveries pause (in hospital, travelling…).")
    referral, food_bank = _context(db, order)
    if order.paused_until is not None and until < order.paused_until:
        # A shorter pause gives days back to this order: someone may have been given them since.
        waitlist.lock_program(db, food_bank.id)
        _refuse_if_full(db, food_bank, order, replace(waitlist.recurrence(order), paused_until=until),
                        order.boxes, today, "The pause cannot end sooner")
    before_until = order.paused_until
    order.paused_until = until
    timeline.record(db, referral, EventKind.paused,
                    payloads.Paused(order_id=order.id, until=until, reason=reason.strip(),
                                    before_until=before_until), actor_id=actor_id)
    db.flush()
    return waitlist.promote(db, food_bank, today, actor_id)


def end_order(db: Session, order: Order, reason: str, actor_id: int | None,
              today: dt.date) -> list[Order]:
    """Stop the order for good, with a reason: its referral closes. Returns the orders moved off
    the waitlist."""
    if order.status == OrderStatus.ended:
        raise OrderError("This order has already ended.")
    referral, _ = _context(db, order)
    return close_referral(db, referral, reason, actor_id, today)


def close_referral(db: Session, referral: Referral, reason: str, actor_id: int | None,
                   today: dt.date) -> list[Order]:
    """The one way a referral closes (a coordinator ends its order, a duplicate is found): its open
    order ends with the reason, the timeline says so, and the freed boxes move the waitlist up.
    Returns the orders moved off the waitlist."""
    reason = reason.strip()
    if not reason:
        raise OrderError("Write why the deliveries end.", "reason")
    if referral.status == ReferralStatus.closed:
        raise OrderError(f"Referral #{referral.id} is already closed.", code="already_closed")
    order = db.scalar(select(Order).where(Order.referral_id == referral.id, Order.status != OrderStatus.ended)
                      .order_by(Order.id.desc()).limit(1))
    referral.status = ReferralStatus.closed
    if order is None:
        timeline.record(db, referral, EventKind.ended, payloads.Ended(reason=reason), actor_id=actor_id)
        db.flush()
        return []
    order.status = OrderStatus.ended
    order.ended_at = utcnow()
    order.end_reason = reason
    timeline.record(db, referral, EventKind.ended, payloads.Ended(order_id=order.id, reason=reason),
                    actor_id=actor_id)
    db.flush()
    _, food_bank = _context(db, order)
    return waitlist.promote(db, food_bank, today, actor_id)


def resume_order(db: Session, order: Order, *, actor_id: int | None,
                 today: dt.date) -> None:
    """End a pause early: deliveries start again from today, if the paused days are still free.

    While an order is paused its boxes can go to waiting patients; if they did, the order resumes
    by itself after its pause, and resuming earlier is refused with the day that is full.
    """
    if order.status != OrderStatus.active or order.paused_until is None or order.paused_until < today:
        raise OrderError("This order is not paused.")
    referral, food_bank = _context(db, order)
    waitlist.lock_program(db, food_bank.id)
    was = order.paused_until
    _refuse_if_full(db, food_bank, order, replace(waitlist.recurrence(order), paused_until=None),
                    order.boxes, today, f"Deliveries cannot start again before {was:%a %d %b}")
    order.paused_until = None
    timeline.record(db, referral, EventKind.resumed,
                    payloads.Resumed(order_id=order.id, was_until=was,
                                     first_delivery=first_delivery(order, today)), actor_id=actor_id)
    db.flush()


def resume_held(db: Session, order: Order, *, today: dt.date) -> dt.date | None:
    """Deliveries start again for an order held for review (failed attempts, an address problem).
    A held order keeps its boxes on the program, so there is room. Returns its next delivery day;
    the caller records why on the timeline (the review's resolution)."""
    if order.status != OrderStatus.paused or order.paused_until is not None:
        raise OrderError("This order is not on hold; nothing to resume.")
    order.status = OrderStatus.active
    db.flush()
    return first_delivery(order, today)


def change_order(db: Session, order: Order, *, weekday: int | None = None, boxes: int | None = None,
                 box_type: str | None = None, window: Window | None = None, actor_id: int | None,
                 today: dt.date) -> list[Order]:
    """Change an order's weekday, boxes, box type or time window (None: leave as is).

    More boxes, or another weekday, must fit under the program's capacity on every delivery day
    in the capacity horizon, else OrderError names the first day without room and nothing
    changes. Fewer boxes or another weekday free capacity: returns the orders that moved off the
    waitlist into it.
    """
    if order.status == OrderStatus.ended:
        raise OrderError("This order has ended; it cannot be changed.")
    if weekday is not None and not 0 <= weekday <= 6:
        raise OrderError("Choose a weekday, Monday to Sunday.")
    if boxes is not None and not 1 <= boxes <= MAX_BOXES:
        raise OrderError(f"Boxes: from 1 to {MAX_BOXES}.")
    if box_type is not None and box_type not in {b.value for b in BoxType}:
        raise OrderError(f"Unknown box type {box_type!r}.")
    if window is not None:
        start, end = window
        if (start is None) != (end is None):
            raise OrderError("Give both ends of the time window, or neither (any time).")
        if start is not None and end is not None and start >= end:
            raise OrderError("The time window must start before it ends.")

    new_weekday = order.weekday if weekday is None else weekday
    new_boxes = order.boxes if boxes is None else boxes
    new_type = order.box_type if box_type is None else box_type
    new_window = (order.window_start, order.window_end) if window is None else window
    before = payloads.terms_of(order)
    after = msgspec.structs.replace(before, weekday=new_weekday, boxes=new_boxes, box_type=new_type,
                                    window_start=new_window[0], window_end=new_window[1])
    if after == before:
        raise OrderError("Nothing to change: these are the order's current settings.")

    referral, food_bank = _context(db, order)
    # Another weekday starts from the next such day, counted from today (not from the old start).
    new_start = order.start_date if new_weekday == order.weekday else max(order.start_date, today)
    on_program = order.status in (OrderStatus.active, OrderStatus.paused)
    if on_program and (new_boxes > order.boxes or new_weekday != order.weekday):
        waitlist.lock_program(db, food_bank.id)
        rec = replace(waitlist.recurrence(order), weekday=new_weekday, start_date=new_start)
        _refuse_if_full(db, food_bank, order, rec, new_boxes, today,
                        f"The order stays at {order.boxes} box(es) on {WEEKDAYS[order.weekday]}")
    frees = (not on_program or new_boxes < order.boxes or new_weekday != order.weekday)
    order.weekday, order.boxes, order.box_type = new_weekday, new_boxes, new_type
    order.start_date = new_start
    order.window_start, order.window_end = new_window
    timeline.record(db, referral, EventKind.order_changed,
                    payloads.OrderChanged(order_id=order.id, before=before, after=after), actor_id=actor_id)
    db.flush()
    return waitlist.promote(db, food_bank, today, actor_id) if frees else []


def change_priority(db: Session, order: Order, priority: int, *, actor_id: int | None,
                    today: dt.date) -> list[Order]:
    """Set the order's priority (0 normal, 1 high, 2 urgent): the waitlist is served by it first.

    A waiting order that moves to the front may fit where the one ahead of it did not, so the
    waitlist is promoted at once; returns the orders that moved onto the program.
    """
    if priority not in PRIORITIES:
        raise OrderError("Priority is 0 (normal), 1 (high) or 2 (urgent).")
    if order.status == OrderStatus.ended:
        raise OrderError("This order has ended.")
    if priority == order.priority:
        raise OrderError(f"The priority is {PRIORITIES[priority]} already.")
    referral, food_bank = _context(db, order)
    before = order.priority
    order.priority = priority
    referral.priority = priority
    timeline.record(db, referral, EventKind.priority_changed,
                    payloads.PriorityChanged(order_id=order.id, before=before, after=priority),
                    actor_id=actor_id)
    db.flush()
    if order.status != OrderStatus.waitlisted:
        return []
    return waitlist.promote(db, food_bank, today, actor_id)


def room_on(db: Session, food_bank: Organization, order: Order, rec: Recurrence, boxes: int,
            today: dt.date) -> capacity.FullDay | None:
    """The first delivery day where `boxes` for this order (on `rec`) would exceed capacity, counting
    the others' boxes only; None when it fits everywhere in the horizon."""
    if food_bank.boxes_per_delivery_day is None:
        return None
    start = max(today, rec.start_date)
    ahead = capacity.horizon(food_bank.waitlist_horizon_weeks)
    end = start + ahead
    # Others' load: everything promised, minus this order as it stands (read before changing it).
    load = waitlist.committed(db, food_bank, start)
    if order.status in (OrderStatus.active, OrderStatus.paused):
        load.subtract(capacity.committed_boxes([(waitlist.recurrence(order), order.boxes)], start, end))
    return capacity.first_full_day(food_bank.boxes_per_delivery_day, load, rec, boxes, start, ahead)


def _refuse_if_full(db: Session, food_bank: Organization, order: Order, rec: Recurrence, boxes: int,
                    today: dt.date, consequence: str) -> None:
    full = room_on(db, food_bank, order, rec, boxes, today)
    if full is None:
        return
    room = f"only {full.free} box{'es' if full.free != 1 else ''} free" if full.free else "no boxes free"
    raise OrderError(
        f"No room: {full.day:%a %d %b %Y} has {room} for this order (the program delivers "
        f"{food_bank.boxes_per_delivery_day} boxes per delivery day). {consequence}. Ask for fewer "
        "boxes, choose another day, or raise the program's capacity first.")


def first_delivery(order: Order, today: dt.date) -> dt.date | None:
    """The order's next delivery day from today (pauses and end date included), if any."""
    rec = waitlist.recurrence(order)
    return next(iter(due_dates(rec, max(today, rec.start_date), today + NEXT_DELIVERY_LOOKAHEAD)), None)
