"""Organizations and the people who sign in: users, memberships, sessions, API tokens, the audit trail."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, utcnow


class OrganizationKind(StrEnum):
    clinic = "clinic"
    food_bank = "food_bank"
    partner = "partner"


class SpreadWork(StrEnum):
    """How hard a program's planning spreads the day's work across the volunteers who came."""

    off = "off"  # least driving: some volunteers may get nothing
    some = "some"  # everyone who can usefully take stops gets some, for a little more driving
    strong = "strong"  # stops and hours as even as the map allows


class Role(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    clinic_staff = "clinic_staff"
    driver = "driver"
    benefits = "benefits"  # benefits-enrollment staff: their worklist and patients' contact details only


class Organization(Base):
    """A clinic, a food bank or another partner; every record belongs to one."""

    __tablename__ = "organizations"
    # Columns filled by the server (max_failed_attempts, costs) are read when used, not RETURNed on insert.
    __mapper_args__ = {"eager_defaults": False}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    # A clinic's referrals go to the program run by this food bank.
    food_bank_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    # Program settings; meaningful on a food bank.
    boxes_per_delivery_day: Mapped[int | None] = mapped_column(Integer)
    delivery_weekday: Mapped[int | None] = mapped_column(Integer)  # 0 = Monday
    requires_language_match: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str] = mapped_column(String(60), default="America/Los_Angeles")
    # Consecutive failed attempts after which an order stops being rescheduled and waits for review.
    max_failed_attempts: Mapped[int] = mapped_column(Integer, server_default="2")
    # What the funder report counts a delivered box as costing: the box itself, and each mile a
    # volunteer drives (a reimbursement rate). Cents, so sums stay exact.
    box_cost_cents: Mapped[int] = mapped_column(Integer, server_default="2500")
    mileage_rate_cents: Mapped[int] = mapped_column(Integer, server_default="70")
    spread_work: Mapped[str] = mapped_column(String(10), default=SpreadWork.some, server_default="some")
    # A partner's own details, as an admin enters them ("" when not given).
    address: Mapped[str] = mapped_column(String(300), server_default="")
    contacts: Mapped[str] = mapped_column(String(500), server_default="")  # names, phones, emails, as written
    # The program's choices (a food bank's; delivery.program.program_settings edits them). Server
    # defaults only (the values the code used to hard-wire): existing programs keep behaving the same,
    # and an insert from today's model works on an older schema.
    # The BoxType values it offers; empty offers them all.
    box_types: Mapped[list[str]] = mapped_column(server_default=text("'[]'"))
    require_upstairs: Mapped[bool] = mapped_column(Boolean, server_default=true())
    service_base_s: Mapped[int] = mapped_column(Integer, server_default="180")
    service_per_box_s: Mapped[int] = mapped_column(Integer, server_default="30")
    service_per_floor_s: Mapped[int] = mapped_column(Integer, server_default="60")
    link_grace_hours: Mapped[int] = mapped_column(Integer, server_default="6")
    waitlist_horizon_weeks: Mapped[int] = mapped_column(Integer, server_default="8")
    staff_idle_minutes: Mapped[int] = mapped_column(Integer, server_default="15")
    driver_idle_minutes: Mapped[int] = mapped_column(Integer, server_default="60")
    # A clinic past its weekly allocation may use what other clinics left unused this week.
    lend_allocation: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Texts to patients go out only when the program turns them on (off: listed, never sent).
    texts_enabled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # FHIR: a referral that waits on the waitlist is a `rejected` Task (the SDOH guide's strict reading:
    # no capacity now) instead of an accepted one with businessStatus waitlisted.
    waitlisted_is_rejected: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Staff of the program (and of its clinics) sign in with a second factor (R1.2); an admin's choice.
    require_mfa: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who signs in; one Role per organization through Membership."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # TOTP (delivery.platform.mfa): the shared secret (base32) from the enrolment page; it counts
    # once a first code confirms it. The last time step used, so a code is never accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[dt.datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(Integer)

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", lazy="selectin")


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "organization_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    role: Mapped[str] = mapped_column(String(20))

    user: Mapped[User] = relationship(back_populates="memberships")
    organization: Mapped[Organization] = relationship(lazy="joined")


class UserSession(Base):
    """A signed-in browser. Server-side, so logout and disabling a user end it at once."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    mfa_at: Mapped[dt.datetime | None]  # when this session passed the second factor


class RecoveryCode(Base):
    """A one-time code that stands in for the authenticator app; only its hash is stored."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[dt.datetime | None]


class ApiToken(Base):
    """A bearer token for a clinic's system; only its hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class AuditEvent(Base):
    """Who saw or changed which patient's data, when, from where. Append-only."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    client_id: Mapped[str | None] = mapped_column(String(64))  # a system or command, when no user acted
    role: Mapped[str | None] = mapped_column(String(20))  # the actor's role (widest membership)
    organization_id: Mapped[int | None] = mapped_column(Integer)  # where that role is held
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)  # the X-Request-ID answered
    action: Mapped[str] = mapped_column(String(20))  # C R U D E login logout fail
    resource: Mapped[str] = mapped_column(String(60))
    resource_id: Mapped[str | None] = mapped_column(String(60))
    patient_id: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    detail: Mapped[str | None] = mapped_column(String(500))


class Invite(Base):
    """A single-use link that lets a person set their password and join with a role.

    Only the token's hash is stored. Accepted, revoked or past `expires_at`, it opens nothing."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    role: Mapped[str] = mapped_column(String(20))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    accepted_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    organization: Mapped[Organization] = relationship(lazy="joined")


class PasswordReset(Base):
    """A single-use, expiring link to choose a new password; only its hash is stored."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class RateLimitCounter(Base):
    """One fixed window of a rate limit (delivery.platform.throttle): shared by every app process,
    so a limit holds however many processes serve. `store` keeps the login and API limiters apart."""

    __tablename__ = "rate_limit_counters"

    store: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)  # Unix seconds, as `limits` reads it
