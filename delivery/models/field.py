"""What drivers report from the door: confirmations, their corrections and photos, flags, and the
per-route delivery token the driver's phone sends confirmations with."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from delivery.models.base import Base, utcnow


class ConfirmationOutcome(StrEnum):
    delivered = "delivered"
    left_at_door = "left_at_door"
    no_answer = "no_answer"
    refused = "refused"
    wrong_address = "wrong_address"
    unsafe = "unsafe"
    other = "other"

    @property
    def delivered_food(self) -> bool:
        return self in (ConfirmationOutcome.delivered, ConfirmationOutcome.left_at_door)


class Confirmation(Base):
    """The outcome at a Stop, as a driver reported it; the client's idempotency key is kept forever."""

    __tablename__ = "confirmations"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stop_id: Mapped[int] = mapped_column(ForeignKey("stops.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    request_hash: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(1000))
    occurred_at: Mapped[dt.datetime]  # the device's clock
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # the server's
    handled_at: Mapped[dt.datetime | None]  # a coordinator worked this exception
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    undone_at: Mapped[dt.datetime | None]  # withdrawn by its driver (an amendment row says why)
    # Optional proof of delivery: re-encoded on the server, stored under a server-made name.
    photo_name: Mapped[str | None] = mapped_column(String(80))
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    photo_bytes: Mapped[int | None] = mapped_column(Integer)


class ConfirmationAmendment(Base):
    """A correction of a confirmation (its driver's undo, a coordinator's amendment): the original
    row is kept as it was, this row says who changed what and why (R7.4)."""

    __tablename__ = "confirmation_amendments"

    id: Mapped[int] = mapped_column(primary_key=True)
    confirmation_id: Mapped[int] = mapped_column(ForeignKey("confirmations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(20))  # undo
    reason: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FieldReportKind(StrEnum):
    asked_for_help = "asked_for_help"
    no_fridge = "no_fridge"
    address_changed = "address_changed"
    phone_changed = "phone_changed"
    seemed_unwell = "seemed_unwell"
    other = "other"
    route_problem = "route_problem"  # "report a problem": about the route, not one stop
    late_confirmation = "late_confirmation"  # arrived after the 72-hour window: not recorded


class FieldReport(Base):
    """What a driver saw and told the coordinator: a quick flag at a stop, or a problem with the
    route. Open reports are on the coordinator's exceptions list until handled."""

    __tablename__ = "field_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id"), index=True)
    stop_id: Mapped[int | None] = mapped_column(ForeignKey("stops.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[dt.datetime | None]
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class DeliveryToken(Base):
    """Lets one driver's phone send confirmations for one route (bearer on the API). The token
    itself is never stored: it is an HMAC of this row's salt under the app's secret key, so the
    route page can hand it out again on every load without a write, and revoking the row (with
    the route's links) stops it."""

    __tablename__ = "delivery_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
