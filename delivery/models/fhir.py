"""FHIR: a referral that came as a FHIR Task (SDOH Clinical Care), and the systems allowed to send them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from delivery.models.base import Base, utcnow


class FhirTask(Base):
    """The SDOHCC Task For Referral Management that stands for one referral.

    Its status is never stored: it is read from the referral's timeline whenever the Task is served.
    `request_identifier` (the ServiceRequest's identifier, `system|value`) makes a re-sent Bundle
    find the Task it already created.
    """

    __tablename__ = "fhir_tasks"
    __table_args__ = (UniqueConstraint("clinic_id", "request_identifier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), unique=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    request_identifier: Mapped[str] = mapped_column(String(400))
    # The clinic's ServiceRequest as sent (its subject pointed at our Patient), served as Task.focus.
    service_request: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FhirClient(Base):
    """A clinic's system registered for SMART Backend Services: its public keys (a JWKS) and the
    scopes it was granted. It acts as its own account (`user_id`), a member of its clinic only."""

    __tablename__ = "fhir_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    jwks: Mapped[dict[str, Any]] = mapped_column()
    jku: Mapped[str | None] = mapped_column(String(500))  # the only key-set URL an assertion may name
    scopes: Mapped[str] = mapped_column(String(500))  # space-separated, e.g. "system/Task.rs"
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


class FhirAccessToken(Base):
    """A short-lived access token issued to a FhirClient; only its hash is stored."""

    __tablename__ = "fhir_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("fhir_clients.id"), index=True)
    scopes: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[dt.datetime]


class FhirAssertionUse(Base):
    """A client assertion's `jti`, kept until the assertion expires, so it cannot be replayed."""

    __tablename__ = "fhir_assertion_uses"
    __table_args__ = (UniqueConstraint("client_pk", "jti"),
                      Index("ix_fhir_assertion_uses_expires", "expires_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("fhir_clients.id"))
    jti: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime]


class FhirConnection(Base):
    """"Direct Light": a clinic's own FHIR server, which the `fhir_poll` job reads for Tasks owned by
    the food bank and writes their progress back to. Credentials are stored to be used, never shown
    back: a static bearer token, or SMART Backend Services (our client id there and our private key)."""

    __tablename__ = "fhir_connections"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    base_url: Mapped[str] = mapped_column(String(500))
    owner_reference: Mapped[str] = mapped_column(String(200))  # the food bank on their server: Organization/…
    bearer_token: Mapped[str | None] = mapped_column(String(2000))
    token_url: Mapped[str | None] = mapped_column(String(500))
    client_id: Mapped[str | None] = mapped_column(String(200))
    private_jwk: Mapped[dict[str, Any] | None] = mapped_column()
    scope: Mapped[str | None] = mapped_column(String(500))
    interval_minutes: Mapped[int] = mapped_column(Integer, default=60)
    hours_start: Mapped[int] = mapped_column(Integer, default=8)  # working hours, program time zone
    hours_end: Mapped[int] = mapped_column(Integer, default=18)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[str | None] = mapped_column(String(40))  # their newest Task.meta.lastUpdated seen
    last_success_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[dt.datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row, for the backoff
    next_poll_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class FhirRemoteTask(Base):
    """A Task read from a clinic's server: the referral it made (or why it was refused), what was
    last written back to it, and the Procedures created there (our stop id → their Procedure id)."""

    __tablename__ = "fhir_remote_tasks"
    __table_args__ = (UniqueConstraint("connection_id", "remote_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("fhir_connections.id"), index=True)
    remote_id: Mapped[str] = mapped_column(String(64))
    patient_reference: Mapped[str] = mapped_column(String(200))
    request_reference: Mapped[str] = mapped_column(String(200))
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"))
    refusal: Mapped[str | None] = mapped_column(String(1000))  # why no referral was made
    written: Mapped[str | None] = mapped_column(String(1200))  # status|businessStatus|reason last written
    procedures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
