"""The demo's past: the delivery days before the load, played through the services real use goes
through, so every board, timeline and report shows a program that has been running for weeks.

Each past delivery day is prepared (`day.prepare`), planned by the real solver (`planning.plan_now`),
published, driven (each stop confirmed with `confirmations.confirm_stop`, a realistic mix of outcomes),
followed up (`followup.after_attempt` reschedules a failed attempt or holds the order) and, for most
deliveries, confirmed as received by the clinic the next morning (`receipts.record_receipt`). The
services stamp timeline events with the real time of writing; `_backdate` moves what one simulated
moment wrote to that moment, as the demo's referrals already are.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from delivery.field import confirmations, followup
from delivery.loop import receipts
from delivery.loop.messages import outgoing
from delivery.models import (
    ConfirmationOutcome,
    Driver,
    Membership,
    Order,
    Organization,
    Plan,
    Referral,
    ReferralEvent,
    Role,
    Route,
    Stop,
    StopStatus,
)
from delivery.plans import day as days
from delivery.plans import planning, publishing
from delivery.platform.audit import AuditContext
from delivery.platform.clock import FixedClock
from delivery.platform.db import Database
from delivery.platform.settings import Settings

# What happened at the door, in the proportions small programs report (most boxes reach the patient).
OUTCOMES: tuple[tuple[ConfirmationOutcome, int], ...] = (
    (ConfirmationOutcome.delivered, 80),
    (ConfirmationOutcome.left_at_door, 9),
    (ConfirmationOutcome.no_answer, 7),
    (ConfirmationOutcome.refused, 2),
    (ConfirmationOutcome.other, 2),
)
RECEIPT_SHARE = 0.6  # the clinic confirms receipt of most deliveries at the patient's next contact
SOLVE_SECONDS = 1.0  # the demo's days are small; a second finds a good plan


@dataclass(frozen=True)
class PastDay:
    date: dt.date
    stops: int
    outcomes: dict[str, int]


def past_delivery_days(weekday: int, today: dt.date, weeks: int) -> list[dt.date]:
    """The program's last `weeks` delivery days before today, oldest first."""
    back = (today.weekday() - weekday) % 7 or 7
    last = today - dt.timedelta(days=back)
    return [last - dt.timedelta(weeks=n) for n in reversed(range(weeks))]


def outcome_for(rng: random.Random) -> ConfirmationOutcome:
    outcomes, weights = zip(*OUTCOMES, strict=True)
    return rng.choices(outcomes, weights=weights)[0]


