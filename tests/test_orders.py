"""Standing orders over time: pause, resume, change, end, reprioritise. Capacity is respected on
every change, freed boxes move the waitlist up at once, and every change is on the timeline."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from delivery.models import Order, OrderStatus, Organization, Referral, ReferralStatus
from delivery.program import orders, program_settings, waitlist
from tests.coordinator_builders import refer, set_capacity, timeline

TODAY = dt.date(2026, 11, 23)  # a Monday; the program delivers on Tuesdays
TUESDAY = dt.date(2026, 11, 24)


def status(db, order_id: int) -> str:
    return db.get(Order, order_id).status


def test_more_boxes_than_the_program_has_room_for_is_refused_with_the_day(database, program) -> None:
    """Capacity 2, two orders of 1: asking 2 for one of them names the first full day; nothing changes."""
    with database.writer() as db:
        set_capacity(db, program, 2)
        first = refer(db, program, "B1", today=TODAY)
        refer(db, program, "B2", today=TODAY)
        before = timeline(db, first.referral.id)
        with pytest.raises(orders.OrderError) as refused:
            orders.change_order(db, first.order, boxes=2, actor_id=None, today=TODAY)
        message = str(refused.value)
        assert "No room: Tue 24 Nov 2026 has only 1 box free" in message
        assert "The order stays at 1 box(es) on Tuesday" in message
        assert "raise the program's capacity" in message
        assert first.order.boxes == 1 and timeline(db, first.referral.id) == before


def test_more_boxes_within_capacity_is_on_the_timeline(database, program) -> None:
    with database.writer() as db:
        set_capacity(db, program, 3)
        first = refer(db, program, "B1", today=TODAY)
        refer(db, program, "B2", today=TODAY)
        assert orders.change_order(db, first.order, boxes=2, box_type="diabetic", actor_id=None,
                                   today=TODAY) == []
        assert first.order.boxes == 2 and first.order.box_type == "diabetic"
        assert timeline(db, first.referral.id)[-1] == (
            "order_changed", "Order changed: boxes 1 → 2; box type standard → diabetic.")


def test_fewer_boxes_let_the_next_waiting_order_in(database, program) -> None:
    with database.writer() as db:
        set_capacity(db, program, 2)
        big = refer(db, program, "B1", today=TODAY, boxes=2)
        waiting = refer(db, program, "B2", today=TODAY)
        assert waiting.order.status == OrderStatus.waitlisted
        moved = orders.change_order(db, big.order, boxes=1, actor_id=None, today=TODAY)
        assert [o.id for o in moved] == [waiting.order.id]
        assert db.get(Referral, waiting.referral.id).status == ReferralStatus.active


def test_another_weekday_moves_the_boxes_and_frees_the_old_day(database, program) -> None:
    """Tuesday is full; moving one order to Thursday gives its Tuesday box to the next in line."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        first = refer(db, program, "W1", today=TODAY)
        waiting = refer(db, program, "W2", today=TODAY)
        moved = orders.change_order(db, first.order, weekday=3, actor_id=None, today=TODAY)
        assert first.order.weekday == 3 and [o.id for o in moved] == [waiting.order.id]
        assert orders.first_delivery(first.order, TODAY) == dt.date(2026, 11, 26)
        assert "delivery day Tuesday → Thursday" in timeline(db, first.referral.id)[-1][1]
        with pytest.raises(orders.OrderError, match="No room: Tue 24 Nov 2026 has no boxes free"):
            orders.change_order(db, first.order, weekday=1, actor_id=None, today=TODAY)


def test_the_time_window_can_be_set_and_cleared(database, program) -> None:
    with database.writer() as db:
        order = refer(db, program, "T1", today=TODAY).order
        orders.change_order(db, order, window=(dt.time(9), dt.time(12)), actor_id=None, today=TODAY)
        assert (order.window_start, order.window_end) == (dt.time(9), dt.time(12))
        orders.change_order(db, order, window=(None, None), actor_id=None, today=TODAY)
        assert order.window_start is None and order.window_end is None
        kinds = [message for kind, message in timeline(db, order.referral_id) if kind == "order_changed"]
        assert kinds[-1] == "Order changed: time window 09:00–12:00 → any time."


@pytest.mark.parametrize(("change", "words"), [
    ({"boxes": 0}, "Boxes: from 1 to 6"),
    ({"weekday": 7}, "Choose a weekday"),
    ({"box_type": "caviar"}, "Unknown box type"),
    ({"window": (dt.time(12), dt.time(9))}, "must start before it ends"),
    ({"window": (dt.time(9), None)}, "both ends"),
    ({"boxes": 1}, "Nothing to change"),
])
def test_changes_that_make_no_sense_are_refused(database, program, change, words) -> None:
    with database.writer() as db:
        order = refer(db, program, "V1", today=TODAY).order
        with pytest.raises(orders.OrderError, match=words):
            orders.change_order(db, order, actor_id=None, today=TODAY, **change)


def test_an_ended_order_cannot_change(database, program) -> None:
    with database.writer() as db:
        order = refer(db, program, "E1", today=TODAY).order
        orders.end_order(db, order, "moved away", actor_id=None, today=TODAY)
        with pytest.raises(orders.OrderError, match="has ended"):
            orders.change_order(db, order, boxes=2, actor_id=None, today=TODAY)


