"""The roster: a coordinator keeps drivers, their shifts and the closed days; drivers' offered shifts
go through the same rules."""

from __future__ import annotations

import datetime as dt

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import Driver, Holiday, Shift, User
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.program import roster
from tests.builders import Program, password_hash, sign_in
from tests.plan_builders import make_driver

NEXT_WEEK = dt.date.today() + dt.timedelta(days=7)


def driver_form(csrf: str, **changes: str) -> dict[str, str]:
    form = {"csrf_token": csrf, "display_name": "Dana Driver", "email": "Dana@Example.org",
            "phone": "+1 510 555 0199", "vehicle": "van", "capacity_boxes": "24", "languages": "en, es",
            "carries_upstairs": "true", "home_lat": "37.76", "home_lon": "-122.19"}
    return form | changes


def shift_form(csrf: str, depot_id: int, **changes: str) -> dict[str, str]:
    form = {"csrf_token": csrf, "date": NEXT_WEEK.isoformat(), "start": "09:00", "end": "13:00",
            "start_place": f"depot:{depot_id}", "end_place": "home"}
    return form | changes


def test_coordinator_adds_a_driver_and_next_weeks_shift(client: TestClient, program: Program,
                                                        database: Database) -> None:
    csrf = sign_in(client, program.coordinator)
    added = client.post("/coordinator/drivers", data=driver_form(csrf), follow_redirects=False)
    assert added.status_code in (302, 303), added.text
    shifts_url = added.headers["location"].split("?")[0]
    assert client.get(shifts_url).status_code == 200

    with database.reader() as db:
        driver = db.scalar(select(Driver))
        assert driver is not None
        user = db.get(User, driver.user_id)
        assert user is not None
        assert (user.email, user.password_hash, [m.role for m in user.memberships]) == \
            ("dana@example.org", None, ["driver"])
        assert (driver.vehicle, driver.capacity_boxes, driver.languages, driver.carries_upstairs) == \
            ("van", 24, ["en", "es"], True)

    saved = client.post(shifts_url, data=shift_form(csrf, program.depot_id), follow_redirects=True)
    assert saved.status_code == 200
    assert "09:00–13:00" in saved.text

    overlap = client.post(shifts_url, data=shift_form(csrf, program.depot_id, start="12:00", end="15:00"))
    assert overlap.status_code == 422
    assert "overlaps Dana Driver&#39;s shift" in overlap.text and "from 09:00 to 13:00" in overlap.text

    backwards = client.post(shifts_url, data=shift_form(csrf, program.depot_id, date=(
        NEXT_WEEK + dt.timedelta(days=1)).isoformat(), start="13:00", end="09:00"))
    assert backwards.status_code == 422
    assert "must end after it starts" in backwards.text

    with database.reader() as db:
        shifts = db.scalars(select(Shift)).all()
        assert [(s.date, s.start, s.end, s.start_depot_id, s.end_depot_id, s.offered_by) for s in shifts] == \
            [(NEXT_WEEK, dt.time(9), dt.time(13), program.depot_id, None, "coordinator")]


def test_the_same_email_twice_is_refused_with_a_message(client: TestClient, program: Program) -> None:
    csrf = sign_in(client, program.coordinator)
    client.post("/coordinator/drivers", data=driver_form(csrf))
    again = client.post("/coordinator/drivers", data=driver_form(csrf, display_name="Other"))
    assert again.status_code == 422
    assert "already exists" in again.text


def test_editing_a_driver_changes_their_details(client: TestClient, program: Program,
                                                database: Database) -> None:
    with database.writer() as db:
        driver_id = make_driver(db, program, "ed@example.org", "Ed Driver").id
        db.commit()
    csrf = sign_in(client, program.coordinator)
    assert "Change Ed Driver" in client.get(f"/coordinator/drivers?edit={driver_id}").text
    saved = client.post(f"/coordinator/drivers/{driver_id}",
                        data=driver_form(csrf, email="ed@example.org", display_name="Edwin Driver",
                                         capacity_boxes="8", carries_upstairs=""),
                        follow_redirects=True)
    assert saved.status_code == 200 and "Edwin Driver" in saved.text
    with database.reader() as db:
        driver = db.get(Driver, driver_id)
        assert driver is not None
        assert (driver.capacity_boxes, driver.user.display_name) == (8, "Edwin Driver")