def local(date: dt.date, time: dt.time, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(date, time, tzinfo=zone).astimezone(dt.UTC)


def play(database: Database, settings: Settings, food_bank_id: int,
         dates: Sequence[dt.date]) -> list[PastDay]:
    """Play each past delivery day in turn (the drivers' shifts are there already); each day
    commits on its own, as the real week would."""
    rng = random.Random(food_bank_id)  # the same demo every time it is loaded
    return [_play_day(database, settings, food_bank_id, date, rng) for date in dates]


def _play_day(database: Database, settings: Settings, food_bank_id: int, date: dt.date,
              rng: random.Random) -> PastDay:
    with database.reader() as db:
        zone = ZoneInfo(db.get(Organization, food_bank_id).timezone)  # type: ignore[union-attr]
    clock = FixedClock(local(date - dt.timedelta(days=1), dt.time(15), zone))  # planned the afternoon before
    on_day = msgspec.structs.replace(settings, clock=clock)

    with database.writer() as db:
        mark = _last_event_id(db)
        food_bank = db.get(Organization, food_bank_id)
        assert food_bank is not None
        plan = days.prepare(db, food_bank, date)
        db.commit()
        plan_id = plan.id
    planning.plan_now(database, on_day, plan_id, SOLVE_SECONDS)
    with database.writer() as db:
        plan = db.get(Plan, plan_id)
        assert plan is not None
        publishing.publish(db, plan, AuditContext.for_command("demo"), on_day)
        for text in outgoing.plan_texts(db, plan, clock.now()):  # the day_before job, on the day's clock
            text.created_at = clock.now()
        _backdate(db, mark, clock.now())
        db.commit()

    outcomes: Counter[str] = Counter()
    with database.writer() as db:
        mark = _last_event_id(db)
        drivers = dict(db.execute(select(Route.id, Driver.user_id).join(Driver, Driver.id == Route.driver_id)
                                  .where(Route.plan_id == plan_id)).all())
        stops = db.scalars(select(Stop).where(Stop.plan_id == plan_id, Stop.route_id.is_not(None),
                                              Stop.status == StopStatus.pending)
                           .order_by(Stop.route_id, Stop.seq)).unique().all()
        for stop in stops:
            outcome = outcome_for(rng)
            arrival = (stop.eta or 10 * 3600) + rng.randint(0, 600)  # the plan's time, give or take
            at = local(date, dt.time(0), zone) + dt.timedelta(seconds=arrival)
            result = confirmations.confirm_stop(
                db, stop=stop, user_id=drivers[stop.route_id], outcome=outcome, note=None,  # type: ignore[index]
                occurred_at=at, idempotency_key=f"demo-{stop.id}", now=at)
            outcomes[outcome] += 1
            if not outcome.delivered_food:
                followup.after_attempt(db, result.stop, actor_id=None)  # what the followup job does
        _backdate(db, mark, local(date, dt.time(17), zone))
        _texts_for(db, mark, local(date, dt.time(17), zone))
        db.commit()

    with database.writer() as db:
        mark = _last_event_id(db)
        _receipts(db, plan_id, rng)
        # the next morning, or now if that morning has not come yet
        _backdate(db, mark, min(local(date + dt.timedelta(days=1), dt.time(10), zone), settings.clock.now()))
        db.commit()
    return PastDay(date, len(stops), dict(outcomes))


def _receipts(db: Session, plan_id: int, rng: random.Random) -> None:
    """The clinic hears back from most patients who got a box (its staff record it)."""
    delivered = db.scalars(select(Stop).where(Stop.plan_id == plan_id, Stop.status == StopStatus.delivered)
                           .order_by(Stop.id)).unique().all()
    for stop in delivered:
        if rng.random() >= RECEIPT_SHARE:
            continue
        referral = db.scalar(select(Referral).join(Order, Order.referral_id == Referral.id)
                             .where(Order.id == stop.order_id))
        staff = db.scalar(select(Membership.user_id).where(Membership.organization_id == referral.clinic_id,
                                                           Membership.role == Role.clinic_staff)
                          .order_by(Membership.user_id).limit(1)) if referral else None
        if referral is None or staff is None:
            continue
        receipts.record_receipt(db, referral, received=True, note=None, actor_id=staff)


def _texts_for(db: Session, after_id: int, now: dt.datetime) -> None:
    """The texts the day's events call for, made as the text_event job would have made them then
    (the queued jobs find them made and do nothing); a program with texts off lists them unsent."""
    events = db.scalars(select(ReferralEvent).where(ReferralEvent.id > after_id).order_by(ReferralEvent.id))
    for event in events:
        at = event.at.replace(tzinfo=dt.UTC) if event.at.tzinfo is None else event.at
        made = outgoing.event_text(db, event, min(at, now))
        if made is not None:
            made.created_at = made.send_after


def _last_event_id(db: Session) -> int:
    return db.scalar(select(func.max(ReferralEvent.id))) or 0


def _backdate(db: Session, after_id: int, at: dt.datetime) -> None:
    """Events written since `after_id` that carry the time of writing (later than the simulated
    moment) move to that moment; events that name their own time (a confirmation's) keep it."""
    db.flush()
    db.execute(update(ReferralEvent).where(ReferralEvent.id > after_id, ReferralEvent.at > at)
               .values(at=at, recorded_at=at))
    db.execute(update(ReferralEvent).where(ReferralEvent.id > after_id, ReferralEvent.recorded_at > at,
                                           ReferralEvent.at <= at)
               .values(recorded_at=ReferralEvent.at))
