"""The domain model: SQLAlchemy 2 typed mappings named after the words in DESIGN.md."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in Python on both databases (SQLite would otherwise hand back naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (UTC)")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


# --- words with a closed set of values -------------------------------------------------------


class OrganizationKind(StrEnum):
    clinic = "clinic"
    food_bank = "food_bank"
    partner = "partner"


class Role(StrEnum):
    admin = "admin"
    coordinator = "coordinator"
    clinic_staff = "clinic_staff"
    driver = "driver"


class HungerAnswer(StrEnum):
    """Hunger Vital Sign answers."""

    often = "often"
    sometimes = "sometimes"
    never = "never"


class Outcome(StrEnum):
    """What the program decided for a referral."""

    home_delivery = "home_delivery"
    waitlisted = "waitlisted"
    pickup = "pickup"
    not_eligible = "not_eligible"


class ReferralStatus(StrEnum):
    active = "active"  # home delivery under way
    waitlisted = "waitlisted"
    pickup = "pickup"  # referred to pick up at a depot
    not_eligible = "not_eligible"
    closed = "closed"


class Cadence(StrEnum):
    weekly = "weekly"
    biweekly = "biweekly"  # every two weeks
    once = "once"


class OrderStatus(StrEnum):
    active = "active"
    waitlisted = "waitlisted"
    paused = "paused"
    ended = "ended"


class GeocodeStatus(StrEnum):
    pending = "pending"  # not yet looked up (or a retryable error)
    found = "found"
    given = "given"  # the referrer sent coordinates
    manual = "manual"  # a coordinator set the point by hand
    needs_review = "needs_review"  # not found or ambiguous: in the review queue


class ReviewKind(StrEnum):
    geocode_failed = "geocode_failed"
    geocode_ambiguous = "geocode_ambiguous"
    address_change = "address_change"  # an import proposes a new address for a corrected one
    possible_duplicate = "possible_duplicate"  # same name and birth date under another MRN


class Source(StrEnum):
    web = "web"
    api = "api"
    csv = "csv"
    fhir = "fhir"
    demo = "demo"


# --- organizations and people ----------------------------------------------------------------


class Organization(Base):
    """A clinic, a food bank or another partner; every record belongs to one."""

    __tablename__ = "organizations"

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
    action: Mapped[str] = mapped_column(String(20))  # C R U D E login logout fail
    resource: Mapped[str] = mapped_column(String(60))
    resource_id: Mapped[str | None] = mapped_column(String(60))
    patient_id: Mapped[int | None] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    detail: Mapped[str | None] = mapped_column(String(500))


# --- patients, referrals, orders ------------------------------------------------------------


class Patient(Base):
    """A person receiving deliveries; belongs to the referring clinic."""

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("clinic_id", "mrn"),
        Index("ix_patients_name_birth", "clinic_id", "family_name", "given_name", "birth_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    mrn: Mapped[str] = mapped_column(String(64))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16), default="en")
    address_line1: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(40))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(40))
    postal_code: Mapped[str] = mapped_column(String(20))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    geocode_status: Mapped[str] = mapped_column(String(20), default=GeocodeStatus.pending)
    geocode_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when a coordinator corrects the address by hand: imports then only propose changes.
    address_corrected_at: Mapped[dt.datetime | None]
    floor: Mapped[int] = mapped_column(Integer, default=0)
    elevator: Mapped[bool] = mapped_column(Boolean, default=False)
    access_notes: Mapped[str | None] = mapped_column(String(500))
    dietary: Mapped[list[str]] = mapped_column(default=list)
    consent_to_share: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def address_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.address_line1}{unit}, {self.city}, {self.state} {self.postal_code}"


class Referral(Base):
    """A clinic's request for service for a patient; a status and a timeline of events."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    referred_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)

    patient: Mapped[Patient] = relationship(lazy="joined")
    screening: Mapped[Screening] = relationship(back_populates="referral", lazy="joined")
    events: Mapped[list[ReferralEvent]] = relationship(
        back_populates="referral", lazy="raise", order_by="ReferralEvent.id"
    )


