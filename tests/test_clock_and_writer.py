"""One clock decides "today" in the program's time zone; GET requests never write; a request that
writes holds the SQLite writer only until it commits."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import event, func, select

from delivery.models import Organization, Plan
from delivery.platform.clock import FixedClock
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.referrals import intake
from delivery.referrals.schemas import ReferralIn
from delivery.web.app import create_app, tune_server_process
from delivery.web.security import SAFE_METHODS
from tests.builders import PASSWORD, Program, referral_body, sign_in
from tests.conftest import BASE_URL
from tests.coordinator_builders import refer

MONDAY = dt.date(2026, 11, 30)


@pytest.mark.parametrize("timezone", ["Pacific/Auckland", "America/Los_Angeles"])
def test_a_referral_at_half_past_eleven_at_night_starts_on_the_local_delivery_day(
        database: Database, program: Program, timezone: str) -> None:
    """Monday 23:30 where the program runs (Tuesday in UTC for Los Angeles, still Monday in UTC
    for Auckland): a program delivering on Mondays starts the new order that same Monday."""
    late = FixedClock(dt.datetime.combine(MONDAY, dt.time(23, 30), tzinfo=ZoneInfo(timezone)))
    with database.writer() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        assert food_bank is not None
        food_bank.timezone, food_bank.delivery_weekday = timezone, MONDAY.weekday()
        body = msgspec.convert(referral_body(), ReferralIn)
        result = intake.refer(db, body, clinic_id=program.clinic1_id, actor_id=None, source="api", clock=late)
        assert result.order is not None
        assert result.order.start_date == MONDAY
        late.advance(dt.timedelta(hours=1))  # half past midnight: Tuesday, so the next Monday
        again = intake.refer(db, msgspec.convert(referral_body(patient__mrn="B-7"), ReferralIn),
                             clinic_id=program.clinic1_id, actor_id=None, source="api", clock=late)
        assert again.order is not None and again.order.start_date == MONDAY + dt.timedelta(weeks=1)


@pytest.fixture
def monday_app(settings: Settings, database: Database) -> Iterator[TestClient]:
    clock = FixedClock(dt.datetime.combine(MONDAY, dt.time(10), tzinfo=ZoneInfo("America/Los_Angeles")))
    app = create_app(msgspec.structs.replace(settings, clock=clock), database)
    with TestClient(app=app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def writes(database: Database) -> Iterator[list[str]]:
    """Every INSERT, UPDATE or DELETE the database is sent while the test runs."""
    seen: list[str] = []

    def note(_conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            seen.append(statement)

    engines = {database.write_engine, database.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    yield seen
    for engine in engines:
        event.remove(engine, "before_cursor_execute", note)


def plans(database: Database) -> int:
    with database.reader() as db:
        return db.scalar(select(func.count(Plan.id))) or 0


def test_no_get_page_writes_not_even_a_day_with_orders_due(database: Database, program: Program,
                                                          monday_app: TestClient, writes: list[str]) -> None:
    """Crawl every GET page a coordinator can open without ids, and the next delivery day with
    orders due and no stops yet (which used to build them): nothing is written but the audit trail
    of the patients shown (R10.1, in a short write of its own)."""
    with database.writer() as db:
        refer(db, program, "W-1", today=MONDAY)
        db.commit()
    sign_in(monday_app, program.coordinator, PASSWORD)
    writes.clear()
    pages = sorted(route.path for route in monday_app.app.routes
                   if route.path.startswith("/coordinator") and "{" not in route.path
                   and SAFE_METHODS & set(getattr(route, "methods", ())))
    assert len(pages) >= 6
    tuesday = MONDAY + dt.timedelta(days=1)
    for path in [*pages, f"/coordinator/plans/{tuesday}", f"/coordinator/plans?date={tuesday}"]:
        response = monday_app.get(path)
        assert response.status_code == 200, path
    assert [w for w in writes if not w.startswith("INSERT INTO audit_events ")] == []
    assert writes  # the referral list showed the patient: that read is on the trail
    assert plans(database) == 0
    day = monday_app.get(f"/coordinator/plans/{tuesday}").text
    assert "1 order due on this day; its stops are not built yet." in day


def test_building_the_stops_is_an_explicit_step_and_the_page_says_when_orders_changed(
        database: Database, program: Program, monday_app: TestClient) -> None:
    tuesday = MONDAY + dt.timedelta(days=1)
    with database.writer() as db:
        refer(db, program, "S-1", today=MONDAY)
        db.commit()
    token = sign_in(monday_app, program.coordinator, PASSWORD)
    built = monday_app.post(f"/coordinator/plans/{tuesday}/stops", data={"csrf_token": token})
    assert built.status_code == 200 and "Build the day's stops" not in built.text
    assert "1</strong> stops" in built.text
    with database.writer() as db:  # another patient is referred after the stops were built
        refer(db, program, "S-2", today=MONDAY)
        db.commit()
    page = monday_app.get(f"/coordinator/plans/{tuesday}").text
    assert "Orders changed since the stops were built:" in page and "1 stop to add or drop." in page
    refreshed = monday_app.post(f"/coordinator/plans/{tuesday}/stops", data={"csrf_token": token}).text
    assert "Orders changed" not in refreshed and "2</strong> stops" in refreshed


@pytest.mark.parametrize("date", ["1800-01-01", "9999-12-31", "0001-01-01", "2025-11-28", "2027-12-02"])
def test_a_date_outside_a_year_of_today_is_not_found_and_makes_nothing(
        database: Database, program: Program, monday_app: TestClient, writes: list[str], date: str) -> None:
    token = sign_in(monday_app, program.coordinator, PASSWORD)
    writes.clear()
    assert monday_app.get(f"/coordinator/plans/{date}").status_code == 404
    assert monday_app.post(f"/coordinator/plans/{date}/stops", data={"csrf_token": token}).status_code == 404
    assert writes == [] and plans(database) == 0


def test_a_year_either_side_of_today_still_opens(program: Program, monday_app: TestClient) -> None:
    sign_in(monday_app, program.coordinator, PASSWORD)
    for date in (MONDAY - dt.timedelta(days=366), MONDAY + dt.timedelta(days=366)):
        assert monday_app.get(f"/coordinator/plans/{date}").status_code == 200


def test_a_reader_refuses_to_write(database: Database, program: Program) -> None:
    with database.reader() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        assert food_bank is not None
        food_bank.name = "Renamed"
        with pytest.raises(RuntimeError, match="only reads"):
            db.flush()


def test_a_request_session_lets_go_of_the_writer_when_it_commits(database: Database,
                                                                  program: Program) -> None:
    """The writer from the first query to the commit, a reader afterwards: while the answer is
    rendered, another request can take the writer (SQLite has one)."""
    with database.write_then_read() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        assert food_bank is not None and db.holds_writer == database.is_sqlite
        food_bank.name = "Renamed"
        db.commit()
        assert db.get_bind() is database.read_engine
        name = db.scalar(select(Organization.name).where(Organization.id == program.food_bank_id))
        assert name == "Renamed"
        assert not db.holds_writer
        with database.writer() as other:  # would wait for the pool if the first still held it
            other.get(Organization, program.food_bank_id)


def test_a_server_process_hands_the_interpreter_lock_on_as_its_settings_say(settings: Settings) -> None:
    """`delivery serve` sets the switch interval from Settings (0.5 ms unless chosen otherwise), so a
    request holding the writer gets the interpreter lock back soon after each query."""
    before = sys.getswitchinterval()
    try:
        tune_server_process(settings)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        tune_server_process(msgspec.structs.replace(settings, switch_interval_ms=2.0))
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)
