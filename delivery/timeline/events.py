"""The referral timeline: every change a clinic should hear about becomes an event in the same
transaction as the change itself (later, the same place also writes the outbox row)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from delivery.models import Referral, ReferralEvent


def record(db: Session, referral: Referral, kind: str, message: str,
           actor_id: int | None = None) -> ReferralEvent:
    """Add a timeline event to the caller's transaction; it commits or rolls back with the change."""
    event = ReferralEvent(referral_id=referral.id, kind=kind, message=message[:1000],
                          actor_id=actor_id)
    db.add(event)
    return event
