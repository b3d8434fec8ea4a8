"""Standing orders over time: pause, resume, end. Freed capacity moves the waitlist up at once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from delivery import timeline, waitlist
from delivery.models import Order, OrderStatus, Organization, Referral, ReferralStatus, utcnow


class OrderError(ValueError):
    """A change an order cannot take; the message says why."""


def _context(db: Session, order: Order) -> tuple[Referral, Organization]:
    referral = db.get(Referral, order.referral_id)
    food_bank = db.get(Organization, order.food_bank_id)
    assert referral is not None and food_bank is not None
    return referral, food_bank


def pause_order(db: Session, order: Order, until: dt.date, reason: str, actor_id: int | None,
                today: dt.date | None = None) -> list[Order]:
    """No deliveries through `until` (a hospital stay, a trip). Returns the orders moved off the waitlist."""
    today = today or dt.date.today()
    if order.status != OrderStatus.active:
        raise OrderError(f"Only an active order can be paused; this one is {order.status}.")
    if until < today:
        raise OrderError("The pause must end today or later.")
    referral, food_bank = _context(db, order)
    order.paused_until = until
    timeline.record(db, referral, "order_paused",
                    f"Deliveries paused through {until:%a %d %b %Y}. Reason: {reason}", actor_id)
    db.flush()
    return waitlist.promote(db, food_bank, today, actor_id)


def end_order(db: Session, order: Order, reason: str, actor_id: int | None,
              today: dt.date | None = None) -> list[Order]:
    """Stop the order for good, with a reason. Returns the orders moved off the waitlist."""
    if not reason.strip():
        raise OrderError("Write why the order ends.")
    if order.status == OrderStatus.ended:
        raise OrderError("This order has already ended.")
    referral, food_bank = _context(db, order)
    order.status = OrderStatus.ended
    order.ended_at = utcnow()
    order.end_reason = reason.strip()
    referral.status = ReferralStatus.closed
    timeline.record(db, referral, "order_ended", f"Deliveries ended. Reason: {reason.strip()}", actor_id)
    db.flush()
    return waitlist.promote(db, food_bank, today or dt.date.today(), actor_id)
