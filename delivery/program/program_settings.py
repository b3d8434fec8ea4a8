"""A food bank's program settings: boxes per delivery day and the delivery weekday.

Raising capacity moves waiting patients onto the program at once, in the same transaction.
Lowering it never drops anyone: orders already promised stay, new referrals wait until the load
falls under the new number, and the change says which days are over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from delivery.models import Order, Organization, OrganizationKind
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
                    delivery_weekday: int, actor_id: int | None, today: dt.date) -> SettingsChange:
    """Set capacity and the default delivery weekday; promote the waitlist into any new room.

    The weekday is the default for new orders; existing orders keep theirs.
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
