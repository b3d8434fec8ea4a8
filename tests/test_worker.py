"""`delivery worker` as an operator runs it, in its own process: it runs only the kinds it is given,
stops cleanly on SIGTERM, and when one is killed mid-solve another worker takes the plan over."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from delivery.models import JobState, Organization, Plan, PlanJob, PlanJobStatus
from delivery.plans import day as days
from delivery.plans import planning
from delivery.platform import jobs
from delivery.platform.db import Database
from delivery.platform.settings import Settings
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

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0


def test_an_unknown_kind_is_refused_with_the_known_ones(
        database: Database, start_worker: Callable[..., subprocess.Popen], tmp_path: Path) -> None:
    worker = start_worker("--kinds", "geocode,outboks")
    assert worker.wait(60) == 2
    said = (tmp_path / "worker-0.log").read_text()
    assert ("unknown job kind outboks: choose from fhir_poll, followup, geocode, outbox, plan_solve, "
            "text_day_before, text_event, text_send") in said


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
