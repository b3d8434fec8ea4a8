"""The clinic's side of the loop: webhook endpoints, what each is sent, and every attempt to send it."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, utcnow

if TYPE_CHECKING:
    from delivery.models.timeline import OutboxMessage


class EndpointState(StrEnum):
    active = "active"
    failing = "failing"  # deliveries keep failing: the clinic's admin was told; sending goes on
    disabled = "disabled"  # an admin turned it off: nothing is sent


class DeliveryState(StrEnum):
    pending = "pending"  # due at next_attempt_at (or claimed by a sender until then)
    delivered = "delivered"  # the receiver answered 2xx in time
    failed = "failed"  # every attempt of the schedule failed, or the receiver answered 410


class WebhookEndpoint(Base):
    """A clinic system's URL that is told every timeline event of the clinic's referrals it wants.

    The secret (`whsec_…`) is shown once when made; it is kept here because signing needs it. After a
    rotation the previous secret also signs until `previous_secret_until` (several signatures in
    one header, as Standard Webhooks allows), so the receiver can switch without losing events.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[dt.datetime | None]
    event_kinds: Mapped[list[str]] = mapped_column(default=list)  # empty: every kind
    state: Mapped[str] = mapped_column(String(12), default=EndpointState.active)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[dt.datetime | None]
    notice: Mapped[str | None] = mapped_column(String(500))  # what the clinic's admin is told
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    def wants(self, kind: str) -> bool:
        return not self.event_kinds or kind in self.event_kinds


class WebhookDelivery(Base):
    """One outbox message for one endpoint: the unit that is retried until 2xx or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("message_id", "endpoint_id"),
                      Index("ix_webhook_deliveries_due", "state", "next_attempt_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    state: Mapped[str] = mapped_column(String(12), default=DeliveryState.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When it is due; while a sender holds it, the end of that sender's lease.
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[dt.datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    message: Mapped[OutboxMessage] = relationship(lazy="joined")


class WebhookAttempt(Base):
    """One HTTP request to a receiver: what it answered and how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    test: Mapped[bool] = mapped_column(default=False)  # a "send a test event" request
