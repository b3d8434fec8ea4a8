"""Text messages to patients (day before, delivered, missed) and the replies they send back."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, utcnow
from delivery.models.referrals import Patient


class TextKind(StrEnum):
    day_before = "day_before"
    delivered = "delivered"
    left_at_door = "left_at_door"
    missed = "missed"  # a failed attempt, rescheduled


class TextState(StrEnum):
    queued = "queued"  # waiting for the sender (or for 8 am)
    sent = "sent"  # the provider accepted it
    delivered = "delivered"  # the provider's status callback says the phone got it
    undelivered = "undelivered"  # the provider could not deliver it (status callback)
    not_sent = "not_sent"  # texting is off for the program: what would have been sent
    cancelled = "cancelled"  # no longer true or no longer wanted when its time came (reason in error)
    failed = "failed"  # given up: an invalid number, or retries exhausted


class ReplyMeaning(StrEnum):
    home = "home"  # 1: I'll be home
    skip = "skip"  # 2: skip this week
    stop = "stop"  # an opt-out word
    start = "start"  # START / UNSTOP after an opt-out: texts again (carriers' standard words)
    other = "other"  # anything else: a coordinator reads it


class TextMessage(Base):
    """One text to a patient. The body holds no name (templates never carry one); `to_number` is
    the E.164 number it went to, so a reply can be matched to the text it answers."""

    __tablename__ = "text_messages"
    __table_args__ = (Index("ix_text_messages_to_number", "to_number", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # A retry's stop can be taken off a day that is not published yet: the text outlives it.
    stop_id: Mapped[int | None] = mapped_column(ForeignKey("stops.id", ondelete="SET NULL"))
    # What it is about, once: a second run of the job that made it finds it (e.g. "event:42").
    about: Mapped[str] = mapped_column(String(60), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(String(480))
    to_number: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(12), default=TextState.queued)
    send_after: Mapped[dt.datetime]  # quiet hours: never before 8 am program time
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    reply: Mapped[str | None] = mapped_column(String(12))  # the ReplyMeaning of an answer to it
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]

    patient: Mapped[Patient] = relationship(lazy="joined")


class InboundText(Base):
    """A text a patient sent us. Those a coordinator must read (anything not understood, a skip)
    stay open in the inbox until marked handled."""

    __tablename__ = "inbound_texts"

    id: Mapped[int] = mapped_column(primary_key=True)
    food_bank_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    answers_id: Mapped[int | None] = mapped_column(ForeignKey("text_messages.id"))
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)  # a retried webhook is one text
    from_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(String(1600))
    meaning: Mapped[str] = mapped_column(String(12))
    outcome: Mapped[str] = mapped_column(String(300))  # what we did about it, in words
    needs_attention: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    handled_at: Mapped[dt.datetime | None]
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    patient: Mapped[Patient | None] = relationship(lazy="joined")