def test_a_pause_lets_a_waiting_one_off_delivery_in(database, program) -> None:
    """Capacity 1: a paused weekly order's Tuesday goes to a waiting one-off order at once."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        weekly = refer(db, program, "P1", today=TODAY)
        once = refer(db, program, "P2", today=TODAY, cadence="once")
        assert once.order.status == OrderStatus.waitlisted
        moved = orders.pause_order(db, weekly.order, TODAY + dt.timedelta(days=9), "in hospital", None,
                                   today=TODAY)
        assert [o.id for o in moved] == [once.order.id]
        assert timeline(db, weekly.referral.id)[-1] == (
            "paused", "Deliveries paused through Wed 02 Dec 2026. Reason: in hospital")


def test_resuming_early_is_refused_when_the_paused_day_was_given_away(database, program) -> None:
    """The one-off took the paused Tuesday: resuming now would overbook it; after the pause, fine."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        weekly = refer(db, program, "R1", today=TODAY)
        refer(db, program, "R2", today=TODAY, cadence="once")
        orders.pause_order(db, weekly.order, TODAY + dt.timedelta(days=3), "travelling", None, today=TODAY)
        with pytest.raises(orders.OrderError, match="No room: Tue 24 Nov 2026 has no boxes free"):
            orders.resume_order(db, weekly.order, actor_id=None, today=TODAY)
        with pytest.raises(orders.OrderError, match="No room"):  # nor by shortening the pause
            orders.pause_order(db, weekly.order, TODAY, "back early", None, today=TODAY)
        assert weekly.order.paused_until == TODAY + dt.timedelta(days=3)
        with pytest.raises(orders.OrderError, match="not paused"):
            orders.resume_order(db, weekly.order, actor_id=None, today=TODAY + dt.timedelta(days=4))


def test_resuming_early_when_there_is_room(database, program) -> None:
    with database.writer() as db:
        weekly = refer(db, program, "R1", today=TODAY)
        orders.pause_order(db, weekly.order, TODAY + dt.timedelta(days=20), "travelling", None, today=TODAY)
        assert orders.first_delivery(weekly.order, TODAY) == dt.date(2026, 12, 15)
        orders.resume_order(db, weekly.order, actor_id=None, today=TODAY)
        assert weekly.order.paused_until is None
        assert orders.first_delivery(weekly.order, TODAY) == TUESDAY
        kind, message = timeline(db, weekly.referral.id)[-1]
        assert kind == "resumed" and "next delivery Tue 24 Nov 2026" in message


def test_a_pause_needs_a_reason(database, program) -> None:
    with database.writer() as db:
        order = refer(db, program, "N1", today=TODAY).order
        with pytest.raises(orders.OrderError, match="Write why"):
            orders.pause_order(db, order, TODAY + dt.timedelta(days=7), "  ", None, today=TODAY)


def test_ending_an_order_gives_its_boxes_to_the_next_in_line_only(database, program) -> None:
    with database.writer() as db:
        set_capacity(db, program, 1)
        first = refer(db, program, "N1", today=TODAY)
        second = refer(db, program, "N2", today=TODAY)
        third = refer(db, program, "N3", today=TODAY)
        moved = orders.end_order(db, first.order, "moved away", actor_id=None, today=TODAY)
        assert [o.id for o in moved] == [second.order.id]
        assert status(db, third.order.id) == OrderStatus.waitlisted


def test_priority_reorders_the_waitlist_and_may_let_someone_in(database, program) -> None:
    """Capacity 2, one box used: a 2-box order waits first and blocks a 1-box one behind it; made
    urgent, the 1-box order goes ahead and fits at once."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        refer(db, program, "Q1", today=TODAY)
        blocked = refer(db, program, "Q2", today=TODAY, boxes=2)
        small = refer(db, program, "Q3", today=TODAY)
        set_capacity(db, program, 2)  # one box free now, but the 2-box order is first in line
        assert waitlist.promote(db, db.get(Organization, program.food_bank_id), TODAY) == []
        assert status(db, small.order.id) == OrderStatus.waitlisted
        moved = orders.change_priority(db, small.order, 2, actor_id=None, today=TODAY)
        assert [o.id for o in moved] == [small.order.id]
        assert db.get(Referral, small.referral.id).priority == 2
        assert ("priority_changed", "Priority normal → urgent.") in timeline(db, small.referral.id)
        assert status(db, blocked.order.id) == OrderStatus.waitlisted
        with pytest.raises(orders.OrderError, match="urgent already"):
            orders.change_priority(db, small.order, 2, actor_id=None, today=TODAY)
        with pytest.raises(orders.OrderError, match="Priority is 0"):
            orders.change_priority(db, blocked.order, 5, actor_id=None, today=TODAY)


def test_raising_capacity_promotes_and_lowering_it_drops_nobody(database, program) -> None:
    with database.writer() as db:
        set_capacity(db, program, 1)
        first = refer(db, program, "C1", today=TODAY)
        waiting = refer(db, program, "C2", today=TODAY)
        food_bank = db.get(Organization, program.food_bank_id)
        change = program_settings.update_settings(db, food_bank, boxes_per_delivery_day=2, delivery_weekday=1,
                                         actor_id=None, today=TODAY)
        assert [o.id for o in change.promoted] == [waiting.order.id] and change.over_capacity == []
        change = program_settings.update_settings(db, food_bank, boxes_per_delivery_day=1, delivery_weekday=1,
                                         actor_id=None, today=TODAY)
        assert change.changes == ["boxes per delivery day 2 → 1"]
        assert change.over_capacity[0] == (TUESDAY, 2)
        assert {status(db, first.order.id), status(db, waiting.order.id)} == {OrderStatus.active}
        with pytest.raises(program_settings.ProgramError, match="Nothing to change"):
            program_settings.update_settings(db, food_bank, boxes_per_delivery_day=1, delivery_weekday=1,
                                    actor_id=None, today=TODAY)
        assert db.scalar(select(Order.id).where(Order.status == OrderStatus.waitlisted)) is None