class Screening(Base):
    """The answers that justify a referral."""

    __tablename__ = "screenings"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), unique=True)
    hunger_worried: Mapped[str] = mapped_column(String(10))
    hunger_ran_out: Mapped[str] = mapped_column(String(10))
    transportation_barrier: Mapped[bool] = mapped_column(Boolean)
    mobility_barrier: Mapped[bool] = mapped_column(Boolean)  # carrying groceries, climbing stairs
    errands_barrier: Mapped[bool] = mapped_column(Boolean, default=False)  # errands alone

    referral: Mapped[Referral] = relationship(back_populates="screening")


class ReferralEvent(Base):
    """One line of a referral's timeline, written in the same transaction as its change."""

    __tablename__ = "referral_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(1000))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    referral: Mapped[Referral] = relationship(back_populates="events")


class Order(Base):
    """What is to be delivered, and when."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    boxes: Mapped[int] = mapped_column(Integer, default=1)
    box_type: Mapped[str] = mapped_column(String(40), default="standard")
    cadence: Mapped[str] = mapped_column(String(10), default=Cadence.weekly)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    window_start: Mapped[dt.time | None] = mapped_column(Time)
    window_end: Mapped[dt.time | None] = mapped_column(Time)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), index=True)
    paused_until: Mapped[dt.date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(500))
    ended_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    waitlisted_at: Mapped[dt.datetime | None]

    patient: Mapped[Patient] = relationship(lazy="joined")
    referral: Mapped[Referral] = relationship(lazy="raise")


class ReviewItem(Base):
    """The coordinators' review queue: nothing that needs a person is dropped silently."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    message: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[str | None] = mapped_column(String(500))

    patient: Mapped[Patient] = relationship(lazy="joined")


class GeocodeCacheEntry(Base):
    """A geocoder's answer for one normalised address, so we never ask twice."""

    __tablename__ = "geocode_cache"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    query: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(20))  # found, not_found, ambiguous
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    display_name: Mapped[str | None] = mapped_column(Text)
    candidates: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("provider", "query"),)


# --- the delivery side ------------------------------------------------------------------------


class Depot(Base):
    """Where boxes are loaded (food bank, clinic), with location and hours."""

    __tablename__ = "depots"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    opens: Mapped[dt.time] = mapped_column(Time)
    closes: Mapped[dt.time] = mapped_column(Time)
    hours: Mapped[str] = mapped_column(String(200))  # as people read it: "Mon-Fri 9am-5pm"
    pickup: Mapped[bool] = mapped_column(Boolean, default=True)  # patients may pick up here


class Driver(Base):
    """A volunteer (or staff) who drives."""

    __tablename__ = "drivers"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    vehicle: Mapped[str] = mapped_column(String(10), default="car")  # car or van
    capacity_boxes: Mapped[int] = mapped_column(Integer)
    languages: Mapped[list[str]] = mapped_column(default=list)
    carries_upstairs: Mapped[bool] = mapped_column(Boolean, default=True)
    home_lat: Mapped[float | None] = mapped_column(Float)
    home_lon: Mapped[float | None] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    user: Mapped[User] = relationship(lazy="joined")


