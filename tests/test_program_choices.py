"""How the program works is data an admin edits (with bounds and an audit row per change), and the
planner, the capacity check and sign-out read it from there."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import AuditEvent, Organization, User
from delivery.plans import day as days
from delivery.plans import planning
from delivery.platform import auth
from delivery.platform.clock import FixedClock
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, sign_in
from tests.day_builders import DAY, add_driver, add_order

FORM = {"service_base_s": "240", "service_per_box_s": "45", "service_per_floor_s": "90",
        "link_grace_hours": "4", "waitlist_horizon_weeks": "12", "staff_idle_minutes": "20",
        "driver_idle_minutes": "90", "max_failed_attempts": "2",
        "box_types": ["standard", "diabetic"]}


def test_an_admin_changes_how_the_program_works_and_each_change_is_audited(
        client: TestClient, program: Program, database: Database) -> None:
    token = sign_in(client, program.admin)
    page = client.get("/coordinator/program")
    assert "Time at each door" in page.text and "Seconds a driver spends" in page.text
    response = client.post(f"/coordinator/program/{program.food_bank_id}/choices",
                           data={**FORM, "csrf_token": token})
    assert response.status_code == 200 and "Saved: time at each door 180 → 240 s" in response.text
    with database.reader() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        assert food_bank is not None
        assert (food_bank.service_base_s, food_bank.require_upstairs, food_bank.box_types) == \
            (240, False, ["diabetic", "standard"])
        admin_id = db.scalar(select(User.id).where(User.email == program.admin))
        audit = db.scalars(select(AuditEvent).where(AuditEvent.resource == "program_settings")).all()
    assert len(audit) == 9 and {a.user_id for a in audit} == {admin_id}
    assert any("upstairs" in (a.detail or "") and "yes → no" in (a.detail or "") for a in audit)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("staff_idle_minutes", "45", "Staff idle sign-out: from 5 to 30 min."),
    ("service_base_s", "lots", "Enter a whole number of s."),
])
def test_out_of_bounds_values_are_refused_whole(client: TestClient, program: Program, database: Database,
                                                field: str, value: str, message: str) -> None:
    token = sign_in(client, program.admin)
    response = client.post(f"/coordinator/program/{program.food_bank_id}/choices",
                           data={**FORM, field: value, "csrf_token": token})
    assert response.status_code == 422 and message in response.text
    with database.reader() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        assert food_bank is not None
        assert (food_bank.service_base_s, food_bank.staff_idle_minutes) == (180, 15)


def test_coordinators_do_not_change_how_the_program_works(client: TestClient, program: Program) -> None:
    token = sign_in(client, program.coordinator)
    assert "How the program works" not in client.get("/coordinator/program").text
    response = client.post(f"/coordinator/program/{program.food_bank_id}/choices",
                           data={**FORM, "csrf_token": token})
    assert response.status_code == 403


def test_the_planner_reads_service_times_and_the_upstairs_rule(database: Database, program: Program,
                                                               settings: Settings) -> None:
    """A third-floor walk-up: its time at the door follows the program's numbers, and it needs a driver
    who carries upstairs only while the program says so."""
    with database.writer() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        assert food_bank is not None
        food_bank.service_base_s, food_bank.service_per_box_s, food_bank.service_per_floor_s = 300, 10, 20
        food_bank.require_upstairs = False
        add_order(db, program, 1, floor=3, boxes=2)
        add_driver(db, program, 1, upstairs=False)
        plan = days.prepare(db, food_bank, DAY)
        (job,) = planning.build(db, plan, settings).problem.jobs
        assert job.service == 300 + 10 * 2 + 20 * 2 * 2
        assert "upstairs" not in job.skills


def test_idle_sign_out_follows_the_program(database: Database, program: Program, settings: Settings) -> None:
    """Staff idle sign-out is the program's setting: alive just before it, over just after."""
    clock = FixedClock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    settings = msgspec.structs.replace(settings, clock=clock)
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).staff_idle_minutes = 25  # type: ignore[union-attr]
        user = db.scalar(select(User).where(User.email == program.clinic1))  # a clinic of the program
        assert user is not None
        raw, _ = auth.start_session(db, user, settings)
        db.commit()
    with database.reader() as db:
        clock.advance(dt.timedelta(minutes=24, seconds=59))
        assert auth.resolve_session(db, raw, settings) is not None
        clock.advance(dt.timedelta(seconds=2))
        assert auth.resolve_session(db, raw, settings) is None
