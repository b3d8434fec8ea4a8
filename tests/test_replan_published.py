"""'Plan routes' on a published day (issue 8 item 6): it asks first, keeps the routes that need no change,
and only the drivers whose route changed are told; people see 'published 10:42, 1 change since'."""

from __future__ import annotations

import re
import time

from sqlalchemy import func, select

from delivery.models import Organization, Plan, PlanJob, Route, Stop
from delivery.plans import day as days
from delivery.plans import edits as plan_edits
from delivery.plans import planning, publishing
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, sign_in
from tests.day_builders import DAY, day_before, make_day
from tests.job_builders import running_worker

ACTOR = AuditContext.for_command("publish")


def wait_for_the_planner(database: Database, plan_id: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.reader() as db:
            job = db.scalar(select(PlanJob).where(PlanJob.plan_id == plan_id).order_by(PlanJob.id.desc()))
            if job is not None and job.status not in planning.ACTIVE_JOBS:
                return
        time.sleep(0.2)
    raise AssertionError("the planner did not finish")


def test_replanning_a_published_day_asks_first_and_tells_only_the_changed_route(
        database: Database, program: Program, settings: Settings) -> None:
    with database.writer() as db:
        make_day(db, program, stops=8, drivers=2, capacity=4)
        plan_id = days.prepare(db, db.get(Organization, program.food_bank_id), DAY).id
        db.commit()
    planning.plan_now(database, settings, plan_id, 1.0)
    with database.writer() as db:
        first = publishing.publish(db, db.get(Plan, plan_id), ACTOR, settings)
        db.commit()
        assert len(first) == 2
        a, b = (p.route_id for p in first)
        plan = db.get(Plan, plan_id)
        gone = db.scalars(select(Stop).where(Stop.route_id == a).order_by(Stop.seq)).first()
        plan_edits.remove_stop(db, plan_id, plan.version, gone.id, "In hospital", settings)  # a changes
        db.commit()
        before_b = publishing.fingerprint(list(db.scalars(select(Stop).where(Stop.route_id == b)
                                                          .order_by(Stop.seq))))

    with day_before(settings, database) as client:
        coordinator_replans(database, settings, program, client, plan_id)

    with database.writer() as db:
        republished = publishing.publish(db, db.get(Plan, plan_id), ACTOR, settings)
        again = {p.route_id: p.changed for p in republished}
        db.commit()
        assert again == {a: True, b: False}  # the route that needed no change was kept as given
        assert publishing.notices(db, b) == [] and len(publishing.notices(db, a)) == 1
        assert db.get(Route, b).published_fingerprint == before_b


def coordinator_replans(database: Database, settings: Settings, program: Program, client,  # type: ignore[no-untyped-def]
                        plan_id: int) -> None:
    """On the day page: the published state in words, 'Plan routes', the question, the confirmation."""
    token = sign_in(client, program.coordinator)
    page = client.get(f"/coordinator/plans/{DAY.isoformat()}").text
    assert re.search(r"published \d\d:\d\d, 1 change since", page)
    assert not re.search(r">[^<]*\bversion \d", page)  # no internal counter in what people read

    form = {"mode": "plan", "time_limit_s": "1"}
    asked = client.post(f"/coordinator/plans/{plan_id}/plan", data=form, headers={"X-CSRF-Token": token})
    assert asked.status_code == 200 and "already published" in asked.text
    assert 'name="confirm" value="1"' in asked.text
    with database.reader() as db:
        assert db.scalar(select(func.count(PlanJob.id)).where(PlanJob.plan_id == plan_id)) == 0  # nothing ran

    with running_worker(database, settings):
        confirmed = client.post(f"/coordinator/plans/{plan_id}/plan", data={**form, "confirm": "1"},
                                headers={"X-CSRF-Token": token})
        assert confirmed.status_code == 200
        wait_for_the_planner(database, plan_id)
