"""`delivery worker` as an operator runs it, in its own process: it runs only the kinds it is given,
queues the periodic `promote` job on start, stops cleanly on SIGTERM, and when one is killed
mid-solve another worker takes the plan over."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from delivery.models import Job, JobState, Organization, Plan, PlanJob, PlanJobStatus
from delivery.plans import day as days
from delivery.plans import planning
from delivery.platform import jobs
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.program import waitlist_job
from delivery.referrals import geocoding
from tests.builders import Program
from tests.day_builders import DAY, make_day
from tests.job_builders import job_row, wait_until
from tests.plan_checks import stored_check


def test_a_worker_runs_only_the_kinds_it_is_given_and_stops_on_sigterm(
        database: Database, start_worker: Callable[..., subprocess.Popen]) -> None:
    with database.writer() as db:  # the plan job first: a worker that ignored --kinds would take it first
        plan_job = jobs.enqueue(db, planning.SOLVE_KIND, {"plan_job_id": 1}).id
        geocode = jobs.enqueue(db, geocoding.KIND, dedupe_key="pending").id
        db.commit()

    worker = start_worker("--kinds", "geocode")
    wait_until(lambda: job_row(database, geocode).state == JobState.done, 60, "the geocode job")
    time.sleep(1.0)  # ten polls more
    assert job_row(database, plan_job).state == JobState.queued
    assert promote_jobs(database) == []  # nor did it queue a kind it does not run

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def promote_jobs(database: Database) -> list[tuple[str, dt.datetime | None]]:
    with database.reader() as db:
        return [(job.state, job.run_after) for job in
                db.scalars(select(Job).where(Job.kind == waitlist_job.KIND).order_by(Job.id))]


def test_a_worker_started_on_a_new_database_queues_the_waitlist_job_which_keeps_itself_queued(
        database: Database, start_worker: Callable[..., subprocess.Popen]) -> None:
    """Nothing else queues `promote` (it queues itself after each run): the worker's start does."""
    assert promote_jobs(database) == []
    worker = start_worker("--kinds", "promote")
    wait_until(lambda: [state for state, _ in promote_jobs(database)] == [JobState.done, JobState.queued], 60,
               "the first run and the next one queued")
    (_, first), (_, then) = promote_jobs(database)
    assert first is None and then is not None  # at once on start, then within the hour
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    start_worker("--kinds", "promote")  # a restart runs the queued one at once, and queues one again
    again = [JobState.done, JobState.done, JobState.queued]
    wait_until(lambda: [state for state, _ in promote_jobs(database)] == again, 60,
               "the restarted worker's run")


def test_an_unknown_kind_is_refused_with_the_known_ones(
        database: Database, start_worker: Callable[..., subprocess.Popen], tmp_path: Path) -> None:
    worker = start_worker("--kinds", "geocode,outboks")
    assert worker.wait(60) == 2
    said = (tmp_path / "worker-0.log").read_text()
    assert ("unknown job kind outboks: choose from fhir_poll, followup, geocode, outbox, plan_solve, "
            "promote, text_day_before, text_event, text_send") in said


def test_a_plan_whose_worker_is_killed_mid_solve_is_finished_by_another_worker(
        database: Database, program: Program, settings: Settings,
        start_worker: Callable[..., subprocess.Popen]) -> None:
    with database.writer() as db:
        make_day(db, program, stops=10, drivers=2, capacity=6)
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        plan_job = planning.enqueue(db, plan, None, time_limit_s=4)
        db.commit()
        plan_id, plan_job_id, job_id = plan.id, plan_job.id, plan_job.job_id

    def plan_job_status() -> str:
        with database.reader() as db:
            return db.get(PlanJob, plan_job_id).status

    first = start_worker()
    wait_until(lambda: plan_job_status() == PlanJobStatus.running, 60, "the first worker to start solving")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    killed = job_row(database, job_id)
    assert (killed.state, killed.attempts) == (JobState.running, 1)

    start_worker()
    wait_until(lambda: plan_job_status() not in planning.ACTIVE_JOBS, 120, "the second worker to finish")
    wait_until(lambda: job_row(database, job_id).state != JobState.running, 30, "the job row to be closed")

    finished = job_row(database, job_id)
    assert (finished.state, finished.attempts) == (JobState.done, 2)
    assert finished.claimed_by != killed.claimed_by
    assert "stopped answering" in (finished.last_error or "")
    with database.reader() as db:
        assert db.get(PlanJob, plan_job_id).status == PlanJobStatus.done
        plan = db.get(Plan, plan_id)
        assert plan.status == "planned"
        violations, stops = stored_check(db, plan, settings)
    assert violations == []
    assert all(s.route_id is not None or s.unassigned_reason for s in stops)
    assert any(s.route_id is not None for s in stops)
