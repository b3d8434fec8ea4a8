"""Background work as rows: one table of jobs that any `delivery worker` process claims and runs."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from delivery.models.base import Base, utcnow


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"  # gave up: its last attempt failed, or it was the last one and its worker died
    cancelled = "cancelled"


class Job(Base):
    """One piece of background work of a `kind` (plan_solve, geocode, outbox, …) and its payload.

    queued → running (claimed by one worker, which beats `heartbeat_at` while it runs) → done;
    a failed attempt goes back to queued with a later `run_after`, until `max_attempts`: then failed.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="state"),
        # "At most one queued job per X": a kind that wants it passes a dedupe key.
        Index("uq_jobs_queued_dedupe", "kind", "dedupe_key", unique=True,
              sqlite_where=text("state = 'queued'"), postgresql_where=text("state = 'queued'")),
        Index("ix_jobs_state_run_after", "state", "run_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(12), default=JobState.queued)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[dt.datetime | None]  # None: as soon as a worker is free
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
