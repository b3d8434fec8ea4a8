"""Program capacity and the waitlist: who is served now, who waits, and who moves up."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from delivery.models import (
    EventKind,
    Order,
    OrderStatus,
    Organization,
    Outcome,
    Referral,
    ReferralStatus,
)
from delivery.program import allocations, capacity, partnerships
from delivery.program.scheduling import Recurrence, next_weekday
from delivery.timeline import events as timeline
from delivery.timeline import payloads
from delivery.timeline.text import short_date


def recurrence(order: Order) -> Recurrence:
    return Recurrence(cadence=order.cadence, weekday=order.weekday, start_date=order.start_date,
                      end_date=order.end_date, paused_until=order.paused_until)


def lock_program(db: Session, food_bank_id: int) -> None:
    """Serialise capacity decisions for one program: on PostgreSQL two referrals at the same moment
    would otherwise both see the last free box (SQLite's single writer already serialises them)."""
    if db.get_bind().dialect.name != "sqlite":
        db.execute(select(Organization.id).where(Organization.id == food_bank_id).with_for_update())


def committed(db: Session, food_bank: Organization, start: dt.date, weekday: int | None = None,
              end: dt.date | None = None) -> capacity.Counter[dt.date]:
    """Boxes already promised on each delivery day from `start` to `end` (default: the program's
    capacity horizon from `start`); only on `weekday` when given: an order is only ever due on its
    own weekday.

    Orders are summed in SQL by what decides their dates, so the work grows with the number of
    distinct schedules (a few dozen: start dates fall on delivery days), not with the number of
    orders: a bulk import of thousands of referrals stays linear.
    """
    end = end or start + capacity.horizon(food_bank.waitlist_horizon_weeks)
    schedule = (Order.cadence, Order.weekday, Order.start_date, Order.end_date, Order.paused_until)
    query = (select(*schedule, func.sum(Order.boxes))
             .where(Order.food_bank_id == food_bank.id,
                    Order.status.in_([OrderStatus.active, OrderStatus.paused]),
                    Order.start_date <= end,
                    or_(Order.end_date.is_(None), Order.end_date >= start))
             .group_by(*schedule))
    if weekday is not None:
        query = query.where(Order.weekday == weekday)
    orders = [(Recurrence(cadence, day, first, end, paused), int(boxes))
              for cadence, day, first, end, paused, boxes in db.execute(query)]
    return capacity.committed_boxes(orders, start, end)


def order_fits(db: Session, food_bank: Organization, order: Order, today: dt.date) -> bool:
    start = max(today, order.start_date)
    load = committed(db, food_bank, start, weekday=order.weekday)
    return capacity.fits(food_bank.boxes_per_delivery_day, load, recurrence(order), order.boxes, start,
                         capacity.horizon(food_bank.waitlist_horizon_weeks))


def waiting_orders(db: Session, food_bank_id: int) -> list[Order]:
    """Waitlisted orders in the order they will be served: priority first, then referral date."""
    return list(db.scalars(
        select(Order).join(Referral, Referral.id == Order.referral_id)
        .where(Order.food_bank_id == food_bank_id, Order.status == OrderStatus.waitlisted)
        .order_by(Order.priority.desc(), Referral.created_at, Order.id)
    ))


HELD_BY_CAPACITY = "capacity"
HELD_BY_ALLOCATION = "allocation"


def waiting_ahead(db: Session, food_bank_id: int, priority: int, clinic_id: int) -> bool:
    """Whether a new order of this priority from this clinic would have someone waiting ahead of it:
    anyone waiting for room in the program, or its own clinic's patients waiting for its allocation
    (another clinic's allocation holds only that clinic's referrals)."""
    return db.scalar(select(Order.id).join(Referral, Referral.id == Order.referral_id).where(
        Order.food_bank_id == food_bank_id, Order.status == OrderStatus.waitlisted,
        Order.priority >= priority,
        or_(Order.waitlist_reason.is_(None), Order.waitlist_reason != HELD_BY_ALLOCATION,
            Referral.clinic_id == clinic_id)).limit(1)) is not None


def held_for_allocation(db: Session, food_bank_id: int, clinic_id: int) -> bool:
    """Whether any of the clinic's referrals waits for its allocation (not for the program's room)."""
    return db.scalar(select(Order.id).join(Referral, Referral.id == Order.referral_id).where(
        Order.food_bank_id == food_bank_id, Order.status == OrderStatus.waitlisted,
        Order.waitlist_reason == HELD_BY_ALLOCATION, Referral.clinic_id == clinic_id).limit(1)) is not None


def clinics_of(db: Session, orders: list[Order]) -> dict[int, int]:
    """The referring clinic of each order, by order id (one query)."""
    ids = [order.id for order in orders]
    if not ids:
        return {}
    return dict(db.execute(select(Order.id, Referral.clinic_id)
                           .join(Referral, Referral.id == Order.referral_id)
                           .where(Order.id.in_(ids))).all())


def position(db: Session, order: Order) -> int | None:
    """1-based place on the waitlist, or None when the order is not waiting (one COUNT query)."""
    if order.status != OrderStatus.waitlisted:
        return None
    referred_at = db.scalar(select(Referral.created_at).where(Referral.id == order.referral_id))
    ahead = db.scalar(
        select(func.count(Order.id)).join(Referral, Referral.id == Order.referral_id)
        .where(Order.food_bank_id == order.food_bank_id, Order.status == OrderStatus.waitlisted,
               or_(Order.priority > order.priority,
                   (Order.priority == order.priority) & (Referral.created_at < referred_at),
                   (Order.priority == order.priority) & (Referral.created_at == referred_at)
                   & (Order.id < order.id))))
    return (ahead or 0) + 1


def promote(db: Session, food_bank: Organization, today: dt.date,
            actor_id: int | None = None) -> list[Order]:
    """Move waiting orders onto the program, in waitlist order, while capacity allows.

    Strictly in order: a later, smaller request does not jump a waiting one that does not fit yet.
    An order whose clinic has used its allocation this week is passed over (it holds only its own
    clinic's patients). Called in the same transaction as whatever freed capacity (an order ended
    or paused, capacity raised), by the `promote` job for room that frees with no write (a new
    week, a delivery day passed; `waitlist_job`), or when a coordinator serves the waitlist.
    """
    moved = []
    lock_program(db, food_bank.id)
    waiting = waiting_orders(db, food_bank.id)
    clinics = clinics_of(db, waiting)
    ledger = partnerships.ledger(db, food_bank, today)
    for order in waiting:
        if not ledger.admits(clinics[order.id], order.boxes):
            order.waitlist_reason = HELD_BY_ALLOCATION
            continue
        order.start_date = max(order.start_date, today)
        if not order_fits(db, food_bank, order, today):
            order.waitlist_reason = HELD_BY_CAPACITY
            break
        ledger.take(clinics[order.id], order.boxes)
        held_by = order.waitlist_reason
        order.status = OrderStatus.active
        order.accepted_on = today
        order.waitlist_reason = None
        referral = db.get(Referral, order.referral_id)
        assert referral is not None
        referral.status = ReferralStatus.active
        referral.outcome = Outcome.home_delivery
        referral.reason = "Moved off the waitlist: home delivery."
        first = next_weekday(order.weekday, order.start_date)
        timeline.record(db, referral, EventKind.moved_off_waitlist,
                        payloads.MovedOffWaitlist(order_id=order.id, first_delivery=first,
                                                  allocation=held_by == HELD_BY_ALLOCATION),
                        actor_id=actor_id)
        db.flush()
        moved.append(order)
    return moved


@dataclass(frozen=True)
class Wait:
    """Why one waiting order still waits, as `promote()` would find it now."""

    order: Order
    position: int
    full_day: capacity.FullDay | None  # the first of its days without room for it; None: room on all
    behind: int | None  # room on all, but the order at this place is served first and has none
    allowance: allocations.Allowance | None = None  # set when its clinic's allocation this week is used

    @property
    def moves_up_now(self) -> bool:
        return self.full_day is None and self.behind is None and self.allowance is None

    def reason(self) -> str:
        if self.allowance is not None:
            return f"Its clinic's allocation this week is used: {allocation_words(self.allowance)}."
        if self.full_day is not None:
            full = self.full_day
            needs = f", {self.order.boxes} needed" if full.free else ""
            return (f"No room on {short_date(full.day)}: {full.promised} of {full.capacity} boxes "
                    f"promised{needs}.")
        if self.behind is not None:
            return f"Room now, but number {self.behind} is served first."
        return "Room now: moves up when the waitlist is served."


def waits(db: Session, food_bank: Organization, today: dt.date) -> list[Wait]:
    """Every waiting order, in the order served, with why it waits: the first day without room for
    it over the whole capacity horizon, or the order ahead of it that has none. The same rule and
    order as `promote()`, which it runs in thought only (nothing is written)."""
    waiting = waiting_orders(db, food_bank.id)
    if not waiting:
        return []
    clinics = clinics_of(db, waiting)
    ledger = partnerships.ledger(db, food_bank, today)
    starts = [max(today, order.start_date) for order in waiting]
    ahead = capacity.horizon(food_bank.waitlist_horizon_weeks)
    load = committed(db, food_bank, today, end=max(starts) + ahead)  # one query for all
    result: list[Wait] = []
    blocked: int | None = None  # the first place without room: promote() stops there
    for place, (order, start) in enumerate(zip(waiting, starts, strict=True), start=1):
        if not ledger.admits(clinics[order.id], order.boxes):
            result.append(Wait(order, place, None, None, ledger.allowance(clinics[order.id])))
            continue
        rec = replace(recurrence(order), start_date=start)
        full = capacity.first_full_day(food_bank.boxes_per_delivery_day, load, rec, order.boxes, start, ahead)
        result.append(Wait(order, place, full, blocked if full is None else None))
        if full is not None and blocked is None:
            blocked = place
        elif blocked is None:  # promote() would take it: the ones after it see its boxes promised
            ledger.take(clinics[order.id], order.boxes)
            load.update(capacity.committed_boxes([(rec, order.boxes)], start, start + ahead))
    return result


def allocation_words(left: allocations.Allowance) -> str:
    """What is used of a clinic's allocation, in words ("2 of 2 new patients placed this week")."""
    unit = partnerships.UNIT_WORDS[left.unit]
    lent = ", and nothing is left to lend from other clinics" if left.lending else ""
    return f"{left.used} of {left.allocation} {unit} placed this week{lent}"


@dataclass(frozen=True)
class ProgramStatus:
    """What clinic staff see before they refer: is there room, and how long is the wait?"""

    food_bank_id: int
    food_bank_name: str
    boxes_per_delivery_day: int | None
    next_delivery_day: dt.date | None
    boxes_free_next_day: int | None
    waiting: int
    expected_wait_weeks: int | None

    @property
    def is_open(self) -> bool:
        return self.waiting == 0 and (self.boxes_free_next_day is None or self.boxes_free_next_day > 0)


def program_status(db: Session, food_bank: Organization, today: dt.date) -> ProgramStatus:
    waiting = waiting_orders(db, food_bank.id)
    next_day = (next_weekday(food_bank.delivery_weekday, today)
                if food_bank.delivery_weekday is not None else None)
    free = None
    if food_bank.boxes_per_delivery_day is not None and next_day is not None:
        free = food_bank.boxes_per_delivery_day - committed(db, food_bank, today)[next_day]
    # The rate capacity frees up: boxes of orders that ended in the last twelve weeks.
    since = dt.datetime.combine(today - dt.timedelta(weeks=12), dt.time(), dt.UTC)
    freed = db.scalar(select(func.coalesce(func.sum(Order.boxes), 0)).where(
        Order.food_bank_id == food_bank.id, Order.ended_at >= since)) or 0
    wait = capacity.expected_wait_weeks(sum(o.boxes for o in waiting), freed / 12) if waiting else 0
    return ProgramStatus(food_bank.id, food_bank.name, food_bank.boxes_per_delivery_day, next_day,
                         free, len(waiting), wait)
