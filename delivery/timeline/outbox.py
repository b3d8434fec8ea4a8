"""The outbox row written with each event: what the referring clinic's webhooks will be told.

The relay that sends these rows (issue 11) never reads anything else, so the body is complete and
thin: the Standard Webhooks body of DESIGN.md with ids and states only, never names, addresses,
phones or notes.
"""

from __future__ import annotations

import uuid
from typing import Any

from delivery.models import OutboxMessage, OutboxState, Referral, ReferralEvent

TOLD_IDS = ("order_id", "stop_id")
"""The payload ids a webhook carries beside the referral's (DESIGN.md: ids and states only)."""


def body(event: ReferralEvent, referral: Referral) -> dict[str, Any]:
    """The webhook body for one event: type, time, and ids, status and sequence as data."""
    data: dict[str, Any] = {"referral_id": referral.id}
    data.update({key: event.data[key] for key in TOLD_IDS if event.data.get(key) is not None})
    data.update(status=referral.status, sequence=event.sequence)
    return {"type": event.kind, "timestamp": event.at.isoformat(), "data": data}


def message_for(event: ReferralEvent, referral: Referral) -> OutboxMessage:
    """A pending outbox row for the event, with a `webhook-id` that stays the same on every retry."""
    return OutboxMessage(webhook_id=f"msg_{uuid.uuid4().hex}", referral_id=referral.id,
                         clinic_id=referral.clinic_id, event_id=event.id, kind=event.kind,
                         payload=body(event, referral), created_at=event.recorded_at,
                         state=OutboxState.pending, attempts=0, next_attempt_at=event.recorded_at)
