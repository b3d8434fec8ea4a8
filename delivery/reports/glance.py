"""A program's week at a glance, for its coordinators: today's and the next delivery day with their
state, and what waits for a coordinator (review queue, waitlist, drivers' exceptions). Reads only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.field.confirmations import waiting_exception
from delivery.models import (
    Confirmation,
    Holiday,
    Order,
    OrderStatus,
    Organization,
    Plan,
    PlanStatus,
    ReviewItem,
    Route,
    Stop,
    StopStatus,
)
from delivery.program.scheduling import next_weekday


@dataclass(frozen=True)
class Day:
    """A delivery day as it stands: closed, not opened yet, or its plan's state and progress."""

    date: dt.date
    plan: Plan | None
    closed: str | None  # the holiday's name
    stops: int = 0  # on the day, not removed
    routes: int = 0
    delivered: int = 0
    failed: int = 0

    @property
    def state(self) -> str:
        if self.closed is not None:
            return f"Closed: {self.closed}."
        if self.plan is None:
            return "Not opened yet."
        if self.plan.status == PlanStatus.draft:
            return f"Draft: {_count(self.stops, 'stop')}, no routes yet."
        if self.plan.status == PlanStatus.planned:
            return f"Planned: {_count(self.routes, 'route')} for {_count(self.stops, 'stop')}, not published."
        to_go = self.stops - self.delivered - self.failed
        said = "Done" if self.plan.status == PlanStatus.done else f"Published: {_count(self.routes, 'route')}"
        return f"{said}: {self.delivered} delivered, {self.failed} not delivered, {to_go} to go."


@dataclass(frozen=True)
class Exceptions:
    """Drivers' reports (failed attempts, notes) on one day that no coordinator has handled."""

    plan_id: int
    date: dt.date
    count: int


@dataclass(frozen=True)
class Glance:
    food_bank: Organization
    today: Day | None  # None: no deliveries today
    next_day: Day | None  # None: the program has no delivery weekday and nothing planned ahead
    open_reviews: int
    waiting: int
    exceptions: list[Exceptions]


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _day(db: Session, food_bank: Organization, date: dt.date, plan: Plan | None) -> Day:
    closed = db.scalar(select(Holiday.name).where(Holiday.food_bank_id == food_bank.id, Holiday.date == date))
    if plan is None:
        return Day(date, None, closed)
    by_status: dict[str, int] = {status: n for status, n in db.execute(
        select(Stop.status, func.count(Stop.id))
        .where(Stop.plan_id == plan.id, Stop.status != StopStatus.removed).group_by(Stop.status))}
    routes = db.scalar(select(func.count(Route.id)).where(Route.plan_id == plan.id)) or 0
    return Day(date, plan, closed, stops=sum(by_status.values()), routes=routes,
               delivered=by_status.get(StopStatus.delivered, 0), failed=by_status.get(StopStatus.failed, 0))


def glance(db: Session, food_bank: Organization, today: dt.date) -> Glance:
    """The program's week at a glance on `today` (the program's local date)."""
    plans = {p.date: p for p in db.scalars(select(Plan).where(
        Plan.food_bank_id == food_bank.id, Plan.date >= today, Plan.date <= today + dt.timedelta(weeks=1)))}
    delivers_today = food_bank.delivery_weekday == today.weekday() or today in plans
    ahead = sorted(d for d in plans if d > today)
    if food_bank.delivery_weekday is not None:
        ahead.append(next_weekday(food_bank.delivery_weekday, today + dt.timedelta(days=1)))
    next_date = min(ahead) if ahead else None

    open_reviews = db.scalar(select(func.count(ReviewItem.id)).where(
        ReviewItem.food_bank_id == food_bank.id, ReviewItem.resolved_at.is_(None))) or 0
    waiting = db.scalar(select(func.count(Order.id)).where(
        Order.food_bank_id == food_bank.id, Order.status == OrderStatus.waitlisted)) or 0
    exceptions = [Exceptions(plan_id, date, count) for plan_id, date, count in db.execute(
        select(Plan.id, Plan.date, func.count(Confirmation.id))
        .join(Stop, Stop.id == Confirmation.stop_id).join(Plan, Plan.id == Stop.plan_id)
        .where(Plan.food_bank_id == food_bank.id, waiting_exception())
        .group_by(Plan.id, Plan.date).order_by(Plan.date.desc()))]
    return Glance(food_bank,
                  today=_day(db, food_bank, today, plans.get(today)) if delivers_today else None,
                  next_day=_day(db, food_bank, next_date, plans.get(next_date)) if next_date else None,
                  open_reviews=open_reviews, waiting=waiting, exceptions=exceptions)
