"""A referral's timeline as data (events of a closed set of kinds) and the outbox that tells clinics."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, one_of, utcnow

if TYPE_CHECKING:
    from delivery.models.referrals import Referral


class EventKind(StrEnum):
    """What can happen to a referral. Adding a kind needs a migration (the column is checked)."""

    received = "received"  # a clinic referred the patient
    outcome = "outcome"  # the program decided (home delivery, pick-up, not eligible, waitlisted)
    override = "override"  # a coordinator set the outcome by hand
    waitlisted = "waitlisted"
    moved_off_waitlist = "moved_off_waitlist"
    order_created = "order_created"
    order_changed = "order_changed"  # weekday, boxes, box type or time window
    priority_changed = "priority_changed"
    paused = "paused"
    resumed = "resumed"
    ended = "ended"  # the order ended, or the referral closed without one
    scheduled = "scheduled"  # a stop on a delivery day's plan
    out_for_delivery = "out_for_delivery"
    delivered = "delivered"
    left_at_door = "left_at_door"
    attempt_failed = "attempt_failed"
    confirmation_undone = "confirmation_undone"  # its driver withdrew a confirmation within 5 minutes
    rescheduled = "rescheduled"
    stop_removed = "stop_removed"  # a coordinator took the stop off a day
    receipt_confirmed = "receipt_confirmed"
    receipt_denied = "receipt_denied"
    address_changed = "address_changed"
    patient_corrected = "patient_corrected"  # a re-sent referral changed stored details
    review_resolved = "review_resolved"  # an item of the coordinators' review queue was settled
    duplicate_checked = "duplicate_checked"  # another referral was found to be the same person
    held_for_review = "held_for_review"  # deliveries stopped until a coordinator looks (failed attempts)
    need_raised = "need_raised"  # the patient (or a driver) named a need besides food: the clinic's worklist
    need_referred_on = "need_referred_on"  # clinic staff passed the need to someone who can help
    need_resolved = "need_resolved"
    benefits_flagged = "benefits_flagged"  # on the benefits-enrollment worklist (SNAP/CalFresh)
    benefits_contacted = "benefits_contacted"
    benefits_applied = "benefits_applied"
    benefits_enrolled = "benefits_enrolled"
    benefits_declined = "benefits_declined"
    legacy = "legacy"  # an event from before kinds were closed whose kind was not recognised


class OutboxState(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class ReferralEvent(Base):
    """One event of a referral's timeline: a kind, a typed payload (`data`) and a per-referral sequence.

    Written only by `delivery.timeline.events.record`, in the transaction of the change it tells.
    """

    __tablename__ = "referral_events"
    __table_args__ = (UniqueConstraint("referral_id", "sequence"),
                      CheckConstraint(one_of("kind", EventKind), name="kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)  # 1, 2, 3… per referral, in the order recorded
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # when it happened
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # when we wrote it down
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    referral: Mapped[Referral] = relationship(back_populates="events")


class OutboxMessage(Base):
    """A thin message about one event, for the referring clinic's webhooks (sent by the relay).

    `payload` is the webhook body: ids, kind, time, the referral's status and the event's sequence;
    never names, addresses, phones or notes. `webhook_id` stays the same on every retry.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (CheckConstraint(one_of("state", OutboxState), name="state"),
                      Index("ix_outbox_messages_due", "state", "next_attempt_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(40), unique=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("referral_events.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Delivery bookkeeping, for the relay (issue 11).
    state: Mapped[str] = mapped_column(String(12), default=OutboxState.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    dispatched_at: Mapped[dt.datetime | None]  # handed to each subscribed endpoint (webhook_deliveries)
