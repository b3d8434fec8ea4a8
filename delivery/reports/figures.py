"""The arithmetic of the funder report, as plain functions over plain values (no database).

- Median: the middle value (the mean of the two middle ones for an even count).
- 90th percentile: nearest rank, so it is a value that happened: "nine in ten patients had their
  first box within N days".
- Cost per delivered box: the box's cost plus the miles volunteers drove at the mileage rate,
  divided by the boxes delivered.
- Route miles and hours are shared among clinics by the share of the route's attempted stops.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

METRES_PER_MILE = 1609.344


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def p90(values: Sequence[float]) -> float | None:
    """The 90th percentile by nearest rank (the smallest value with 90 % of values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[math.ceil(0.9 * len(ordered)) - 1])


def rate(part: int, whole: int) -> float | None:
    """part / whole to four decimals; None when there is nothing to divide."""
    return round(part / whole, 4) if whole else None


def miles(metres: float) -> float:
    return metres / METRES_PER_MILE


def cost_per_box(boxes: int, miles_driven: float, box_cost_cents: int,
                 mileage_rate_cents: int) -> float | None:
    """Dollars per delivered box: (boxes × box cost + miles × rate) / boxes; None with no box delivered."""
    if boxes == 0:
        return None
    cents = boxes * box_cost_cents + miles_driven * mileage_rate_cents
    return round(cents / boxes / 100, 2)


def shares(stops_by_clinic: Mapping[int, int]) -> dict[int, float]:
    """Each clinic's share of a route: its attempted stops over the route's attempted stops."""
    total = sum(stops_by_clinic.values())
    return {clinic: count / total for clinic, count in stops_by_clinic.items()} if total else {}


def week_start(day: dt.date) -> dt.date:
    """The Monday of the day's week."""
    return day - dt.timedelta(days=day.weekday())


def month_bounds(day: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last day of the day's month."""
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


@dataclass(frozen=True)
class Wait:
    """One stay on the waitlist: from `start` until `end` (None: still waiting), and how it ended."""

    referral_id: int
    start: dt.datetime
    end: dt.datetime | None
    moved_off: bool


WAIT_ENDS = ("moved_off_waitlist", "ended", "override")


def waits(events: Iterable[tuple[int, str, dt.datetime]]) -> list[Wait]:
    """Stays on the waitlist from (referral id, kind, at) events in timeline order: a `waitlisted`
    event opens one; moving off the waitlist, the order ending or a coordinator's override closes it."""
    open_since: dict[int, dt.datetime] = {}
    done: list[Wait] = []
    for referral_id, kind, at in events:
        if kind == "waitlisted":
            open_since.setdefault(referral_id, at)
        elif kind in WAIT_ENDS and referral_id in open_since:
            done.append(Wait(referral_id, open_since.pop(referral_id), at, kind == "moved_off_waitlist"))
    return done + [Wait(r, start, None, False) for r, start in open_since.items()]
