"""A food bank's program settings: capacity, the delivery weekday, how planning spreads the day's
work across the volunteers who came, and how the program works (time at each door, the upstairs rule,
route-link grace, the capacity horizon, idle sign-out, box types).

Raising capacity moves waiting patients onto the program at once, in the same transaction.
Lowering it never drops anyone: orders already promised stay, new referrals wait until the load
falls under the new number, and the change says which days are over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.models import BoxType, Order, Organization, OrganizationKind, SpreadWork
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.errors import FieldError
from delivery.program import capacity, waitlist
from delivery.program.orders import WEEKDAYS

MAX_BOXES_PER_DAY = 10_000


class ProgramError(FieldError):
    """Settings the program cannot take; the message says why."""

    default_code = "settings_refused"


@dataclass(frozen=True)
class SettingsChange:
    changes: list[str]
    promoted: list[Order] = field(default_factory=list)
    over_capacity: list[tuple[dt.date, int]] = field(default_factory=list)
    """Delivery days (in the capacity horizon) already promised more boxes than the new capacity."""


def update_settings(db: Session, food_bank: Organization, *, boxes_per_delivery_day: int,
                    delivery_weekday: int, actor_id: int | None, today: dt.date,
                    spread_work: SpreadWork | None = None) -> SettingsChange:
    """Set capacity and the default delivery weekday; promote the waitlist into any new room.

    The weekday is the default for new orders; existing orders keep theirs. `spread_work` (None:
    unchanged) applies from the next time a day is planned.
    """
    if food_bank.kind != OrganizationKind.food_bank:
        raise ProgramError(f"{food_bank.name} is not a food bank program.")
    if not 1 <= boxes_per_delivery_day <= MAX_BOXES_PER_DAY:
        raise ProgramError(f"Boxes per delivery day: from 1 to {MAX_BOXES_PER_DAY:,}.",
                           "boxes_per_delivery_day")
    if not 0 <= delivery_weekday <= 6:
        raise ProgramError("Choose a weekday, Monday to Sunday.", "delivery_weekday")
    changes = []
    if boxes_per_delivery_day != food_bank.boxes_per_delivery_day:
        before = food_bank.boxes_per_delivery_day
        changes.append(f"boxes per delivery day {before if before is not None else 'unlimited'} → "
                       f"{boxes_per_delivery_day}")
    if delivery_weekday != food_bank.delivery_weekday:
        old = food_bank.delivery_weekday
        before_day = WEEKDAYS[old] if old is not None else "none"
        changes.append(f"delivery day {before_day} → {WEEKDAYS[delivery_weekday]}")
    if spread_work is not None and spread_work != food_bank.spread_work:
        changes.append(f"spread work across volunteers {food_bank.spread_work} → {spread_work}")
        food_bank.spread_work = spread_work
    if not changes:
        raise ProgramError("Nothing to change: these are the program's current settings.")
    food_bank.boxes_per_delivery_day = boxes_per_delivery_day
    food_bank.delivery_weekday = delivery_weekday
    db.flush()
    promoted = waitlist.promote(db, food_bank, today, actor_id)
    load = waitlist.committed(db, food_bank, today)
    over = sorted((day, boxes) for day, boxes in load.items()
                  if boxes > boxes_per_delivery_day
                  and day <= today + capacity.horizon(food_bank.waitlist_horizon_weeks))
    return SettingsChange(changes, promoted, over)


# --- how the program works: choices that used to be constants in code ---------------------------


@dataclass(frozen=True)
class Choice:
    """One program setting a coordinator may change: its column, words for the form, its bounds."""

    name: str
    label: str
    help: str
    low: int
    high: int
    unit: str


CHOICES = (
    Choice("service_base_s", "Time at each door", "Seconds a driver spends at every stop: parking, walking "
           "to the door, ringing. The planner adds the two below.", 0, 1800, "s"),
    Choice("service_per_box_s", "Time per box", "Seconds added for each box carried.", 0, 600, "s"),
    Choice("service_per_floor_s", "Time per floor without a lift", "Seconds added per box for each floor "
           "climbed by stairs.", 0, 600, "s"),
    Choice("link_grace_hours", "Route links work until", "Hours after midnight at the end of the route "
           "day: drivers finishing late still reach their route.", 0, 18, "h"),
    Choice("waitlist_horizon_weeks", "Capacity horizon", "Weeks ahead a new standing order must fit under "
           "the boxes per delivery day; otherwise it waits on the waitlist.", 1, 26, "weeks"),
    Choice("max_failed_attempts", "Failed attempts before review", "Failed deliveries in a row after which "
           "an order is no longer rescheduled by itself and waits for a coordinator.", 1, 10, "attempts"),
    Choice("staff_idle_minutes", "Staff idle sign-out", "Minutes without activity before coordinators, "
           "clinic staff and admins are signed out (HIPAA automatic logoff; at most 30).", 5, 30, "min"),
    Choice("driver_idle_minutes", "Driver idle sign-out", "Minutes without activity before a driver is "
           "signed out; longer, as they drive between stops.", 15, 240, "min"),
)
WAITLIST_REJECTED_HELP = ("For clinics connected through FHIR: a referral that has to wait is answered "
                         "'rejected, no capacity' (the SDOH guide's strict reading) instead of 'accepted, "
                         "waitlisted'. The patient still waits on the waitlist here either way.")
UPSTAIRS_HELP = ("Stops above the first floor without a lift go only to drivers who carry boxes upstairs. "
                 "Turn off when every driver does, or boxes are left at the building door.")


LEND_HELP = ("A clinic past its weekly referral allocation may use what other clinics left unused this "
             "week, instead of its referral waiting on the waitlist.")


YES_NO = {True: "yes", False: "no"}


def _switch(food_bank: Organization, name: str, wanted: bool | None, said: str,
            words: dict[bool, str] = YES_NO) -> str | None:
    """A yes/no choice set as wanted, and the change in words (None: not given, or unchanged)."""
    before = getattr(food_bank, name)
    if wanted is None or wanted == before:
        return None
    setattr(food_bank, name, wanted)
    return f"{said}{words[before]} → {words[wanted]}"


def update_choices(db: Session, ctx: AuditContext, food_bank: Organization, values: dict[str, int], *,
                   require_upstairs: bool, box_types: list[str],
                   lend_allocation: bool | None = None, waitlisted_is_rejected: bool | None = None
                   ) -> list[str]:
    """Change how the program works; every change is written to the audit trail with its old value.
    Returns the changes, in words (refused as a whole when any value is out of bounds).
    `lend_allocation` and `waitlisted_is_rejected` None leave those choices as they are."""

    changes = []
    for choice in CHOICES:
        value = values[choice.name]
        if not choice.low <= value <= choice.high:
            raise ProgramError(f"{choice.label}: from {choice.low} to {choice.high} {choice.unit}.",
                               choice.name)
        before = getattr(food_bank, choice.name)
        if value != before:
            changes.append(f"{choice.label.lower()} {before} → {value} {choice.unit}")
            setattr(food_bank, choice.name, value)
    changes += [said for said in (
        _switch(food_bank, "require_upstairs", require_upstairs,
                "upstairs stops need a driver who carries upstairs: "),
        _switch(food_bank, "lend_allocation", lend_allocation, "lend clinics' unused allocation: "),
        _switch(food_bank, "waitlisted_is_rejected", waitlisted_is_rejected, "a waitlisted FHIR referral is ",
                {True: "rejected (no capacity)", False: "accepted (waitlisted)"}),
    ) if said]
    offered = sorted({BoxType(b).value for b in box_types})
    if not offered:
        raise ProgramError("Offer at least one box type.", "box_types")
    if offered != sorted(food_bank.box_types or [b.value for b in BoxType]):
        changes.append(f"box types → {', '.join(offered)}")
        food_bank.box_types = offered
    if not changes:
        raise ProgramError("Nothing to change: these are the program's current settings.")
    for change in changes:
        audit.record(db, ctx, "U", "program_settings", food_bank.id, detail=change)
    db.flush()
    return changes
