"""One clock: the time now (aware UTC) and, from it, a program's local date and time.

Every decision that depends on "now" (today, this week, link expiry, late against plan, session
timeouts) reads the clock in the Settings, so tests set the time instead of patching it.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@cache
def zone(name: str) -> dt.tzinfo:
    """The program's time zone; UTC when the stored name is unknown (so a typo never breaks a page)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


class Clock:
    """The system clock. Subclasses only change `now()`; everything else derives from it."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def local(self, timezone: str) -> dt.datetime:
        """The wall-clock time in `timezone` (an IANA name such as America/Los_Angeles)."""
        return self.now().astimezone(zone(timezone))

    def today(self, timezone: str) -> dt.date:
        """The date it is now where the program runs (not where the server runs)."""
        return self.local(timezone).date()


class FixedClock(Clock):
    """A clock that stands still until told otherwise: for tests and reproducible demos."""

    def __init__(self, at: dt.datetime) -> None:
        self.set(at)

    def set(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime (with a time zone).")
        self._at = at.astimezone(dt.UTC)

    def advance(self, by: dt.timedelta) -> None:
        self._at += by

    def now(self) -> dt.datetime:
        return self._at
