"""Receipts: clinic staff's word that the patient got the food (or did not), about the last delivery.

One write path for the API and the form. "Not received" after "delivered" opens an item on the
coordinators' review list, so a box that went missing is looked into.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import EventKind, Referral, ReferralEvent, ReviewItem, ReviewKind
from delivery.platform.errors import FieldError
from delivery.timeline import events as timeline
from delivery.timeline import payloads

DELIVERED = (EventKind.delivered, EventKind.left_at_door)
RECEIPTS = (EventKind.receipt_confirmed, EventKind.receipt_denied)
MAX_NOTE = 1000


class ReceiptError(FieldError):
    """A receipt that cannot be recorded; the message says why."""


def last_delivery(db: Session, referral_id: int) -> ReferralEvent | None:
    return db.scalar(select(ReferralEvent).where(ReferralEvent.referral_id == referral_id,
                                                 ReferralEvent.kind.in_(DELIVERED))
                     .order_by(ReferralEvent.sequence.desc()).limit(1))


def receipt_for(db: Session, referral_id: int, stop_id: int) -> ReferralEvent | None:
    for event in db.scalars(select(ReferralEvent).where(ReferralEvent.referral_id == referral_id,
                                                        ReferralEvent.kind.in_(RECEIPTS))):
        if event.data.get("stop_id") == stop_id:
            return event
    return None


def record_receipt(db: Session, referral: Referral, *, received: bool, note: str | None,
                   actor_id: int | None) -> ReferralEvent:
    """Confirm or deny receipt of the referral's latest delivery (the caller commits)."""
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise ReceiptError(f"Keep the note under {MAX_NOTE} characters.", "note")
    if not received and note is None:
        raise ReceiptError("Say what the patient told you (not at home, box missing…), so the food "
                           "bank can follow up.", "note")
    delivery = last_delivery(db, referral.id)
    if delivery is None:
        raise ReceiptError("Nothing has been delivered for this referral yet: there is no box to confirm.")
    stop_id, order_id = delivery.data["stop_id"], delivery.data["order_id"]
    if receipt_for(db, referral.id, stop_id) is not None:
        raise ReceiptError(f"The receipt of the delivery of {delivery.data['date']} is already recorded.")
    kind = EventKind.receipt_confirmed if received else EventKind.receipt_denied
    event = timeline.record(db, referral, kind, payloads.Receipt(note=note, stop_id=stop_id,
                                                                 order_id=order_id), actor_id=actor_id)
    if not received:
        db.add(ReviewItem(kind=ReviewKind.receipt_denied, patient_id=referral.patient_id,
                          food_bank_id=referral.food_bank_id,
                          message=f"Delivered on {delivery.data['date']}, but the clinic reports the "
                                  f"patient did not receive it: {note}"[:500],
                          details={"referral_id": referral.id, "stop_id": stop_id, "order_id": order_id}))
        db.flush()
    return event
