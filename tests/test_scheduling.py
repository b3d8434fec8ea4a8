"""When a standing order is due: cadence, weekday, start and end dates, pauses."""

import datetime as dt

from delivery.models import Cadence
from delivery.program.capacity import committed_boxes, expected_wait_weeks, fits
from delivery.program.scheduling import Recurrence, due_dates, is_due

TUESDAY = dt.date(2026, 12, 1)  # a Tuesday


def test_weekly_order_is_due_every_week_on_its_weekday() -> None:
    """A weekly Tuesday order starting on a Sunday is first due the Tuesday after."""
    rec = Recurrence(Cadence.weekly, 1, TUESDAY - dt.timedelta(days=2))
    assert list(due_dates(rec, TUESDAY - dt.timedelta(days=7), TUESDAY + dt.timedelta(days=14))) == [
        TUESDAY, TUESDAY + dt.timedelta(days=7), TUESDAY + dt.timedelta(days=14)]
    assert not is_due(rec, TUESDAY + dt.timedelta(days=1))


def test_biweekly_skips_every_other_week_and_end_date_stops_it() -> None:
    """Every two weeks counts from the first delivery; nothing after the end date."""
    rec = Recurrence(Cadence.biweekly, 1, TUESDAY, end_date=TUESDAY + dt.timedelta(days=30))
    assert list(due_dates(rec, TUESDAY, TUESDAY + dt.timedelta(days=60))) == [
        TUESDAY, TUESDAY + dt.timedelta(days=14), TUESDAY + dt.timedelta(days=28)]


def test_paused_order_is_skipped_through_its_pause_and_once_is_once() -> None:
    """A pause skips deliveries up to and including paused_until; a one-off happens once."""
    paused = Recurrence(Cadence.weekly, 1, TUESDAY, paused_until=TUESDAY + dt.timedelta(days=7))
    assert not is_due(paused, TUESDAY + dt.timedelta(days=7))
    assert is_due(paused, TUESDAY + dt.timedelta(days=14))
    once = Recurrence(Cadence.once, 1, TUESDAY)
    assert list(due_dates(once, TUESDAY, TUESDAY + dt.timedelta(days=30))) == [TUESDAY]


def test_capacity_counts_every_day_in_the_horizon() -> None:
    """A new weekly order fits only if every one of its delivery days has room."""
    existing = [(Recurrence(Cadence.weekly, 1, TUESDAY), 9),
                (Recurrence(Cadence.once, 1, TUESDAY + dt.timedelta(days=21)), 1)]
    load = committed_boxes(existing, TUESDAY, TUESDAY + dt.timedelta(weeks=8))
    new = Recurrence(Cadence.weekly, 1, TUESDAY)
    ahead = dt.timedelta(weeks=8)
    assert fits(10, load, new, 1, TUESDAY, ahead) is False  # week 4 would hold 11
    assert fits(11, load, new, 1, TUESDAY, ahead) is True
    assert fits(None, load, new, 50, TUESDAY, ahead) is True
    assert fits(10, load, new, 1, TUESDAY, dt.timedelta(weeks=2)) is True  # week 4 lies beyond the horizon


def test_expected_wait_is_unknown_without_history() -> None:
    """With no boxes freed recently the wait cannot be estimated; otherwise it rounds up."""
    assert expected_wait_weeks(4, 0) is None
    assert expected_wait_weeks(4, 2.0) == 3
