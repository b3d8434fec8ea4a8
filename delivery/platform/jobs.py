"""One job runner for all background work (plan solves, geocoding, outbox delivery, FHIR polling, …).

- `enqueue(db, kind, payload)` adds a `jobs` row in the caller's transaction: the job exists exactly
  when the change that asked for it was committed. With a `dedupe_key` there is at most one queued
  job per (kind, key) (a partial unique index), so "geocode what is pending" is asked once.
- `Runner` is what `delivery worker` runs: it claims due jobs of one kind (`FOR UPDATE SKIP LOCKED`
  on PostgreSQL, so any number of workers share the table; on SQLite the single writer's BEGIN
  IMMEDIATE makes the claim atomic across processes), runs the kind's handler for each and records
  the ends. A kind with `batch` > 1 has up to that many claimed in one write and finished in one
  write, and with `settle_s` the worker lets more arrive first: on SQLite every write waits for the
  one writer, so a worker that wrote three times per small job made the web app's writes wait.
  Polling writes nothing while nothing is due.
- While handlers run, a heartbeat thread stamps `heartbeat_at` on the claimed jobs. A running job
  whose heartbeat is older than `stale_after_s` lost its worker (killed, machine gone): any runner
  queues it again, or marks it failed when that was its last attempt.
- A handler that raises has failed one attempt: the job is queued again after `kind.backoff(n)`
  seconds (exponential with jitter, tenacity's `wait_exponential_jitter`), until `max_attempts`;
  then it is failed with its last error and `kind.on_give_up` runs in that same transaction.

Handlers are registered per kind in one place, `delivery.worker.kinds()`. The runner takes its
clock as an argument, so tests move time without patching anything.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import tenacity
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from delivery.models import Job, JobState, utcnow
from delivery.platform.db import Database
from delivery.platform.settings import Settings

log = logging.getLogger("delivery.platform.jobs")

DEFAULT_MAX_ATTEMPTS = 5
ERROR_LENGTH = 2000


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return utcnow()


Backoff = Callable[[int], float]
"""Seconds to wait before the next attempt, given how many attempts have failed so far (1, 2, …)."""


def exponential(*, first_s: float, max_s: float, jitter_s: float | None = None) -> Backoff:
    """first_s · 2^(n-1) plus a random 0..jitter_s (first_s by default), never more than max_s."""
    wait = tenacity.wait_exponential_jitter(multiplier=first_s, max=max_s,
                                            jitter=first_s if jitter_s is None else jitter_s)

    def delay(failed_attempts: int) -> float:
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = failed_attempts
        return float(wait(state))

    return delay


@dataclass(frozen=True)
class JobContext:
    """What a handler gets: its job's payload, the attempt it is on, and the worker's means."""

    job_id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    database: Database
    settings: Settings
    clock: Clock
    stopping: threading.Event
    """Set when the worker is asked to stop: finish soon and leave things consistent."""


@dataclass(frozen=True)
class Kind:
    """A kind of job and how to run it. Raising from `run` fails the attempt."""

    name: str
    run: Callable[[JobContext], None]
    backoff: Backoff = field(default_factory=lambda: exponential(first_s=5.0, max_s=3600.0))
    on_give_up: Callable[[Session, Job], None] | None = None
    """Called in the transaction that marks the job failed for good (e.g. tell the plan it failed)."""
    batch: int = 1
    """How many due jobs of this kind one claim takes (run one after another, finished together)."""
    settle_s: float = 0.0
    """When one is due, the worker waits this long before claiming, so jobs queued meanwhile (each
    confirmation queues one) share its claim and finish writes."""


# --- the table API (in the caller's transaction; services never commit) ----------------------------


def enqueue(db: Session, kind: str, payload: dict[str, Any] | None = None, *,
            run_after: dt.datetime | None = None, dedupe_key: str | None = None,
            max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Job:
    """Queue a job; with `dedupe_key`, the queued twin of the same kind and key if there is one
    (moved earlier when this one is wanted sooner)."""
    def made() -> Job:
        return Job(kind=kind, payload=payload or {}, state=JobState.queued, dedupe_key=dedupe_key,
                   attempts=0, max_attempts=max_attempts, run_after=run_after)

    if dedupe_key is None:
        job = made()
        db.add(job)
        db.flush()
        return job
    for _ in range(3):
        twin = _queued_twin(db, kind, dedupe_key)
        if twin is not None:
            _sooner(twin, run_after)
            return twin
        job = made()
        try:  # PostgreSQL: another transaction may queue the twin between our look and our insert
            with db.begin_nested():
                db.add(job)
            return job
        except IntegrityError:  # it did: look again (a worker may even have claimed it since)
            continue
    raise RuntimeError(f"could not queue a {kind} job: its queued twin keeps changing")


def cancel(db: Session, job_id: int) -> bool:
    """Cancel a job that has not started; True if it was queued (a running one is its handler's to stop)."""
    job = db.get(Job, job_id, with_for_update=True)
    if job is None or job.state != JobState.queued:
        return False
    job.state, job.finished_at = JobState.cancelled, utcnow()
    db.flush()
    return True


def _queued_twin(db: Session, kind: str, dedupe_key: str) -> Job | None:
    """The queued job of this kind and key. On PostgreSQL it is key-share locked: a worker's claim
    (FOR UPDATE SKIP LOCKED) passes it by until we commit, so the work we rely on it for (a new
    outbox message) is visible to its run; other transactions may share the lock meanwhile."""
    return db.scalar(select(Job).where(Job.kind == kind, Job.dedupe_key == dedupe_key,
                                       Job.state == JobState.queued)
                     .with_for_update(read=True, key_share=True))


def _sooner(job: Job, run_after: dt.datetime | None) -> None:
    if job.run_after is not None and (run_after is None or run_after < job.run_after):
        job.run_after = run_after


# --- the runner ------------------------------------------------------------------------------------


class Runner:
    """Claims due jobs of the kinds it runs, one at a time, until `stop()`."""

    def __init__(self, database: Database, settings: Settings, kinds: Iterable[Kind], *,
                 only: Iterable[str] | None = None, clock: Clock | None = None,
                 poll_s: float | None = None, stale_after_s: float | None = None) -> None:
        self.database = database
        self.settings = settings
        self.kinds = {k.name: k for k in kinds}
        wanted = sorted(set(only)) if only is not None else sorted(self.kinds)
        unknown = [k for k in wanted if k not in self.kinds]
        if unknown or not wanted:
            raise ValueError(f"unknown job kind {', '.join(unknown) or '(none given)'}: "
                             f"choose from {', '.join(sorted(self.kinds))}")
        self.claimable = wanted
        self.clock = clock or SystemClock()
        self.poll_s = settings.job_poll_s if poll_s is None else poll_s
        self.stale_after = dt.timedelta(seconds=settings.job_stale_after_s if stale_after_s is None
                                        else stale_after_s)
        self.heartbeat_s = self.stale_after.total_seconds() / 4
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:100]
        self.stopping = threading.Event()

    def run(self) -> None:
        log.info("worker %s runs %s", self.name, ", ".join(self.claimable))
        while not self.stopping.is_set():
            try:
                ran = self.run_once(settle=True)
            except SQLAlchemyError:  # the database went away for a moment: try again at the next poll
                log.exception("worker %s could not reach the database", self.name)
                ran = False
            if not ran:
                self.stopping.wait(self.poll_s)

    def stop(self) -> None:
        self.stopping.set()

    def run_once(self, *, settle: bool = False) -> int:
        """Recover stale claims, then claim due jobs of one kind and run them; how many were claimed
        (0: none was due). With `settle`, first wait the kind's `settle_s` (the loop does; tests
        stepping a FakeClock do not)."""
        self.recover_stale()
        claimed = self.claim(settle=settle)
        if claimed:
            self._run(claimed)
        return len(claimed)

    def _due(self, now: dt.datetime, kinds: Iterable[str]) -> ColumnElement[bool]:
        return ((Job.state == JobState.queued) & Job.kind.in_(list(kinds))
                & (Job.run_after.is_(None) | (Job.run_after <= now)))

    def claim(self, *, settle: bool = False) -> list[JobContext]:
        """Claim up to the kind's `batch` due jobs of the kind of the oldest due job (none: [])."""
        with self.database.reader() as db:  # a cheap look first: an idle worker never takes the writer
            kind_name = db.scalar(select(Job.kind).where(self._due(self.clock.now(), self.claimable))
                                  .order_by(Job.id).limit(1))
        if kind_name is None:
            return []
        kind = self.kinds[kind_name]
        if settle and kind.settle_s > 0 and self.stopping.wait(kind.settle_s):
            return []  # asked to stop while waiting: leave them queued for the next worker
        now = self.clock.now()
        with self.database.writer() as db:
            jobs = list(db.scalars(select(Job).where(self._due(now, [kind_name])).order_by(Job.id)
                                   .limit(kind.batch).with_for_update(skip_locked=True)))
            for job in jobs:
                job.state, job.attempts = JobState.running, job.attempts + 1
                job.claimed_by, job.claimed_at, job.heartbeat_at = self.name, now, now
            db.commit()
            return [JobContext(job_id=job.id, kind=job.kind, payload=dict(job.payload), attempt=job.attempts,
                               database=self.database, settings=self.settings, clock=self.clock,
                               stopping=self.stopping) for job in jobs]

    def recover_stale(self) -> int:
        """Queue again (or fail, after their last attempt) running jobs whose worker stopped beating."""
        now = self.clock.now()
        stale = (Job.state == JobState.running) & (Job.heartbeat_at < now - self.stale_after)
        with self.database.reader() as db:
            if db.scalar(select(Job.id).where(stale).limit(1)) is None:
                return 0
        with self.database.writer() as db:
            jobs = list(db.scalars(select(Job).where(stale).order_by(Job.id)
                                   .with_for_update(skip_locked=True)))
            for job in jobs:
                log.warning("job %s (%s): worker %s stopped answering; taking it back", job.id, job.kind,
                            job.claimed_by)
                self._retry_or_give_up(db, job, f"The worker running it ({job.claimed_by}) stopped "
                                       f"answering after {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC.",
                                       now, delay_s=0.0)
            db.commit()
        return len(jobs)

    def _run(self, claimed: list[JobContext]) -> None:
        ids = [ctx.job_id for ctx in claimed]
        beating = threading.Event()
        heart = threading.Thread(target=self._beat, args=(ids, beating), daemon=True,
                                 name=f"job-{ids[0]}-heartbeat")
        heart.start()
        errors: dict[int, str | None] = {}
        try:
            for ctx in claimed:
                if self.stopping.is_set() and errors:  # asked to stop: the rest go back untouched
                    break
                errors[ctx.job_id] = self._attempt(ctx)
        finally:
            beating.set()
            heart.join()
        with self.database.writer() as db:
            jobs = {job.id: job for job in db.scalars(
                select(Job).where(Job.id.in_(ids), Job.claimed_by == self.name,
                                  Job.state == JobState.running).with_for_update())}
            now = self.clock.now()
            for job_id in ids:
                job = jobs.get(job_id)
                if job is None:  # another runner took it back meanwhile (we missed heartbeats): theirs now
                    log.warning("job %s ended here after its claim was taken back", job_id)
                elif job_id not in errors:
                    self._give_back(db, job, now)
                elif errors[job_id] is None:
                    job.state, job.finished_at, job.heartbeat_at = JobState.done, now, None
                else:
                    self._retry_or_give_up(db, job, errors[job_id] or "", now)
            db.commit()

    def _give_back(self, db: Session, job: Job, now: dt.datetime) -> None:
        """A claimed job never started (the worker is stopping): queued again as it was, unless the
        same work was queued again meanwhile (one queued per dedupe key)."""
        twin = _queued_twin(db, job.kind, job.dedupe_key) if job.dedupe_key is not None else None
        if twin is not None:
            job.state, job.finished_at = JobState.cancelled, now
            job.last_error = f"superseded by job {twin.id}"
        else:
            job.state, job.claimed_by, job.claimed_at = JobState.queued, None, None
            job.attempts -= 1
        job.heartbeat_at = None

    def _attempt(self, ctx: JobContext) -> str | None:
        """Run one handler; its error as text, None when it succeeded."""
        try:
            self.kinds[ctx.kind].run(ctx)
        except Exception as exc:
            log.exception("job %s (%s) attempt %s failed", ctx.job_id, ctx.kind, ctx.attempt)
            return f"{type(exc).__name__}: {exc}"
        return None

    def _retry_or_give_up(self, db: Session, job: Job, error: str, now: dt.datetime, *,
                          delay_s: float | None = None) -> None:
        kind = self.kinds.get(job.kind)
        job.last_error = error[:ERROR_LENGTH]
        job.heartbeat_at = None
        if job.attempts >= job.max_attempts:
            job.state, job.finished_at = JobState.failed, now
            if kind is not None and kind.on_give_up is not None:
                kind.on_give_up(db, job)
            return
        twin = _queued_twin(db, job.kind, job.dedupe_key) if job.dedupe_key is not None else None
        if twin is not None:  # the same work was asked for again meanwhile: that job will do it
            job.state, job.finished_at = JobState.cancelled, now
            job.last_error = f"{error} (superseded by job {twin.id})"[:ERROR_LENGTH]
            return
        if delay_s is None:
            delay_s = kind.backoff(job.attempts) if kind is not None else 60.0
        job.state, job.claimed_by, job.claimed_at = JobState.queued, None, None
        job.run_after = now + dt.timedelta(seconds=delay_s)

    def _beat(self, job_ids: list[int], done: threading.Event) -> None:
        while not done.wait(self.heartbeat_s):
            try:
                with self.database.writer() as db:
                    db.execute(update(Job).where(Job.id.in_(job_ids), Job.claimed_by == self.name,
                                                 Job.state == JobState.running)
                               .values(heartbeat_at=self.clock.now()))
                    db.commit()
            except SQLAlchemyError:  # a missed beat or two is what stale_after_s allows for
                log.warning("jobs %s: heartbeat not written", job_ids, exc_info=True)
