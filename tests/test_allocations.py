"""The allocation arithmetic: program weeks, what is left of a clinic's week, lending, quiet clinics."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from delivery.program.allocations import (
    Ledger,
    QuietWeek,
    Share,
    allowance,
    program_week,
    quiet_weeks,
    units,
    week_of,
)

LA = ZoneInfo("America/Los_Angeles")
MON = dt.date(2026, 3, 2)  # a Monday


@pytest.mark.parametrize("day", [MON + dt.timedelta(days=n) for n in range(7)])
def test_a_week_runs_monday_to_sunday(day: dt.date) -> None:
    """Every day of a week belongs to the week of its Monday."""
    assert week_of(day) == (MON, MON + dt.timedelta(days=6))


def test_sunday_night_in_oakland_is_still_that_week_though_monday_in_utc() -> None:
    """The week is read in the program's time zone, not the server's."""
    late_sunday = dt.datetime(2026, 3, 9, 6, 30, tzinfo=dt.UTC)  # Sunday 22:30 in Oakland
    assert program_week(late_sunday, LA) == (MON, dt.date(2026, 3, 8))
    assert program_week(late_sunday, dt.UTC)[0] == dt.date(2026, 3, 9)


def test_the_week_of_the_daylight_saving_change_is_seven_days() -> None:
    """The spring-forward Sunday (8 March 2026) still closes its week; the Monday after opens the next."""
    assert program_week(dt.datetime(2026, 3, 8, 11, 0, tzinfo=LA), LA) == (MON, dt.date(2026, 3, 8))
    assert program_week(dt.datetime(2026, 3, 9, 0, 30, tzinfo=LA), LA)[0] == dt.date(2026, 3, 9)


def test_units_count_patients_or_boxes() -> None:
    """A new patient counts one whatever their boxes; a boxes allocation counts the boxes."""
    assert (units("new_patients", 3), units("boxes", 3)) == (1, 3)


def test_what_is_left_is_the_allocation_less_what_was_placed() -> None:
    """2 a week, 1 placed: 1 left; 2 placed: nothing left, and the next is not admitted."""
    one = allowance([Share(1, "new_patients", 2, 1)], 1, lending=False)
    two = allowance([Share(1, "new_patients", 2, 2)], 1, lending=False)
    assert (one.remaining, one.admits(1)) == (1, True)
    assert (two.remaining, two.admits(1)) == (0, False)


def test_a_boxes_allocation_refuses_an_order_bigger_than_what_is_left() -> None:
    """Boxes: 5 a week with 4 placed admits a 1-box order but not a 2-box one."""
    left = allowance([Share(1, "boxes", 5, 4)], 1, lending=False)
    assert left.admits(units("boxes", 1)) and not left.admits(units("boxes", 2))


def test_without_lending_another_clinics_unused_allocation_does_not_help() -> None:
    shares = [Share(1, "new_patients", 2, 2), Share(2, "new_patients", 5, 0)]
    assert allowance(shares, 1, lending=False).remaining == 0


def test_lending_offers_what_other_clinics_left_unused_less_what_was_borrowed() -> None:
    """Clinic 2 leaves 3 unused and clinic 3 already borrowed 1: clinic 1 may borrow 2 more."""
    shares = [Share(1, "new_patients", 2, 2), Share(2, "new_patients", 5, 2), Share(3, "new_patients", 1, 2)]
    left = allowance(shares, 1, lending=True)
    assert (left.own_left, left.lendable, left.remaining) == (0, 2, 2)


def test_a_lender_keeps_its_own_allocation_in_full() -> None:
    """Clinic 2 lent 2 of its 3; it may still use all 3 of its own."""
    shares = [Share(1, "new_patients", 1, 3), Share(2, "new_patients", 3, 0)]
    assert allowance(shares, 2, lending=True).remaining == 3


def test_lending_only_between_clinics_counting_the_same_unit() -> None:
    """Unused boxes are not lent as patients."""
    shares = [Share(1, "new_patients", 1, 1), Share(2, "boxes", 10, 0)]
    assert allowance(shares, 1, lending=True).remaining == 0


def test_the_ledger_spends_the_week_order_by_order() -> None:
    """Orders taken one after another use the allocation; a clinic without one is never held."""
    ledger = Ledger([Share(1, "new_patients", 2, 0)], lending=False)
    for _ in range(2):
        assert ledger.admits(1, 1)
        ledger.take(1, 1)
    assert not ledger.admits(1, 1)
    assert ledger.admits(99, 6) and ledger.allowance(99) is None


def referred(*counts: int, last_monday: dt.date) -> dict[dt.date, int]:
    return {last_monday - dt.timedelta(weeks=n): c for n, c in enumerate(reversed(counts))}


def test_four_quiet_weeks_in_a_row_flag_the_clinic() -> None:
    """Allocation 10, referrals 1, 0, 4, 2 in the last four whole weeks: far below (under half) each."""
    today = dt.date(2026, 4, 1)  # a Wednesday; the last whole week began Monday 23 March
    counts = referred(1, 0, 4, 2, last_monday=dt.date(2026, 3, 23))
    weeks = quiet_weeks(counts, allocation=10, starts_on=dt.date(2026, 1, 1), today=today)
    assert weeks == [QuietWeek(dt.date(2026, 3, 2), 1), QuietWeek(dt.date(2026, 3, 9), 0),
                     QuietWeek(dt.date(2026, 3, 16), 4), QuietWeek(dt.date(2026, 3, 23), 2)]


@pytest.mark.parametrize(("counts", "starts_on", "allocation"), [
    ((1, 0, 5, 2), dt.date(2026, 1, 1), 10),  # one week at half: not far below
    ((0, 0, 0, 0), dt.date(2026, 3, 9), 10),  # the agreement covers only three of the weeks
    ((0, 0, 0, 0), dt.date(2026, 1, 1), 0),  # nothing allocated: nothing to fall short of
])
def test_no_flag_without_four_whole_quiet_weeks(counts: tuple[int, ...], starts_on: dt.date,
                                                allocation: int) -> None:
    weeks = quiet_weeks(referred(*counts, last_monday=dt.date(2026, 3, 23)), allocation=allocation,
                        starts_on=starts_on, today=dt.date(2026, 4, 1))
    assert weeks == []


def test_this_weeks_referrals_do_not_count_yet() -> None:
    """A busy current week does not hide four quiet whole weeks before it."""
    counts = referred(0, 0, 0, 0, last_monday=dt.date(2026, 3, 23)) | {dt.date(2026, 3, 30): 50}
    weeks = quiet_weeks(counts, allocation=10, starts_on=dt.date(2026, 1, 1), today=dt.date(2026, 4, 1))
    assert len(weeks) == 4
