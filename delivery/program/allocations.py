"""Referral allocations as plain functions: a clinic's weekly share of the program, what is left of
it this week, what other clinics may lend, and when a clinic has referred far below it for weeks.

A week is the program's week, Monday to Sunday in the program's time zone: the dates here are
program dates (`Clock.today(food_bank.timezone)`), so a referral at 11 pm on a Sunday in Oakland
counts in that Sunday's week even though it is Monday in UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from delivery.models import AllocationUnit

FAR_BELOW = 0.5  # "far below" the allocation: under half of it
QUIET_WEEKS = 4  # whole weeks in a row far below before the food bank is told


def week_of(day: dt.date) -> tuple[dt.date, dt.date]:
    """The program week holding `day`: its Monday and its Sunday."""
    monday = day - dt.timedelta(days=day.weekday())
    return monday, monday + dt.timedelta(days=6)


def program_week(now: dt.datetime, tz: dt.tzinfo) -> tuple[dt.date, dt.date]:
    """The program week at the instant `now`, read in the program's time zone."""
    return week_of(now.astimezone(tz).date())


def units(unit: str, boxes: int) -> int:
    """What one order uses of an allocation: one new patient, or its boxes per delivery."""
    return boxes if unit == AllocationUnit.boxes else 1


@dataclass(frozen=True)
class Share:
    """One clinic's allocation for a week and what it has used of it."""

    clinic_id: int
    unit: str
    allocation: int
    used: int

    @property
    def own_left(self) -> int:
        return max(0, self.allocation - self.used)

    @property
    def borrowed(self) -> int:
        """How far past its own allocation the clinic went (on lent allocation)."""
        return max(0, self.used - self.allocation)


@dataclass(frozen=True)
class Allowance:
    """What a clinic may still refer onto the program this week."""

    unit: str
    allocation: int
    used: int
    own_left: int
    lendable: int  # unused allocation of other clinics it may use (0 while lending is off)
    lending: bool

    @property
    def remaining(self) -> int:
        return self.own_left + self.lendable

    def admits(self, needed: int) -> bool:
        """Whether an order using `needed` units fits in what is left (own first, then lent)."""
        return needed <= self.remaining


def allowance(shares: Iterable[Share], clinic_id: int, *, lending: bool) -> Allowance:
    """The clinic's allowance this week from every partnered clinic's share of the program.

    With lending on, a clinic past its own allocation may use what the other clinics (counting in
    the same unit) leave unused, less what any clinic has already borrowed this week: a lender
    keeps its own allocation in full, lending only spends what nobody else has taken yet.
    """
    by_clinic = {share.clinic_id: share for share in shares}
    mine = by_clinic[clinic_id]
    lendable = 0
    if lending:
        alike = [s for s in by_clinic.values() if s.unit == mine.unit]
        unused = sum(s.own_left for s in alike if s.clinic_id != clinic_id)
        lendable = max(0, unused - sum(s.borrowed for s in alike))
    return Allowance(mine.unit, mine.allocation, mine.used, mine.own_left, lendable, lending)


class Ledger:
    """This week's shares of every partnered clinic, kept up to date while orders are placed on the
    program one after another (intake, or the waitlist served in order). A clinic without an
    agreement in force is not held to any allocation."""

    def __init__(self, shares: Iterable[Share], *, lending: bool) -> None:
        self._shares = {share.clinic_id: share for share in shares}
        self.lending = lending

    def allowance(self, clinic_id: int) -> Allowance | None:
        if clinic_id not in self._shares:
            return None
        return allowance(self._shares.values(), clinic_id, lending=self.lending)

    def admits(self, clinic_id: int, boxes: int) -> bool:
        """Whether an order of `boxes` from the clinic fits what is left of its allocation."""
        left = self.allowance(clinic_id)
        return left is None or left.admits(units(left.unit, boxes))

    def take(self, clinic_id: int, boxes: int) -> None:
        """An order of `boxes` from the clinic was placed on the program."""
        share = self._shares.get(clinic_id)
        if share is not None:
            self._shares[clinic_id] = replace(share, used=share.used + units(share.unit, boxes))


@dataclass(frozen=True)
class QuietWeek:
    monday: dt.date
    referred: int


def quiet_weeks(referred: Mapping[dt.date, int], *, allocation: int, starts_on: dt.date,
                today: dt.date, weeks: int = QUIET_WEEKS) -> list[QuietWeek]:
    """The last `weeks` whole weeks before this one when the clinic referred far below its allocation
    in every one of them (units referred by Monday of each week), oldest first; empty when any of
    them was not far below, or the agreement did not cover all of them yet."""
    this_monday, _ = week_of(today)
    mondays = [this_monday - dt.timedelta(weeks=n) for n in range(weeks, 0, -1)]
    if allocation <= 0 or mondays[0] < starts_on:
        return []
    found = [QuietWeek(monday, referred.get(monday, 0)) for monday in mondays]
    if all(week.referred < allocation * FAR_BELOW for week in found):
        return found
    return []
