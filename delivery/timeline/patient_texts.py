"""Which events the patient hears about by text, and the jobs that make those texts.

The texts themselves (consent, language, quiet hours, Twilio) are `delivery.loop.messages`; this
module only names its jobs, so the writers of events and of a publication can queue them in their
own transaction without knowing more.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from delivery.models import EventKind, ReferralEvent
from delivery.platform import jobs

EVENT_JOB = "text_event"
"""Make the text an event calls for (handler: `delivery.loop.messages.outgoing.from_event`)."""
DAY_BEFORE_JOB = "text_day_before"
"""Make the day-before texts of a published plan (handler: `outgoing.day_before`)."""

TOLD = frozenset({EventKind.delivered, EventKind.left_at_door, EventKind.rescheduled})
"""A failed attempt is told once it is rescheduled, so the text can name the next day."""


def queue_for_event(db: Session, event: ReferralEvent) -> None:
    if event.kind in TOLD:
        jobs.enqueue(db, EVENT_JOB, {"event_id": event.id})


def queue_day_before(db: Session, plan_id: int) -> None:
    """After each publication: a republished day texts the stops it gained (the others have theirs)."""
    jobs.enqueue(db, DAY_BEFORE_JOB, {"plan_id": plan_id}, dedupe_key=f"plan:{plan_id}")
