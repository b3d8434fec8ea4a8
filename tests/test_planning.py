"""Plan a day: rows become a routing Problem in one place; the solve (in process for the CLI, in the
worker process for the web) writes routes whose every stop passes the planner's checker, and every
due stop is either on a route or unassigned with a reason. One solve per program at a time; a
cancelled solve keeps the best plan found."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from delivery.models import Job, JobState, Organization, Plan, PlanJob, PlanJobStatus, Route, Stop
from delivery.plans import day as days
from delivery.plans import planning
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from delivery.platform.settings import Settings
from delivery.routing import service_seconds
from delivery.worker import kinds
from tests.builders import Program
from tests.day_builders import DAY, add_driver, add_order, make_day
from tests.plan_checks import stored_check


def prepared(database: Database, program: Program) -> int:
    with database.writer() as db:
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        db.commit()
        return plan.id


def test_rows_become_jobs_and_vehicles(database: Database, program: Program, settings: Settings) -> None:
    with database.writer() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        food_bank.requires_language_match = True
        spanish = add_order(db, program, 1, language="es", floor=3, boxes=2, priority=2)
        nowhere = add_order(db, program, 2, point=False)
        driver = add_driver(db, program, 1, languages=("es", "en"), upstairs=False)
        add_driver(db, program, 2, date=None)  # no shift that day
        plan = days.prepare(db, food_bank, DAY)
        built = planning.build(db, plan, settings)
        job = built.problem.jobs[0]
        assert [built.stops[j.id].order_id for j in built.problem.jobs] == [spanish.id]
        assert [s.order_id for s in built.left_out] == [nowhere.id]  # no point on the map: not a job
        assert job.skills == {"lang:es", "upstairs"} and job.boxes == 2 and job.priority == 2
        assert job.service == service_seconds(2, 3, False)
        (vehicle,) = built.problem.vehicles
        assert vehicle.id == str(driver.id) and vehicle.skills == {"lang:es", "lang:en"}
        assert (vehicle.shift_start, vehicle.shift_end, vehicle.capacity) == (9 * 3600, 13 * 3600, 12)
        assert vehicle.start == vehicle.end_point == planning.Point(37.7425, -122.2011)


def test_the_cli_plans_a_day_and_every_stop_is_accounted_for(
        database: Database, program: Program, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with database.writer() as db:
        make_day(db, program, stops=10, drivers=2, capacity=4)
        add_order(db, program, 50, point=False)
        db.commit()
    assert planning.plan_command(database, settings, DAY, 1.0) == 0
    out = capsys.readouterr().out
    assert "11 stops" in out and "unassigned" in out and "no_location" in out
    with database.reader() as db:
        plan = db.scalar(select(Plan))
        violations, stops = stored_check(db, plan, settings)
        assert violations == []
        assert all(s.route_id is not None or s.unassigned_reason for s in stops)
        assert sum(1 for s in stops if s.route_id is not None) == 8  # two cars of 4 boxes
        reasons = {s.unassigned_reason for s in stops if s.route_id is None}
        assert reasons == {"no_location", "no_capacity_left"}


def test_one_solve_per_program_and_cancel_keeps_the_best_plan(
        database: Database, program: Program, settings: Settings) -> None:
    with database.writer() as db:
        make_day(db, program, stops=25, drivers=3, capacity=10)
        db.commit()
    plan_id = prepared(database, program)
    with database.writer() as db:
        plan = db.get(Plan, plan_id)
        job_id = planning.enqueue(db, plan, None, time_limit_s=60).id
        db.commit()
        with pytest.raises(planning.PlanBusy, match="already being planned"):
            planning.enqueue(db, plan, None, time_limit_s=1)
        db.rollback()
    began = time.monotonic()
    runner = Runner(database, settings, kinds(), poll_s=0.05)
    worker = threading.Thread(target=runner.run)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait for a first plan, then cancel
        with database.reader() as db:
            if db.get(PlanJob, job_id).progress.get("solutions", 0) > 0:
                break
        time.sleep(0.2)
    with database.writer() as db:
        planning.cancel(db, db.get(Plan, plan_id))
        db.commit()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _ended(database, job_id):
        time.sleep(0.2)
    runner.stop()
    worker.join(60)
    assert not worker.is_alive()
    assert time.monotonic() - began < 55  # stopped well before its 60 s limit
    with database.reader() as db:
        finished = db.get(PlanJob, job_id)
        assert finished.status == PlanJobStatus.cancelled and finished.finished_at is not None
        carrier = db.get(Job, finished.job_id)
        assert carrier.state == JobState.done and carrier.attempts == 1
        plan = db.get(Plan, plan_id)
        assert plan.status == "planned"
        assert db.scalar(select(Route.id).where(Route.plan_id == plan_id)) is not None
        violations, stops = stored_check(db, plan, settings)
        assert violations == []
        assert all(s.route_id is not None or s.unassigned_reason for s in stops)


def _ended(database: Database, plan_job_id: int) -> bool:
    with database.reader() as db:
        return db.get(PlanJob, plan_job_id).status not in planning.ACTIVE_JOBS


def test_reoptimising_keeps_locked_stops(database: Database, program: Program, settings: Settings) -> None:
    with database.writer() as db:
        make_day(db, program, stops=8, drivers=2, capacity=6)
        db.commit()
    plan_id = prepared(database, program)
    planning.plan_now(database, settings, plan_id, 1.0)
    with database.writer() as db:
        stop = db.scalars(select(Stop).where(Stop.plan_id == plan_id, Stop.route_id.is_not(None))).first()
        route_ids = set(db.scalars(select(Route.id).where(Route.plan_id == plan_id)))
        routes = db.scalars(select(Route).where(Route.plan_id == plan_id)).all()
        others = [r for r in routes if r.id != stop.route_id]
        target = others[0] if others else None
        stop.locked = True
        if target is not None:  # lock it on the other driver's route, where the planner did not put it
            stop.route_id, stop.seq = target.id, 99
        db.commit()
        locked_driver = db.get(Route, stop.route_id).driver_id
        stop_id = stop.id
    assert route_ids
    planning.plan_now(database, settings, plan_id, 1.0)
    with database.reader() as db:
        stop = db.get(Stop, stop_id)
        assert stop.locked and db.get(Route, stop.route_id).driver_id == locked_driver
