"""Program capacity: boxes per delivery day, as plain functions over dates and box counts."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable

from delivery.program.scheduling import Recurrence, due_dates

# A new standing order must fit on each of its delivery days in this horizon.
HORIZON = dt.timedelta(weeks=8)


def committed_boxes(orders: Iterable[tuple[Recurrence, int]], start: dt.date,
                    end: dt.date) -> Counter[dt.date]:
    """Boxes already promised on each delivery day from start to end, by (recurrence, boxes)."""
    load: Counter[dt.date] = Counter()
    for rec, boxes in orders:
        for day in due_dates(rec, start, end):
            load[day] += boxes
    return load


def fits(capacity: int | None, load: Counter[dt.date], rec: Recurrence, boxes: int,
         start: dt.date) -> bool:
    """Whether an order of `boxes` fits under `capacity` on every one of its days in the horizon."""
    if capacity is None:
        return True
    return all(load[day] + boxes <= capacity for day in due_dates(rec, start, start + HORIZON))


def expected_wait_weeks(boxes_ahead: int, boxes_freed_per_week: float) -> int | None:
    """Weeks until a new request would be served, from the recent rate capacity frees (None: unknown)."""
    if boxes_freed_per_week <= 0:
        return None
    return max(1, math.ceil((boxes_ahead + 1) / boxes_freed_per_week))
