"""The outbox row written with each event: what the referring clinic's webhooks will be told.

The sender (`delivery.loop.sender`, the `outbox` job) never reads anything else, so the body is
complete and thin: the Standard Webhooks body of DESIGN.md with ids and states only, never names,
addresses, phones or notes. `queue` asks a worker to send, in the same transaction as the row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.orm import Session

from delivery.models import Job, OutboxMessage, OutboxState, Referral, ReferralEvent
from delivery.platform import jobs

JOB_KIND = "outbox"
"""The job that sends outbox messages (its handler is `delivery.loop.sender.run`)."""
NEW_KEY, RETRY_KEY = "new", "retry"
"""Dedupe keys: one queued job for new messages (run now), one for the next retry (the sender's
timer), so a new event never has to move the timer's row."""

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


def queue(db: Session, run_after: dt.datetime | None = None) -> Job:
    """Ask a worker to send what is due, in the caller's transaction: now (a new message), or at
    `run_after` (the next retry). One run sends everything due, so one queued job of each is enough."""
    return jobs.enqueue(db, JOB_KIND, {}, run_after=run_after,
                        dedupe_key=NEW_KEY if run_after is None else RETRY_KEY)