def test_a_driver_offered_shift_follows_the_same_rules(program: Program, database: Database) -> None:
    with database.writer() as db:
        driver = make_driver(db, program, "offer@example.org", "Olu Offer")
        data = roster.ShiftIn(date=NEXT_WEEK, start=dt.time(10), end=dt.time(12),
                              start_place="home", end_place=f"depot:{program.depot_id}")
        with pytest.raises(roster.RosterError, match="no home location"):
            roster.save_shift(db, driver=driver, data=data, offered_by="driver", today=dt.date.today())
        driver.home_lat, driver.home_lon = 37.76, -122.19
        shift = roster.save_shift(db, driver=driver, data=data, offered_by="driver", today=dt.date.today())
        assert shift.offered_by == "driver"
        with pytest.raises(roster.RosterError, match="in the past"):
            roster.save_shift(db, driver=driver, offered_by="driver", today=dt.date.today(),
                              data=roster.ShiftIn(date=dt.date.today() - dt.timedelta(days=1),
                                                  start=dt.time(9), end=dt.time(10), start_place="home",
                                                  end_place="home"))
        with pytest.raises(roster.RosterError, match="one of the program's depots"):
            roster.save_shift(db, driver=driver, offered_by="driver", today=dt.date.today(), shift=shift,
                              data=roster.ShiftIn(date=NEXT_WEEK, start=dt.time(9), end=dt.time(10),
                                                  start_place="depot:999", end_place="home"))
        roster.mark_holiday(db, food_bank_id=program.food_bank_id, date=NEXT_WEEK + dt.timedelta(days=1),
                            name="Staff training", today=dt.date.today())
        with pytest.raises(roster.RosterError, match=r"closed on .* \(Staff training\)"):
            roster.save_shift(db, driver=driver, offered_by="driver", today=dt.date.today(),
                              data=roster.ShiftIn(date=NEXT_WEEK + dt.timedelta(days=1), start=dt.time(9),
                                                  end=dt.time(10), start_place="home", end_place="home"))


def test_deactivating_a_driver_ends_their_session(client: TestClient, program: Program, database: Database,
                                                  settings) -> None:  # type: ignore[no-untyped-def]
    with database.writer() as db:
        driver = make_driver(db, program, "leaving@example.org", "Lee Leaving", home=(37.7, -122.1))
        roster.save_shift(db, driver=driver, offered_by="driver", today=dt.date.today(),
                          data=roster.ShiftIn(date=NEXT_WEEK, start=dt.time(9), end=dt.time(12),
                                              start_place="home", end_place="home"))
        raw, _ = auth.start_session(db, driver.user, settings)
        driver_id = driver.id
        db.commit()
    client.cookies.set("__Host-session", raw)  # the driver's phone
    assert client.get("/driver", follow_redirects=False).status_code == 200

    client.cookies.clear()  # the coordinator's desk
    csrf = sign_in(client, program.coordinator)
    done = client.post(f"/coordinator/drivers/{driver_id}/deactivate", data={"csrf_token": csrf},
                       follow_redirects=True)
    assert done.status_code == 200 and "inactive" in done.text

    client.cookies.clear()
    client.cookies.set("__Host-session", raw)  # the phone again
    after = client.get("/driver", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")
    with database.reader() as db:
        assert db.scalars(select(Shift).where(Shift.driver_id == driver_id)).all() == []


def test_holidays_are_marked_once_and_can_be_reopened(client: TestClient, program: Program,
                                                      database: Database) -> None:
    csrf = sign_in(client, program.coordinator)
    day = (NEXT_WEEK + dt.timedelta(days=3)).isoformat()
    marked = client.post("/coordinator/holidays", follow_redirects=True,
                         data={"csrf_token": csrf, "date": day, "name": "Harvest fair"})
    assert marked.status_code == 200 and "Harvest fair" in marked.text
    twice = client.post("/coordinator/holidays", data={"csrf_token": csrf, "date": day, "name": "Again"})
    assert twice.status_code == 422 and "already marked closed (Harvest fair)" in twice.text
    nameless = client.post("/coordinator/holidays", data={"csrf_token": csrf, "date": day, "name": " "})
    assert nameless.status_code == 422
    with database.reader() as db:
        holiday = db.scalar(select(Holiday))
        assert holiday is not None
        holiday_id = holiday.id
    reopened = client.post(f"/coordinator/holidays/{holiday_id}/delete", data={"csrf_token": csrf},
                           follow_redirects=True)
    assert reopened.status_code == 200 and "Harvest fair" not in reopened.text


@pytest.mark.parametrize("url", ["/coordinator/drivers", "/coordinator/holidays"])
def test_clinic_staff_get_403_on_roster_pages(client: TestClient, program: Program, url: str) -> None:
    sign_in(client, program.clinic1)
    assert client.get(url).status_code == 403


def test_a_coordinator_of_another_program_cannot_see_a_driver(client: TestClient, program: Program,
                                                              database: Database) -> None:
    from delivery.models import Organization, OrganizationKind, Role
    with database.writer() as db:
        other = Organization(name="Other Food Bank", kind=OrganizationKind.food_bank)
        db.add(other)
        db.flush()
        auth.create_user(db, email="other-coord@example.org", display_name="Other Coord",
                         memberships=[(other.id, Role.coordinator)], password_hash=password_hash())
        driver_id = make_driver(db, program, "mine@example.org", "Mine Driver").id
        db.commit()
    sign_in(client, "other-coord@example.org")
    assert client.get(f"/coordinator/drivers/{driver_id}/shifts").status_code == 404
