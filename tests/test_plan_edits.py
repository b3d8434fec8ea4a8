"""Edit a planned day: move, lock, remove a stop, add a driver; every edit re-times the touched routes
with the planner's travel model, is re-checked by the planner's checker and says what it found; an
edit made against an older version of the day is refused with a clear message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import (
    Driver,
    Organization,
    OrganizationKind,
    Plan,
    ReferralEvent,
    Route,
    Stop,
    StopStatus,
)
from delivery.plans import day as days
from delivery.plans import edits as plan_edits
from delivery.plans import planning
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import Program, sign_in
from tests.conftest import BASE_URL
from tests.day_builders import DAY, add_driver, make_day
from tests.osrm_server import osrm_server
from tests.plan_checks import stored_check


@pytest.fixture
def planned(database: Database, program: Program, settings: Settings) -> int:
    with database.writer() as db:
        make_day(db, program, stops=8, drivers=2, capacity=4)  # full: 4 + 4
        add_driver(db, program, 3, date=None, capacity=2)  # no shift yet
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        db.commit()
        plan_id = plan.id
    planning.plan_now(database, settings, plan_id, 1.0)
    return plan_id


def routes_of(db, plan_id: int) -> list[Route]:  # type: ignore[no-untyped-def]
    return list(db.scalars(select(Route).where(Route.plan_id == plan_id).order_by(Route.id)))


def on(db, route_id: int) -> list[Stop]:  # type: ignore[no-untyped-def]
    return list(db.scalars(select(Stop).where(Stop.route_id == route_id).order_by(Stop.seq)))


def test_move_lock_remove_and_add_a_driver(database: Database, planned: int, settings: Settings) -> None:
    with database.writer() as db:
        plan = db.get(Plan, planned)
        a, b = routes_of(db, planned)
        stop = on(db, a.id)[-1]
        result = plan_edits.move_stop(db, planned, plan.version, stop.id, b.id, 1, settings)
        db.commit()
        assert result.version == plan.version and set(result.routes) == {a.id, b.id}
        assert [s.seq for s in on(db, b.id)] == list(range(1, len(on(db, b.id)) + 1))
        assert on(db, b.id)[0].id == stop.id
        # b now carries 5 boxes in a car of 4: the checker says so in plain words
        assert any("over capacity" in w for w in result.warnings), result.warnings
        violations, _ = stored_check(db, plan, settings)
        assert {v.kind for v in violations} == {"capacity"}  # times stayed true

        result = plan_edits.lock_stop(db, planned, result.version, stop.id, True, settings)
        db.commit()
        assert db.get(Stop, stop.id).locked

        result = plan_edits.move_stop(db, planned, result.version, stop.id, a.id, None, settings)
        first = on(db, a.id)[0].id
        result = plan_edits.remove_stop(db, planned, result.version, first, "In hospital", settings)
        db.commit()
        removed = db.scalar(select(Stop).where(Stop.status == StopStatus.removed))
        assert removed.removed_reason == "In hospital" and removed.route_id is None
        events = db.scalars(select(ReferralEvent).where(ReferralEvent.kind == "stop_removed")).all()
        assert [(e.data["stop_id"], e.data["reason"]) for e in events] == [(first, "In hospital")]
        with pytest.raises(plan_edits.EditError, match="Write why"):
            plan_edits.remove_stop(db, planned, result.version, stop.id, "  ", settings)

        new = db.scalars(select(Driver).order_by(Driver.id.desc())).first()
        assert new.id not in {r.driver_id for r in routes_of(db, planned)}  # driver 3 is not on the day yet
        result = plan_edits.add_driver(db, planned, result.version, new.id, settings, today=DAY)
        db.commit()
        assert len(routes_of(db, planned)) == 3 and result.warnings == []
        c = routes_of(db, planned)[-1]
        assert c.driver_id == new.id and on(db, c.id) == []
        result = plan_edits.move_stop(db, planned, result.version, stop.id, c.id, 1, settings)
        db.commit()
        moved = db.get(Stop, stop.id)
        assert moved.route_id == c.id and moved.eta is not None and moved.locked  # the lock follows
        violations, _ = stored_check(db, db.get(Plan, planned), settings)
        assert violations == []


def test_a_stale_version_is_refused_with_the_current_one(database: Database, planned: int,
                                                         settings: Settings) -> None:
    with database.writer() as db:
        plan = db.get(Plan, planned)
        seen = plan.version
        a, b = routes_of(db, planned)
        first, second = on(db, a.id)[:2]
        plan_edits.move_stop(db, planned, seen, first.id, b.id, None, settings)  # coordinator 1
        db.commit()
        with pytest.raises(plan_edits.EditConflict, match="Someone else changed this day") as refused:
            plan_edits.move_stop(db, planned, seen, second.id, b.id, None, settings)  # coordinator 2
        db.rollback()
        assert refused.value.version == seen + 1
        assert db.get(Stop, second.id).route_id == a.id  # nothing was overwritten


def test_a_late_window_shows_as_a_warning(database: Database, planned: int, settings: Settings) -> None:
    with database.writer() as db:
        plan = db.get(Plan, planned)
        a, _ = routes_of(db, planned)
        stop = on(db, a.id)[-1]
        stop.window_start, stop.window_end = 9 * 3600, 9 * 3600 + 60  # must be served by 09:01
        db.commit()
        result = plan_edits.move_stop(db, planned, plan.version, stop.id, a.id, 99, settings)
        assert any("late arrival" in w for w in result.warnings), result.warnings
        moved = db.get(Stop, stop.id)
        assert moved.route_id == a.id and moved.eta > moved.window_end  # the warning tells the truth


# --- the travel matrix is worked out on a snapshot, not under the writer ----------------------


@contextmanager
def coordinator_page(database: Database, settings: Settings, program: Program,
                     osrm_url: str) -> Iterator[tuple[TestClient, str]]:
    """The coordinator signed in to an app whose travel times come from the OSRM service."""
    timed = msgspec.structs.replace(settings, routing_matrix="osrm", osrm_url=osrm_url)
    with TestClient(app=create_app(timed, database), base_url=BASE_URL) as client:
        yield client, sign_in(client, program.coordinator)


def test_the_page_times_an_edit_while_others_write(database: Database, program: Program, planned: int,
                                                   settings: Settings) -> None:
    """Moving a stop on the day page: while the travel matrix is fetched (OSRM on loopback) nobody
    holds the writer, and another write commits meanwhile; then the move is written with its times."""
    with database.reader() as db:
        seen = db.get(Plan, planned).version
        a, b = routes_of(db, planned)
        stop_id = on(db, a.id)[-1].id
    writer_held: list[int] = []

    def another_write() -> None:
        writer_held.append(database.write_engine.pool.checkedout() if database.is_sqlite else 0)
        with database.writer() as other:
            other.add(Organization(name=f"Night Clinic {len(writer_held)}", kind=OrganizationKind.clinic,
                                   food_bank_id=program.food_bank_id))
            other.commit()

    with osrm_server() as osrm, coordinator_page(database, settings, program, osrm.url) as (client, token):
        osrm.while_answering = another_write
        response = client.post(f"/coordinator/plans/{planned}/stops/{stop_id}/move",
                               data={"csrf_token": token, "version": seen, "route_id": b.id, "position": 1})
    assert response.status_code == 200 and "Moved to" in response.text, response.text
    assert writer_held == [0]  # one matrix, fetched while the writer was free
    with database.reader() as db:
        moved = db.get(Stop, stop_id)
        assert moved.route_id == b.id and moved.seq == 1
        assert moved.eta is not None and db.get(Plan, planned).version == seen + 1
        assert db.scalar(select(Organization.id).where(Organization.name == "Night Clinic 1"))


def test_a_change_while_an_edit_is_timed_is_a_conflict(database: Database, program: Program, planned: int,
                                                       settings: Settings) -> None:
    """Another coordinator's edit commits while this one's matrix is fetched: the version is checked
    again under the writer, so this edit is refused with the message (409 for the API, shown above
    the day on the page) and writes nothing; the other edit stands."""
    with database.reader() as db:
        seen = db.get(Plan, planned).version
        a, b = routes_of(db, planned)
        mine, theirs = on(db, a.id)[0].id, on(db, b.id)[0].id

    with osrm_server() as osrm, coordinator_page(database, settings, program, osrm.url) as (client, token):
        timed = msgspec.structs.replace(settings, routing_matrix="osrm", osrm_url=osrm.url)

        def another_coordinator_locks_a_stop() -> None:
            if osrm.requests == 1:  # (their own edit asks for a matrix too)
                with database.writer() as other:
                    plan_edits.lock_stop(other, planned, seen, theirs, True, timed)
                    other.commit()

        osrm.while_answering = another_coordinator_locks_a_stop
        response = client.post(f"/coordinator/plans/{planned}/stops/{mine}/move",
                               data={"csrf_token": token, "version": seen, "route_id": b.id})
    assert response.status_code == 200
    assert f"you saw version {seen}, it is now version {seen + 1}" in response.text
    with database.reader() as db:
        assert db.get(Stop, mine).route_id == a.id  # not moved
        assert db.get(Stop, theirs).locked and db.get(Plan, planned).version == seen + 1


def test_apply_checks_the_version_again(database: Database, planned: int, settings: Settings) -> None:
    """prepare() on a snapshot, a change commits, apply() refuses with EditConflict (409) naming the
    current version; the prepared edit applies when nothing changed in between."""
    with database.reader() as db:
        seen = db.get(Plan, planned).version
        a, b = routes_of(db, planned)
        first, second = (s.id for s in on(db, a.id)[:2])
        prepared = plan_edits.prepare(db, planned, seen, plan_edits.Move(first, b.id, 1), settings)
    with database.writer() as db:
        plan_edits.remove_stop(db, planned, seen, second, "In hospital", settings)
        db.commit()
    with database.writer() as db, pytest.raises(plan_edits.EditConflict) as refused:
        plan_edits.apply(db, prepared)
    assert refused.value.version == seen + 1 and refused.value.status_code == 409
    with database.reader() as db:
        assert db.get(Stop, first).route_id == a.id
        prepared = plan_edits.prepare(db, planned, seen + 1, plan_edits.Move(first, b.id, 1), settings)
    with database.writer() as db:
        result = plan_edits.apply(db, prepared)
        db.commit()
        moved = db.get(Stop, first)
        assert result.version == seen + 2 and moved.route_id == b.id and moved.seq == 1
        violations, _ = stored_check(db, db.get(Plan, planned), settings)
        assert {v.kind for v in violations} <= {"capacity"}  # the times written are true