class Shift(Base):
    """A driver's availability on a day: start and end time, start and end place."""

    __tablename__ = "shifts"
    __table_args__ = (UniqueConstraint("driver_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    driver_id: Mapped[int] = mapped_column(ForeignKey("drivers.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    start: Mapped[dt.time] = mapped_column(Time)
    end: Mapped[dt.time] = mapped_column(Time)
    start_depot_id: Mapped[int | None] = mapped_column(ForeignKey("depots.id"))
    end_depot_id: Mapped[int | None] = mapped_column(ForeignKey("depots.id"))
    offered_by: Mapped[str] = mapped_column(String(20), default="coordinator")  # or "driver"

    driver: Mapped[Driver] = relationship(lazy="joined")


class Holiday(Base):
    """A day the program marks closed: no Stops are built for it."""

    __tablename__ = "holidays"
    __table_args__ = (UniqueConstraint("food_bank_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    date: Mapped[dt.date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(100))


# --- planning a delivery day ------------------------------------------------------------------


class PlanStatus(StrEnum):
    draft = "draft"
    planned = "planned"
    published = "published"
    done = "done"


class StopStatus(StrEnum):
    """A stop's status on the plan contract: pending until a confirmation, then delivered or failed."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    removed = "removed"  # taken off the day by a coordinator, with a reason


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


class PlanJobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class Plan(Base):
    """A delivery day: its Stops, Routes and solver runs; draft → planned → published → done."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("food_bank_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    food_bank_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(12), default=PlanStatus.draft)
    # Bumped by every edit: an edit made against an older version is refused, not silently merged.
    version: Mapped[int] = mapped_column(Integer, default=1)
    published_version: Mapped[int | None] = mapped_column(Integer)
    published_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PlanJob(Base):
    """One solver run for a plan, claimed by a worker process (FOR UPDATE SKIP LOCKED on PostgreSQL)."""

    __tablename__ = "plan_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=PlanJobStatus.queued, index=True)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    time_limit_s: Mapped[float] = mapped_column(Float)
    driver_ids: Mapped[list[str]] = mapped_column(default=list)  # empty: every driver with a shift
    keep_locks: Mapped[bool] = mapped_column(Boolean, default=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(100))
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)  # solutions, cost, distance, seconds
    error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class Route(Base):
    """One driver's ordered Stops in a Plan, with planned times and distance."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("plan_id", "driver_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    driver_id: Mapped[int] = mapped_column(ForeignKey("drivers.id"))
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("shifts.id"))
    colour: Mapped[int] = mapped_column(Integer, default=0)  # index into the map palette
    planned_start: Mapped[int | None] = mapped_column(Integer)  # seconds since midnight
    planned_end: Mapped[int | None] = mapped_column(Integer)
    distance_m: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[int] = mapped_column(Integer, default=0)
    load_boxes: Mapped[int] = mapped_column(Integer, default=0)
    published_version: Mapped[int | None] = mapped_column(Integer)  # the plan version its driver was given
    published_fingerprint: Mapped[str | None] = mapped_column(String(64))  # its stops and times then

    driver: Mapped[Driver] = relationship(lazy="joined")


class RouteNotice(Base):
    """What a driver is told when their published route changes (shown on their route page)."""

    __tablename__ = "route_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    message: Mapped[str] = mapped_column(String(500))


class Stop(Base):
    """One Order occurrence on a day at one place; what a driver confirms."""

    __tablename__ = "stops"
    __table_args__ = (UniqueConstraint("order_id", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    route_id: Mapped[int | None] = mapped_column(ForeignKey("routes.id"), index=True)
    seq: Mapped[int | None] = mapped_column(Integer)  # 1-based position on the route
    eta: Mapped[int | None] = mapped_column(Integer)  # planned start of service, seconds since midnight
    departure: Mapped[int | None] = mapped_column(Integer)
    boxes: Mapped[int] = mapped_column(Integer)
    box_type: Mapped[str] = mapped_column(String(40))
    service_s: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[int | None] = mapped_column(Integer)  # seconds since midnight
    window_end: Mapped[int | None] = mapped_column(Integer)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)  # pinned to its route's driver
    lock_position: Mapped[bool] = mapped_column(Boolean, default=False)  # and to its place
    status: Mapped[str] = mapped_column(String(12), default=StopStatus.pending)
    outcome: Mapped[str | None] = mapped_column(String(20))  # the confirmation's outcome
    unassigned_reason: Mapped[str | None] = mapped_column(String(40))
    unassigned_detail: Mapped[str | None] = mapped_column(String(300))
    removed_reason: Mapped[str | None] = mapped_column(String(300))
    carried_from_id: Mapped[int | None] = mapped_column(ForeignKey("stops.id"))  # a failed attempt retried

    patient: Mapped[Patient] = relationship(lazy="joined")


class RouteLink(Base):
    """A driver's personal link to a published route: only its hash is stored (R1.3)."""

    __tablename__ = "route_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    opened_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


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
