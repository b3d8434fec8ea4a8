"""Program capacity: clinics never flood the food bank, and waiting patients move up by themselves."""

from __future__ import annotations

import datetime as dt

import msgspec
from sqlalchemy import select

from delivery.models import Cadence, Order, OrderStatus, Organization, Referral, ReferralEvent, Source
from delivery.program import capacity, orders, waitlist
from delivery.program.scheduling import Recurrence
from delivery.referrals import intake
from delivery.referrals.schemas import ReferralIn
from tests.builders import clock_on, referral_body

TODAY = dt.date(2026, 11, 23)


def refer(db, program, mrn: str, priority: int = 0) -> intake.IntakeResult:
    body = {**referral_body(patient__mrn=mrn, patient__given_name=f"P{mrn}"), "priority": priority}
    return intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=program.clinic1_id, actor_id=None,
                        source=Source.api, clock=clock_on(TODAY))


def test_ending_an_order_moves_the_next_patient_off_the_waitlist(database, program) -> None:
    """Capacity 2: the third referral waits; when an order ends it becomes active, on its timeline."""
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 2
        first, _second, third = (refer(db, program, mrn) for mrn in ("M1", "M2", "M3"))
        assert third.order.status == OrderStatus.waitlisted
        moved = orders.end_order(db, first.order, "moved out of the area", actor_id=None, today=TODAY)
        db.commit()
        assert [order.id for order in moved] == [third.order.id]
    with database.reader() as db:
        referral = db.get(Referral, third.referral.id)
        assert referral.status == "active" and referral.outcome == "home_delivery"
        kinds = db.scalars(select(ReferralEvent.kind).where(ReferralEvent.referral_id == referral.id)).all()
        assert "moved_off_waitlist" in kinds


def test_pausing_frees_capacity_only_for_the_paused_weeks(database, program) -> None:
    """A pause lets a waiting one-off order in, but not a weekly one that would collide later."""
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 1
        first = refer(db, program, "M1")
        waiting = refer(db, program, "M2")
        moved = orders.pause_order(db, first.order, TODAY + dt.timedelta(days=14), "in hospital", None,
                                   today=TODAY)
        assert moved == []  # a weekly order would exceed capacity once the pause ends
        assert db.get(Order, waiting.order.id).status == OrderStatus.waitlisted


def test_program_status_shows_waitlist_and_free_boxes(database, program) -> None:
    """Clinic staff see whether the program is open and how many wait, before they refer."""
    with database.writer() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        food_bank.boxes_per_delivery_day = 1
        status = waitlist.program_status(db, food_bank, TODAY)
        assert status.is_open and status.boxes_free_next_day == 1
        refer(db, program, "M1")
        refer(db, program, "M2")
        status = waitlist.program_status(db, food_bank, TODAY)
        assert not status.is_open and status.waiting == 1 and status.boxes_free_next_day == 0


def test_a_new_referral_does_not_jump_the_queue(database, program) -> None:
    """With a two-box order waiting, a new one-box order waits too, though it alone would fit."""
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 2
        refer(db, program, "M1")
        big = msgspec.convert({**referral_body(patient__mrn="M2", patient__given_name="Big"),
                               "order": {"boxes": 2}}, ReferralIn)
        waiting = intake.refer(db, big, clinic_id=program.clinic1_id, actor_id=None, source=Source.api,
                               clock=clock_on(TODAY))
        small = refer(db, program, "M3")
        assert waiting.order.status == OrderStatus.waitlisted
        assert small.order.status == OrderStatus.waitlisted
        assert waitlist.position(db, small.order) == 2
        urgent = refer(db, program, "M4", priority=2)  # a more urgent patient may go ahead when it fits
        assert urgent.order.status == OrderStatus.active


def test_the_first_full_day_is_looked_for_over_the_whole_horizon() -> None:
    """Room on the next delivery day is not enough for a standing order: the first of its days
    that would overflow is named, with what is promised there."""
    tuesday = dt.date(2026, 12, 1)
    eight_weeks = capacity.horizon(8)
    load = capacity.Counter({tuesday: 1, tuesday + dt.timedelta(weeks=1): 2})
    weekly = Recurrence(Cadence.weekly, weekday=1, start_date=tuesday)
    full = capacity.first_full_day(2, load, weekly, 1, tuesday, eight_weeks)
    assert full == capacity.FullDay(tuesday + dt.timedelta(weeks=1), promised=2, capacity=2)
    assert full.free == 0 and not capacity.fits(2, load, weekly, 1, tuesday, eight_weeks)
    fortnightly = Recurrence(Cadence.biweekly, weekday=1, start_date=tuesday)  # skips the full week
    assert capacity.first_full_day(2, load, fortnightly, 1, tuesday, eight_weeks) is None
    assert capacity.first_full_day(None, load, weekly, 5, tuesday, eight_weeks) is None  # no limit set
