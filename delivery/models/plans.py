"""A delivery day's plan: its routes and stops, the solver jobs, personal route links, notices."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from delivery.models.base import Base, utcnow

if TYPE_CHECKING:
    from delivery.models.program import Driver
    from delivery.models.referrals import Patient


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
    # The last solve's drivers without a route, and why: {driver id: a sentence for the day page}.
    idle_drivers: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PlanJob(Base):
    """One solver run for a plan: what was asked, its progress and outcome (the plan's side of it).

    A `jobs` row (kind plan_solve) carries the run to a worker: claiming, heartbeats, retries.
    """

    __tablename__ = "plan_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=PlanJobStatus.queued, index=True)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    time_limit_s: Mapped[float] = mapped_column(Float)
    driver_ids: Mapped[list[str]] = mapped_column(default=list)  # empty: every driver with a shift
    keep_locks: Mapped[bool] = mapped_column(Boolean, default=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
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
    # The phone that opened it (hash of its device cookie): that phone may open it again (R1.3).
    device_hash: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[dt.datetime | None]
