"""Program capacity: boxes per delivery day, as plain functions over dates and box counts."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable

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


def fits(capacity: int | None, load: Counter[dt.date], rec: Recurrence, boxes: int,
         start: dt.date, ahead: dt.timedelta) -> bool:
    """Whether an order of `boxes` fits under `capacity` on every one of its days `ahead` of start."""
    if capacity is None:
        return True
    return all(load[day] + boxes <= capacity for day in due_dates(rec, start, start + ahead))


def expected_wait_weeks(boxes_ahead: int, boxes_freed_per_week: float) -> int | None:
    """Weeks until a new request would be served, from the recent rate capacity frees (None: unknown)."""
    if boxes_freed_per_week <= 0:
        return None
    return max(1, math.ceil((boxes_ahead + 1) / boxes_freed_per_week))
