"""The coordinator's overview is the week at a glance: today's and the next delivery day with their
state, the review queue, the waitlist and drivers' reports waiting, each a link to where it is worked."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import time_machine
from litestar.testing import TestClient

from delivery.field import followup
from delivery.models import Plan, PlanStatus, ReviewItem
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.reports.glance import Day
from tests.builders import Program, sign_in
from tests.coordinator_builders import refer, set_capacity
from tests.job_builders import run_due_jobs
from tests.plan_builders import make_day
from tests.test_board import confirm

LA = ZoneInfo("America/Los_Angeles")
TUESDAY = dt.date(2026, 12, 1)  # the test program delivers on Tuesdays


def links(html: str) -> set[str]:
    return {part.split('"')[0] for part in html.split('href="')[1:]}


def test_the_overview_shows_the_week_and_links_each_thing_to_its_page(client: TestClient, program: Program,
                                                                       database: Database,
                                                                       settings: Settings) -> None:
    with database.writer() as db:
        today = make_day(db, program, date=TUESDAY)  # published: 2 routes, 5 stops (7 boxes weekly)
        set_capacity(db, program, 7)
        waiting = refer(db, program, "W1", today=TUESDAY)
        db.commit()
    assert waiting.order is not None and waiting.order.status == "waitlisted"

    with time_machine.travel(dt.datetime(2026, 12, 1, 11, 0, tzinfo=LA), tick=False):
        sign_in(client, program.coordinator)
        html = client.get("/coordinator").text
        assert ("Today, Tue 01 Dec:</strong> Published: 2 routes: 0 delivered, 0 not delivered, 5 to go."
                in html)
        assert "Next delivery day, Tue 08 Dec:</strong> Not opened yet." in html
        assert "0 items waiting for review" in html and "1 patient on the waitlist" in html
        assert "No driver reports waiting." in html

        confirm(database, today.stop_ids[0][0], today.driver_ids[0], "delivered")
        confirm(database, today.stop_ids[0][1], today.driver_ids[0], "no_answer", note="nobody home")
        run_due_jobs(database, settings, [followup.job_kind()])  # the worker reschedules it
        with database.writer() as db:
            db.add(ReviewItem(kind="geocode_failed", patient_id=waiting.referral.patient_id,
                              food_bank_id=program.food_bank_id, message="Not found."))
            db.commit()
        html = client.get("/coordinator").text

    assert "Today, Tue 01 Dec:</strong> Published: 2 routes: 1 delivered, 1 not delivered, 3 to go." in html
    # the failed attempt was rescheduled onto next Tuesday, which that opened with its stops
    assert "Next delivery day, Tue 08 Dec:</strong> Draft: 5 stops, no routes yet." in html
    assert "1 item waiting for review" in html
    assert "1 driver report to handle from Tue 01 Dec" in html
    assert {"/coordinator/plans/2026-12-01", f"/coordinator/plans/{today.plan_id}/board",
            "/coordinator/plans/2026-12-08", "/coordinator/reviews", "/coordinator/waitlist"} <= links(html)


def test_a_day_without_deliveries_says_so(client: TestClient, program: Program) -> None:
    with time_machine.travel(dt.datetime(2026, 12, 3, 11, 0, tzinfo=LA), tick=False):  # a Thursday
        sign_in(client, program.coordinator)
        html = client.get("/coordinator").text
    assert "Today:</strong> no deliveries." in html
    assert "Next delivery day, Tue 08 Dec:</strong> Not opened yet." in html


def test_each_state_of_a_day_reads_as_a_sentence() -> None:
    def day(status: str | None, closed: str | None = None) -> Day:
        plan = Plan(status=status) if status else None
        return Day(TUESDAY, plan, closed, stops=6, routes=2, delivered=3, failed=1)

    assert day(None, closed="Thanksgiving").state == "Closed: Thanksgiving."
    assert day(None).state == "Not opened yet."
    assert day(PlanStatus.draft).state == "Draft: 6 stops, no routes yet."
    assert day(PlanStatus.planned).state == "Planned: 2 routes for 6 stops, not published."
    assert day(PlanStatus.published).state == "Published: 2 routes: 3 delivered, 1 not delivered, 2 to go."
    assert day(PlanStatus.done).state == "Done: 3 delivered, 1 not delivered, 2 to go."
