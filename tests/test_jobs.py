"""The job runner: each job runs once however many workers claim, a failed attempt waits its backoff,
a job whose worker stopped beating is taken back, and a job that keeps failing ends failed with its
error. Time is a clock the test moves; nothing is patched."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, event, select, text

from delivery.models import Job, JobState, PlanJob
from delivery.platform import jobs
from delivery.platform.db import Database, alembic_config, upgrade
from delivery.platform.jobs import JobContext, Kind, Runner
from delivery.platform.settings import Settings
from tests.job_builders import FakeClock, job_row, running_worker


def queue(database: Database, kind: str, payload: dict | None = None, **options: object) -> int:
    with database.writer() as db:
        job = jobs.enqueue(db, kind, payload, **options)  # type: ignore[arg-type]
        db.commit()
        return job.id


def test_a_failing_job_waits_its_backoff_between_attempts_then_fails_with_its_error(
        database: Database, settings: Settings) -> None:
    """Attempts come 10, 20, 40 s (plus up to 2 s of jitter) apart, capped at 60 s; after the last
    one the job is failed with the handler's error, and the kind hears of it in that transaction."""
    attempts: list[int] = []
    given_up: list[tuple[int, str]] = []

    def always_503(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("the receiver answered 503")

    kind = Kind("flaky", always_503, backoff=jobs.exponential(first_s=10, max_s=60, jitter_s=2),
                on_give_up=lambda db, j: given_up.append((j.id, j.state)))
    clock = FakeClock()
    runner = Runner(database, settings, [kind], clock=clock)
    job_id = queue(database, "flaky", {"event": 7}, max_attempts=5)

    waits = []
    for expected in (10, 20, 40, 60):
        assert runner.run_once()
        queued = job_row(database, job_id)
        assert queued.state == JobState.queued and queued.claimed_by is None
        assert queued.last_error == "RuntimeError: the receiver answered 503"
        wait = (queued.run_after - clock.now()).total_seconds()
        assert expected <= wait <= min(expected + 2, 60), (expected, wait)
        waits.append(wait)
        assert not runner.run_once()  # not due yet
        clock.advance(wait - 0.5)
        assert not runner.run_once()
        clock.advance(0.5)
    assert runner.run_once()

    failed = job_row(database, job_id)
    assert attempts == [1, 2, 3, 4, 5]
    assert (failed.state, failed.attempts, failed.finished_at) == (JobState.failed, 5, clock.now())
    assert failed.last_error == "RuntimeError: the receiver answered 503"
    assert given_up == [(job_id, JobState.failed)]
    clock.advance(3600)
    assert not runner.run_once()  # failed is final


def test_a_job_whose_worker_stopped_beating_is_taken_back_and_finished(
        database: Database, settings: Settings) -> None:
    """A claimed job whose heartbeat is older than stale_after is queued again and another runner
    finishes it; one that was on its last attempt is failed and its kind told instead."""
    ran: list[str] = []
    given_up: list[int] = []
    kind = Kind("sync", lambda ctx: ran.append(ctx.payload["what"]),
                on_give_up=lambda db, j: given_up.append(j.id))
    clock = FakeClock()
    lost = Runner(database, settings, [kind], clock=clock, stale_after_s=30)
    rescuer = Runner(database, settings, [kind], clock=clock, stale_after_s=30)
    twice = queue(database, "sync", {"what": "twice"}, max_attempts=2)
    once = queue(database, "sync", {"what": "once"}, max_attempts=1)

    assert len(lost.claim()) == len(lost.claim()) == 1  # ... and then its process dies
    clock.advance(29)
    assert not rescuer.run_once()  # both still counted as running
    clock.advance(2)
    assert rescuer.run_once()

    finished = job_row(database, twice)
    assert (finished.state, finished.attempts, finished.claimed_by) == (JobState.done, 2, rescuer.name)
    assert "stopped answering" in finished.last_error and lost.name in finished.last_error
    assert ran == ["twice"]
    dead = job_row(database, once)
    assert (dead.state, dead.attempts) == (JobState.failed, 1)
    assert given_up == [once]


def test_a_running_job_keeps_its_claim_while_it_beats(database: Database, settings: Settings) -> None:
    """The heartbeat keeps a long job from being taken back by a runner that looks meanwhile."""
    release = threading.Event()
    kind = Kind("long", lambda ctx: release.wait(10))
    job_id = queue(database, "long")
    with running_worker(database, settings, [kind], stale_after_s=0.4) as runner:
        deadline = time.monotonic() + 10
        while job_row(database, job_id).state != JobState.running and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # more than twice stale_after
        other = Runner(database, settings, [kind], stale_after_s=0.4)
        assert other.recover_stale() == 0
        assert job_row(database, job_id).claimed_by == runner.name
        release.set()
    assert job_row(database, job_id).state == JobState.done


def test_a_dedupe_key_keeps_one_queued_job_and_a_queued_job_can_be_cancelled(
        database: Database, settings: Settings) -> None:
    """Two asks with one key are one queued job (the sooner time wins); a cancelled job never runs."""
    later = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    first = queue(database, "sync", dedupe_key="all", run_after=later)
    assert queue(database, "sync", dedupe_key="all") == first
    assert job_row(database, first).run_after is None
    other = queue(database, "sync", dedupe_key="other")
    assert other != first
    with database.writer() as db:
        assert jobs.cancel(db, other)
        db.commit()
    ran: list[int] = []
    runner = Runner(database, settings, [Kind("sync", lambda ctx: ran.append(ctx.job_id))])
    assert runner.run_once() and not runner.run_once()
    assert ran == [first]
    assert job_row(database, other).state == JobState.cancelled
    assert queue(database, "sync", dedupe_key="all") != first  # the first one is done: a new ask


def test_a_runner_refuses_kinds_it_does_not_know(database: Database, settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown job kind nope: choose from sync"):
        Runner(database, settings, [Kind("sync", lambda ctx: None)], only=["sync", "nope"])


def test_two_workers_run_every_job_exactly_once(database: Database, settings: Settings) -> None:
    """Two runners, each with its own connections (as two processes would be), share 40 jobs:
    every job runs once and ends done (FOR UPDATE SKIP LOCKED on PostgreSQL, the writer on SQLite)."""
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def record(ctx: JobContext) -> None:
        time.sleep(0.01)
        with lock:
            runs[ctx.job_id] += 1

    kind = Kind("count", record)
    ids = [queue(database, "count", {"n": n}) for n in range(40)]
    second = Database(database.url)
    try:
        with running_worker(database, settings, [kind]), running_worker(second, settings, [kind]):
            deadline = time.monotonic() + 60
            while sum(runs.values()) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # a double run would show up now
    finally:
        second.dispose()
    assert runs == Counter(dict.fromkeys(ids, 1))
    with database.reader() as db:
        states = Counter(db.scalars(select(Job.state).where(Job.kind == "count")))
    assert states == Counter({JobState.done: 40})


def test_runs_waiting_before_the_upgrade_get_a_job_each(tmp_path: Path) -> None:
    """Migration 0005 gives every plan run left queued or running a plan_solve job, and none to
    finished runs, so a queued solve is not forgotten by the upgrade."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    now = "2026-11-30 10:00:00.000000"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO organizations (id, name, kind, requires_language_match, timezone, "
                          "created_at) VALUES (1, 'Food Bank', 'food_bank', 0, 'America/Los_Angeles', :t)"),
                     {"t": now})
        conn.execute(text("INSERT INTO plans (id, food_bank_id, date, status, version, created_at, "
                          "updated_at) VALUES (1, 1, '2030-03-05', 'draft', 1, :t, :t)"), {"t": now})
        for run_id, status in ((1, "done"), (2, "queued"), (3, "running")):
            conn.execute(text("INSERT INTO plan_jobs (id, plan_id, status, time_limit_s, driver_ids, "
                              "keep_locks, cancel_requested, progress, created_at) "
                              "VALUES (:id, 1, :status, 5, '[]', 1, 0, '{}', :t)"),
                         {"id": run_id, "status": status, "t": now})
    engine.dispose()

    upgrade(url)

    database = Database(url)
    try:
        with database.reader() as db:
            carried = {run.id: run.job_id for run in db.scalars(select(PlanJob))}
            queued = {j.id: j.payload["plan_job_id"] for j in db.scalars(select(Job))
                      if j.kind == "plan_solve" and j.state == JobState.queued}
    finally:
        database.dispose()
    assert carried[1] is None
    assert {queued[carried[2]], queued[carried[3]]} == {2, 3}


class WriteCounter:
    """Counts the transactions that wrote (an INSERT, UPDATE or DELETE) on the database's writer."""

    def __init__(self, database: Database) -> None:
        self.writes = 0
        self._wrote = False
        engine = database.write_engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)

    def _statement(self, conn, cursor, statement: str, *args: object) -> None:  # type: ignore[no-untyped-def]
        self._wrote |= statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}

    def _commit(self, conn) -> None:  # type: ignore[no-untyped-def]
        self.writes += self._wrote
        self._wrote = False

    def _rollback(self, conn) -> None:  # type: ignore[no-untyped-def]
        self._wrote = False


