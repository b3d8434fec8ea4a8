"""What the funder report counts as the cost of a box and of a volunteer's mile (program settings)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from delivery.models import Organization
from delivery.platform.errors import FieldError

MAX_BOX_COST_CENTS = 100_000  # $1,000: anything above is a typo
MAX_MILEAGE_RATE_CENTS = 1_000  # $10 a mile


class CostError(FieldError):
    """A cost the program cannot take; the message says why."""


def set_costs(db: Session, food_bank: Organization, *, box_cost_cents: int, mileage_rate_cents: int) -> None:
    """Set the cost of a box and the mileage rate, in cents (the caller commits)."""
    if not 0 <= box_cost_cents <= MAX_BOX_COST_CENTS:
        raise CostError(f"A box's cost: from $0 to ${MAX_BOX_COST_CENTS // 100:,}.", "box_cost")
    if not 0 <= mileage_rate_cents <= MAX_MILEAGE_RATE_CENTS:
        raise CostError(f"The mileage rate: from $0 to ${MAX_MILEAGE_RATE_CENTS // 100} a mile.",
                        "mileage_rate")
    food_bank.box_cost_cents, food_bank.mileage_rate_cents = box_cost_cents, mileage_rate_cents
    db.flush()
