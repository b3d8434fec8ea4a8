"""Edit a planned day: move, lock, remove a stop, add a driver; every edit re-times the touched routes
with the planner's travel model, is re-checked by the planner's checker and says what it found; an
edit made against an older version of the day is refused with a clear message."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from delivery.models import Driver, Organization, Plan, ReferralEvent, Route, Stop, StopStatus
from delivery.plans import day as days
from delivery.plans import edits as plan_edits
from delivery.plans import planning
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program
from tests.day_builders import DAY, add_driver, make_day
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
