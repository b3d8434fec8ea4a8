"""When an Order is due: plain date arithmetic on cadence, weekday, start/end and pauses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from delivery.models import Cadence


@dataclass(frozen=True)
class Recurrence:
    """The parts of an Order that decide its delivery dates."""

    cadence: Cadence
    weekday: int  # 0 = Monday
    start_date: dt.date
    end_date: dt.date | None = None
    paused_until: dt.date | None = None


def first_date(rec: Recurrence) -> dt.date:
    """The first delivery: the order's weekday on or after its start date."""
    return rec.start_date + dt.timedelta(days=(rec.weekday - rec.start_date.weekday()) % 7)


def is_due(rec: Recurrence, day: dt.date) -> bool:
    """Whether the order has a delivery on this day (pauses included: paused through paused_until)."""
    first = first_date(rec)
    if day < first or (rec.end_date is not None and day > rec.end_date):
        return False
    if rec.paused_until is not None and day <= rec.paused_until:
        return False
    if rec.cadence == Cadence.once:
        return day == first
    weeks, remainder = divmod((day - first).days, 7)
    if remainder:
        return False
    return rec.cadence == Cadence.weekly or weeks % 2 == 0


def due_dates(rec: Recurrence, start: dt.date, end: dt.date) -> Iterator[dt.date]:
    """Every delivery date of the order from start to end inclusive."""
    day = max(start, first_date(rec))
    day += dt.timedelta(days=(rec.weekday - day.weekday()) % 7)
    while day <= end:
        if is_due(rec, day):
            yield day
        day += dt.timedelta(days=7)


def next_weekday(weekday: int, on_or_after: dt.date) -> dt.date:
    return on_or_after + dt.timedelta(days=(weekday - on_or_after.weekday()) % 7)