def test_a_batch_kind_is_claimed_in_one_write_and_finished_in_one_and_idle_polls_write_nothing(
        database: Database, settings: Settings) -> None:
    """Three due jobs of a kind with batch=10 are claimed together (each handler sees all three
    running), finished together; the failing one alone waits its backoff, the others are done.
    A runner with nothing due reads and never writes."""
    seen_running: list[int] = []

    def handler(ctx: JobContext) -> None:
        with database.reader() as db:
            seen_running.append(len(db.scalars(select(Job.id).where(Job.state == JobState.running)).all()))
        if ctx.payload["fail"]:
            raise RuntimeError("the stop's plan is locked")

    kind = Kind("batchy", handler, backoff=lambda n: 30.0, batch=10)
    clock = FakeClock()
    runner = Runner(database, settings, [kind], clock=clock)
    ids = [queue(database, "batchy", {"fail": fail}) for fail in (False, True, False)]
    counter = WriteCounter(database)

    assert runner.run_once()
    assert counter.writes == 2  # one claim, one finish, for three jobs
    assert seen_running == [3, 3, 3]
    states = [(job_row(database, i).state, job_row(database, i).attempts) for i in ids]
    assert states == [(JobState.done, 1), (JobState.queued, 1), (JobState.done, 1)]
    assert job_row(database, ids[1]).run_after == clock.now() + dt.timedelta(seconds=30)

    counter.writes = 0
    assert not runner.run_once() and not runner.run_once()  # nothing due: polls only read
    assert counter.writes == 0
    clock.advance(30)
    assert runner.run_once() and job_row(database, ids[1]).attempts == 2


def test_a_batch_stopped_midway_puts_the_jobs_it_did_not_start_back_as_they_were(
        database: Database, settings: Settings) -> None:
    """Those it never started are queued again with their attempt not counted; one whose work was
    queued again meanwhile (same dedupe key) is cancelled instead: one queued job per key."""
    ran: list[int] = []
    twin: list[int] = []
    runner: Runner

    def handler(ctx: JobContext) -> None:
        ran.append(ctx.job_id)
        twin.append(queue(database, "batchy", dedupe_key="c"))  # asked again while claimed
        runner.stop()  # SIGTERM while the first one runs

    runner = Runner(database, settings, [Kind("batchy", handler, batch=10)], clock=FakeClock())
    ids = [queue(database, "batchy", dedupe_key=key) for key in "abc"]
    assert runner.run_once() == 3
    assert ran == ids[:1]
    rows = [job_row(database, i) for i in [*ids, *twin]]
    assert [(r.state, r.attempts, r.claimed_by) for r in rows] == [
        (JobState.done, 1, runner.name), (JobState.queued, 0, None), (JobState.cancelled, 1, runner.name),
        (JobState.queued, 0, None)]
    assert rows[2].last_error == f"superseded by job {twin[0]}"
