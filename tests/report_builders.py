"""A program's history built through the real services at the moments it happens (the wall clock
travels with time-machine, so every event's time is the story's): referrals, delivery days with
a route and the driver's confirmations, receipts, orders ending."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import msgspec
import time_machine
from sqlalchemy import select

from delivery.field.confirmations import confirm_stop
from delivery.loop.receipts import record_receipt
from delivery.models import Order, Organization, PlanStatus, Referral, Route, Source, Stop
from delivery.plans import day as plan_day
from delivery.platform.clock import FixedClock
from delivery.platform.db import Database
from delivery.program.orders import end_order
from delivery.referrals import intake
from delivery.referrals.schemas import ReferralIn
from delivery.reports.figures import METRES_PER_MILE
from tests.builders import Program, referral_body
from tests.day_builders import add_driver

LA = ZoneInfo("America/Los_Angeles")


def at(day: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A moment of a day in the program's time zone."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=LA)


class Story:
    """Acts out a program's weeks; each method is one thing that happens, committed at its moment."""

    def __init__(self, database: Database, program: Program) -> None:
        self.database, self.program = database, program
        with database.writer() as db:
            self.driver_id = add_driver(db, program, 1, date=None).id
            db.commit()

    def refer(self, when: dt.datetime, clinic_id: int, mrn: str, *, boxes: int = 1,
              eligible: bool = True) -> int:
        hunger = "often" if eligible else "never"
        body = referral_body(patient__mrn=mrn, patient__given_name=f"Given{mrn}",
                             patient__family_name=f"Family{mrn}", screening__hunger_worried=hunger,
                             screening__hunger_ran_out=hunger, order={"boxes": boxes})
        with time_machine.travel(when, tick=False), self.database.writer() as db:
            made = intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=clinic_id, actor_id=None,
                                source=Source.web, clock=FixedClock(when))
            db.commit()
            return made.referral.id

    def deliver(self, day: dt.date, outcomes: dict[int, str], *, miles: float = 10, hours: float = 2) -> None:
        """The day's stops for these referrals on one published route of `miles` and `hours`,
        confirmed by the driver at 10:00 with the given outcomes (referral id -> outcome)."""
        with time_machine.travel(at(day), tick=False), self.database.writer() as db:
            food_bank = db.get(Organization, self.program.food_bank_id)
            plan = plan_day.prepare(db, food_bank, day)  # type: ignore[arg-type]
            route = Route(plan_id=plan.id, driver_id=self.driver_id, published_version=1,
                          distance_m=round(miles * METRES_PER_MILE), duration_s=round(hours * 3600))
            db.add(route)
            db.flush()
            rows = db.execute(select(Stop, Order.referral_id).join(Order, Order.id == Stop.order_id)
                              .where(Stop.plan_id == plan.id)).unique().all()
            stops = {referral_id: stop for stop, referral_id in rows}
            assert set(outcomes) <= set(stops), f"no stop on {day} for {set(outcomes) - set(stops)}"
            for seq, referral_id in enumerate(outcomes, start=1):
                stops[referral_id].route_id, stops[referral_id].seq = route.id, seq
            plan.status, plan.published_version = PlanStatus.published, 1
            db.flush()
            user_id = db.get(Route, route.id).driver.user_id  # type: ignore[union-attr]
            door = at(day, 10)
            for referral_id, outcome in outcomes.items():
                stop = stops[referral_id]
                confirm_stop(db, stop=stop, user_id=user_id, outcome=outcome, note=None, occurred_at=door,
                             idempotency_key=f"stop-{stop.id}")
            db.commit()

    def receipt(self, when: dt.datetime, referral_id: int, *, received: bool = True) -> None:
        with time_machine.travel(when, tick=False), self.database.writer() as db:
            referral = db.get(Referral, referral_id)
            record_receipt(db, referral, received=received,  # type: ignore[arg-type]
                           note=None if received else "The patient was not at home.", actor_id=None)
            db.commit()

    def end(self, when: dt.datetime, referral_id: int, reason: str) -> None:
        with time_machine.travel(when, tick=False), self.database.writer() as db:
            order = db.scalars(select(Order).where(Order.referral_id == referral_id)).one()
            end_order(db, order, reason, None, when.date())
            db.commit()
