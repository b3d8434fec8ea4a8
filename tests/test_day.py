"""See the day: the stops due on a delivery date come from the standing orders, one-off orders and
failed attempts carried over; closed days, paused, waitlisted and ended orders make none; a patient
without a location is shown as not plannable, never dropped."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from delivery.models import (
    Cadence,
    Holiday,
    OrderStatus,
    Organization,
    Plan,
    PlanStatus,
    Stop,
    StopStatus,
)
from delivery.plans import day as days
from delivery.platform.db import Database
from tests.builders import Program
from tests.day_builders import DAY, add_driver, add_order

WEEK = dt.timedelta(days=7)


def test_the_days_stops_follow_the_orders(database: Database, program: Program) -> None:
    with database.writer() as db:
        due = {
            "weekly": add_order(db, program, 1),
            "biweekly on its week": add_order(db, program, 2, cadence=Cadence.biweekly, start=DAY - 2 * WEEK),
            "once, today": add_order(db, program, 3, cadence=Cadence.once, start=DAY),
            "pause over": add_order(db, program, 4, paused_until=DAY - WEEK),
            "no location": add_order(db, program, 5, point=False),
        }
        not_due = {
            "biweekly off week": add_order(db, program, 6, cadence=Cadence.biweekly, start=DAY - WEEK),
            "once, last week": add_order(db, program, 7, cadence=Cadence.once, start=DAY - WEEK),
            "paused through today": add_order(db, program, 8, paused_until=DAY),
            "paused, no end": add_order(db, program, 9, status=OrderStatus.paused),
            "waitlisted": add_order(db, program, 10, status=OrderStatus.waitlisted),
            "ended": add_order(db, program, 11, status=OrderStatus.ended),
            "ends before": add_order(db, program, 12, end=DAY - dt.timedelta(days=1)),
            "starts after": add_order(db, program, 13, start=DAY + dt.timedelta(days=1)),
        }
        add_driver(db, program, 1, capacity=3)
        food_bank = db.get(Organization, program.food_bank_id)
        plan = days.prepare(db, food_bank, DAY)
        db.commit()
        stops = {s.order_id: s for s in db.scalars(select(Stop).where(Stop.plan_id == plan.id))}
        assert set(stops) == {o.id for o in due.values()}, {k for k, o in not_due.items() if o.id in stops}
        unlocated = stops[due["no location"].id]
        assert unlocated.unassigned_reason == days.NO_LOCATION
        assert "not been located" in unlocated.unassigned_detail

        view = days.view(db, food_bank, DAY)
        assert view.capacity.stops == 5 and view.capacity.boxes_due == 5 and view.capacity.seats == 3
        assert any("cars hold 3" in w for w in view.capacity.warnings)
        assert any("no location" in w for w in view.capacity.warnings)
        assert [d.name for d in view.drivers] == ["Driver 1"]

        # Preparing again changes nothing; an order ended since then loses its unrouted stop.
        due["weekly"].status = OrderStatus.ended
        days.prepare(db, food_bank, DAY)
        days.prepare(db, food_bank, DAY)
        db.commit()
        left = set(db.scalars(select(Stop.order_id).where(Stop.plan_id == plan.id)))
        assert left == {o.id for k, o in due.items() if k != "weekly"}


def test_failed_attempts_are_carried_over_once(database: Database, program: Program) -> None:
    with database.writer() as db:
        weekly = add_order(db, program, 1)
        once = add_order(db, program, 2, cadence=Cadence.once, start=DAY - WEEK)
        delivered = add_order(db, program, 3, cadence=Cadence.once, start=DAY - WEEK)
        last_week = Plan(food_bank_id=program.food_bank_id, date=DAY - WEEK, status=PlanStatus.done)
        db.add(last_week)
        db.flush()
        attempts = {}
        for order, status in ((weekly, StopStatus.failed), (once, StopStatus.failed),
                              (delivered, StopStatus.delivered)):
            attempts[order.id] = Stop(plan_id=last_week.id, order_id=order.id, patient_id=order.patient_id,
                                      date=last_week.date, boxes=1, box_type="standard", service_s=300,
                                      status=status)
            db.add(attempts[order.id])
        db.flush()
        food_bank = db.get(Organization, program.food_bank_id)
        plan = days.prepare(db, food_bank, DAY)
        db.commit()
        stops = {s.order_id: s for s in db.scalars(select(Stop).where(Stop.plan_id == plan.id))}
        assert set(stops) == {weekly.id, once.id}
        assert stops[weekly.id].carried_from_id == attempts[weekly.id].id
        assert stops[once.id].carried_from_id == attempts[once.id].id
        assert days.view(db, food_bank, DAY).carried == 2
        # a later day does not carry the same attempt again
        later = days.prepare(db, food_bank, DAY + WEEK)
        carried = db.scalars(select(Stop.order_id).where(Stop.plan_id == later.id,
                                                         Stop.carried_from_id.is_not(None))).all()
        assert carried == []


def test_a_closed_day_has_no_stops(database: Database, program: Program) -> None:
    with database.writer() as db:
        add_order(db, program, 1)
        db.add(Holiday(food_bank_id=program.food_bank_id, date=DAY, name="Cesar Chavez Day"))
        db.flush()
        with pytest.raises(days.DayError, match="Cesar Chavez Day"):
            days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        assert db.scalar(select(Stop.id)) is None
