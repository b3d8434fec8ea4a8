"""The referral timeline: the one function that writes an event, and the one that reads a timeline.

Every change a clinic should hear about becomes an event in the same transaction as the change
itself, together with its outbox row and the job that sends it, so nothing is told that did not
happen and nothing happens untold. Events are data (a kind from `EventKind`, a typed payload); the
sentence is rendered when read (`delivery.timeline.text`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.models import EventKind, Referral, ReferralEvent, utcnow
from delivery.timeline import outbox, patient_texts, payloads, text
from delivery.timeline.payloads import PAYLOADS, Payload


def record(db: Session, referral: Referral, kind: EventKind, data: Payload, *,
           actor_id: int | None = None, occurred_at: dt.datetime | None = None) -> ReferralEvent:
    """Add an event and its outbox row to the caller's transaction; they commit or roll back with
    the change. `data` must be the payload type of `kind` (`payloads.PAYLOADS`); `occurred_at` is
    when it happened (default: now). Set the referral's new status before calling: the outbox
    message tells it."""
    kind = EventKind(kind)
    if kind is EventKind.legacy:
        raise TypeError("legacy events come only from migrating the free-text timeline (0004)")
    if type(data) is not PAYLOADS[kind]:
        raise TypeError(f"a {kind} event carries {PAYLOADS[kind].__name__}, not {type(data).__name__}")
    now = utcnow()
    event = ReferralEvent(referral_id=referral.id, sequence=_next_sequence(db, referral.id), kind=kind,
                          data=msgspec.to_builtins(data), at=occurred_at or now, recorded_at=now,
                          actor_id=actor_id)
    db.add(event)
    db.flush()  # the outbox row refers to the event's id
    db.add(outbox.message_for(event, referral))
    outbox.queue(db)
    patient_texts.queue_for_event(db, event)
    return event


def _next_sequence(db: Session, referral_id: int) -> int:
    """The referral's next sequence number. Concurrent writers for one referral queue on its row
    lock (PostgreSQL; SQLite has a single writer), so each reads the max after the other's commit."""
    db.execute(select(Referral.id).where(Referral.id == referral_id).with_for_update())
    last = db.scalar(select(func.max(ReferralEvent.sequence)).where(ReferralEvent.referral_id == referral_id))
    return (last or 0) + 1


@dataclass(frozen=True)
class Entry:
    """One event as read back: its payload decoded and its sentence rendered."""

    sequence: int
    kind: EventKind
    at: dt.datetime
    recorded_at: dt.datetime
    actor_id: int | None
    data: Payload
    text: str

    def as_data(self) -> dict[str, Any]:
        """The payload as JSON-ready data, with the actor's id when a person did it."""
        data = msgspec.to_builtins(self.data)
        return {**data, "actor_id": self.actor_id} if self.actor_id is not None else data


def history(db: Session, referral_id: int) -> list[Entry]:
    """The referral's timeline, oldest first."""
    events = db.scalars(select(ReferralEvent).where(ReferralEvent.referral_id == referral_id)
                        .order_by(ReferralEvent.sequence))
    return [entry(e) for e in events]


def entry(event: ReferralEvent) -> Entry:
    kind = EventKind(event.kind)
    data = payloads.decode(kind, event.data)
    return Entry(sequence=event.sequence, kind=kind, at=event.at, recorded_at=event.recorded_at,
                 actor_id=event.actor_id, data=data, text=text.render(kind, data))
