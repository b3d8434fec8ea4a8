"""Drivers on their phones: a personal link opens once (R1.3), they see only their own route (R3.3),
only while it is current (R3.5), and no patient data beyond what they need (R3.4's canary part; the
allowlisted stop payload and the log check R3.4 also asks for are not tested here)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import Driver, Plan, Route, RouteLink, UserSession
from delivery.plans import edits as plan_edits
from delivery.plans import publishing
from delivery.platform import auth
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, sign_in
from tests.plan_builders import CANARY, DEFAULT_STOPS, StopSpec, make_day

LA = ZoneInfo("America/Los_Angeles")
DAY = dt.date(2026, 12, 1)
MORNING = dt.datetime(2026, 12, 1, 8, 0, tzinfo=LA)
COOKIE = "__Host-session"

ACTOR = AuditContext.for_command("publish")


@pytest.fixture
def day(program: Program, database: Database):  # type: ignore[no-untyped-def]
    stops = [[*DEFAULT_STOPS[0],
              StopSpec("Canary", "Bird", mrn=CANARY, access_notes="side door", phone="+15105550177",
                       do_not_contact=True)], DEFAULT_STOPS[1]]
    # Published an hour before MORNING by the test's clock, not the wall clock's hour (make_day
    # stamps publication from "now").
    with time_machine.travel(MORNING, tick=False), database.writer() as db:
        built = make_day(db, program, date=DAY, stops=stops)
        db.commit()
    return built


def issue(database: Database, settings: Settings, route_id: int) -> str:
    with database.writer() as db:
        url = publishing.issue_link(db, db.get(Route, route_id), settings)  # type: ignore[arg-type]
        db.commit()
    return "/r/" + url.rsplit("/r/", 1)[1]


@pytest.mark.req("R1.3")
def test_a_link_opens_once_then_only_in_the_same_browser(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                                         settings: Settings) -> None:
    with time_machine.travel(MORNING, tick=False):
        link = issue(database, settings, day.route_ids[0])
        opened = client.get(link, follow_redirects=False)
        assert opened.status_code in (302, 303)
        assert opened.headers["location"] == f"/driver/routes/{day.route_ids[0]}"
        assert COOKIE in opened.cookies

        page = client.get(opened.headers["location"])
        assert page.status_code == 200
        names = re.findall(r'<strong class="stop-name">([^<]+)</strong>', page.text)
        assert names == ["Rosa D.", "Minh T.", "Ana L.", "Canary B."]
        assert "gate code 1234" in page.text and "Floor 3, no elevator" in page.text

        again = client.get(link, follow_redirects=False)  # same phone: fine
        assert again.headers["location"] == f"/driver/routes/{day.route_ids[0]}"

        with database.reader() as db:
            stored = db.scalar(select(RouteLink))
            assert stored is not None and stored.opened_at is not None
            sessions = db.scalars(select(UserSession)).all()
            assert len(sessions) == 1 and sessions[0].expires_at == stored.expires_at

        client.cookies.clear()  # another phone
        refused = client.get(link, follow_redirects=False)
        assert refused.status_code == 403
        assert "already opened" in refused.text and "ask your coordinator" in refused.text
        assert COOKIE not in refused.cookies


def test_expired_revoked_and_unknown_links(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                           settings: Settings) -> None:
    with time_machine.travel(MORNING, tick=False):
        first = issue(database, settings, day.route_ids[0])
        second = issue(database, settings, day.route_ids[0])  # revokes the first
        revoked = client.get(first)
        assert revoked.status_code == 410 and "ask your coordinator" in revoked.text
        assert client.get("/r/not-a-real-token").status_code == 404
    with time_machine.travel(dt.datetime(2026, 12, 2, 6, 0, 1, tzinfo=LA), tick=False):
        expired = client.get(second)
        assert expired.status_code == 410 and "expired" in expired.text


def driver_session(database: Database, settings: Settings, driver_id: int) -> str:
    with database.writer() as db:
        raw, _ = auth.start_session(db, db.get(Driver, driver_id).user, settings)  # type: ignore[union-attr]
        db.commit()
    return raw


@pytest.mark.req("R3.3")
def test_a_driver_sees_only_their_own_route(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                            settings: Settings) -> None:
    with time_machine.travel(MORNING, tick=False):
        client.cookies.set(COOKIE, driver_session(database, settings, day.driver_ids[0]))
        mine = client.get("/driver")
        assert mine.status_code == 200 and f"/driver/routes/{day.route_ids[0]}" in mine.text
        assert f"/driver/routes/{day.route_ids[1]}" not in mine.text
        assert client.get(f"/driver/routes/{day.route_ids[1]}").status_code == 404
        assert client.get("/driver/routes/999999").status_code == 404
        # no coordinator exports for drivers (R3.6)
        assert client.get(f"/coordinator/plans/{day.plan_id}/export.csv").status_code == 403
        assert client.get(f"/coordinator/plans/{day.plan_id}/sheets").status_code == 403


@pytest.mark.req("R3.5")
def test_nothing_after_the_grace_period(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                        settings: Settings) -> None:
    url = f"/driver/routes/{day.route_ids[0]}"
    end = publishing.link_expiry(DAY, "America/Los_Angeles", 6)
    with time_machine.travel(end - dt.timedelta(seconds=1), tick=False):
        client.cookies.set(COOKIE, driver_session(database, settings, day.driver_ids[0]))
        assert client.get(url).status_code == 200
    with time_machine.travel(end + dt.timedelta(seconds=1), tick=False):
        assert client.get(url).status_code == 404
        assert f"/driver/routes/{day.route_ids[0]}" not in client.get("/driver").text
    with time_machine.travel(dt.datetime(2026, 12, 3, 9, 0, tzinfo=LA), tick=False):  # the day after
        client.cookies.set(COOKIE, driver_session(database, settings, day.driver_ids[0]))
        assert client.get(url).status_code == 404


def test_an_unpublished_route_is_not_shown(client: TestClient, program: Program, database: Database,
                                           settings: Settings) -> None:
    with database.writer() as db:
        draft = make_day(db, program, date=DAY, status="planned")
        db.commit()
    with time_machine.travel(MORNING, tick=False):
        client.cookies.set(COOKIE, driver_session(database, settings, draft.driver_ids[0]))
        assert client.get(f"/driver/routes/{draft.route_ids[0]}").status_code == 404


def test_no_phi_beyond_what_a_driver_needs(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                           settings: Settings) -> None:
    with time_machine.travel(MORNING, tick=False):
        link = issue(database, settings, day.route_ids[0])
        bodies = [client.get(link).text, client.get("/driver").text,
                  client.get(f"/driver/routes/{day.route_ids[0]}").text]
        client.cookies.clear()
        bodies.append(client.get(link).text)  # the refusal page too
    html = "\n".join(bodies)
    assert "Canary B." in html and "side door" in html  # the stop is there…
    for secret in (CANARY, "MRN-", "1948-03-02", "03/02/1948", "1948", "Diaz", "Bird", "+15105550177",
                   "hunger", "screening", "mobility"):
        assert secret not in html, secret  # …but not its MRN, birth date, last name, screening
    assert 'href="tel:+15105550100"' in html  # a phone for those who may be called
    assert "https://www.google.com/maps/dir/?api=1&amp;destination=1234%2098th%20Ave" in html


def test_clinic_staff_cannot_open_driver_pages(client: TestClient, program: Program, day) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, program.clinic1)
    assert client.get("/driver").status_code == 403
    assert client.get(f"/driver/routes/{day.route_ids[0]}").status_code == 403


def test_a_changed_route_tells_its_driver(client: TestClient, program: Program, database: Database,
                                          settings: Settings) -> None:
    """A coordinator removes a stop and republishes: that driver's page says the route changed,
    the other driver's page does not."""
    with database.writer() as db:
        built = make_day(db, program, date=DAY, status="planned")
        db.commit()
    with time_machine.travel(MORNING, tick=False):
        with database.writer() as db:
            links = {p.route_id: p.link for p in publishing.publish(db, db.get(Plan, built.plan_id), ACTOR,
                                                                     settings)}
            db.commit()
        pages = {}
        for route_id in built.route_ids:
            client.cookies.clear()
            opened = client.get("/r/" + links[route_id].rsplit("/r/", 1)[1], follow_redirects=False)
            pages[route_id] = (opened.headers["location"], client.cookies[COOKIE])
            assert "Your route for" not in client.get(pages[route_id][0]).text
        with database.writer() as db:
            plan = db.get(Plan, built.plan_id)
            plan_edits.remove_stop(db, plan.id, plan.version, built.stop_ids[0][1], "Moved away", settings)
            publishing.publish(db, plan, ACTOR, settings)
            db.commit()
        changed, unchanged = built.route_ids
        client.cookies.set(COOKIE, pages[changed][1])
        assert "Your route for Tue 01 Dec changed at 08:00: 2 stops now" in client.get(pages[changed][0]).text
        client.cookies.set(COOKIE, pages[unchanged][1])
        assert "Your route for" not in client.get(pages[unchanged][0]).text
