"""What drivers report from the door: confirmations."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import (
    ForeignKey,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from delivery.models.base import Base, utcnow

if TYPE_CHECKING:
    pass


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
