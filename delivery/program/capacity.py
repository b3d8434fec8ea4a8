"""Program capacity: boxes per delivery day, as plain functions over dates and box counts."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from delivery.program.scheduling import Recurrence, due_dates


def horizon(weeks: int) -> dt.timedelta:
    """How far ahead a new standing order must fit: the program's waitlist horizon, in weeks."""
    return dt.timedelta(weeks=weeks)


def committed_boxes(orders: Iterable[tuple[Recurrence, int]], start: dt.date,
                    end: dt.date) -> Counter[dt.date]:
    """Boxes already promised on each delivery day from start to end, by (recurrence, boxes)."""
    load: Counter[dt.date] = Counter()
    for rec, boxes in orders:
        for day in due_dates(rec, start, end):
            load[day] += boxes
    return load


@dataclass(frozen=True)
class FullDay:
    """A delivery day without room for an order: the boxes promised there, out of the capacity."""

    day: dt.date
    promised: int
    capacity: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.promised)


def first_full_day(capacity: int | None, load: Counter[dt.date], rec: Recurrence, boxes: int,
                   start: dt.date, ahead: dt.timedelta) -> FullDay | None:
    """The first of the order's days `ahead` of `start` where `boxes` more would exceed `capacity`;
    None when it fits on every one (a standing order needs room on all of them, not only on the
    next delivery day)."""
    if capacity is None:
        return None
    for day in due_dates(rec, start, start + ahead):
        if load[day] + boxes > capacity:
            return FullDay(day, load[day], capacity)
    return None


def fits(capacity: int | None, load: Counter[dt.date], rec: Recurrence, boxes: int,
         start: dt.date, ahead: dt.timedelta) -> bool:
    """Whether an order of `boxes` fits under `capacity` on every one of its days `ahead` of start."""
    return first_full_day(capacity, load, rec, boxes, start, ahead) is None


def expected_wait_weeks(boxes_ahead: int, boxes_freed_per_week: float) -> int | None:
    """Weeks until a new request would be served, from the recent rate capacity frees (None: unknown)."""
    if boxes_freed_per_week <= 0:
        return None
    return max(1, math.ceil((boxes_ahead + 1) / boxes_freed_per_week))
