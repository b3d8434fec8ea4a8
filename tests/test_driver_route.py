"""A driver's day through the server-rendered pages (no JavaScript): the route overview, confirming
with plain forms, the reason for a failed stop, undo within 5 minutes, flags and problem reports to
the coordinator, the end-of-route summary, offering shifts, and a link that survives signing out
on the same phone (issue 8 item 10)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import time_machine
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.field import followup
from delivery.models import (
    AuditEvent,
    ConfirmationAmendment,
    FieldReport,
    Need,
    Order,
    ReviewItem,
    Route,
    Shift,
    Stop,
)
from delivery.plans import publishing
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, csrf_token, sign_in
from tests.job_builders import run_due_jobs
from tests.plan_builders import DEFAULT_STOPS, StopSpec, make_day

LA = ZoneInfo("America/Los_Angeles")
DAY = dt.date(2026, 12, 1)
MORNING = dt.datetime(2026, 12, 1, 9, 0, tzinfo=LA)
LONG_WORD = "Gatecode" + "X" * 120


@pytest.fixture
def day(program: Program, database: Database):  # type: ignore[no-untyped-def]
    first = [StopSpec("Rosa", "Diaz", boxes=2, box_type="diabetic", dietary=["diabetic", "low_sodium"],
                      unit="Apt 3B", floor=3, access_notes=LONG_WORD),
             StopSpec("Minh", "Tran", unit="4"), *DEFAULT_STOPS[0][2:]]
    with time_machine.travel(MORNING - dt.timedelta(hours=2), tick=False), database.writer() as db:
        built = make_day(db, program, date=DAY, stops=[first, DEFAULT_STOPS[1]])
        db.commit()
    return built


def open_route(client: TestClient, database: Database, settings: Settings, route_id: int) -> str:
    """Open the driver's personal link on this 'phone'; returns the route page URL."""
    with database.writer() as db:
        link = publishing.issue_link(db, db.get(Route, route_id), settings)  # type: ignore[arg-type]
        db.commit()
    opened = client.get("/r/" + link.rsplit("/r/", 1)[1], follow_redirects=False)
    assert opened.status_code in (302, 303)
    return opened.headers["location"]


def stop_card(html: str, stop_id: int) -> str:
    match = re.search(rf'<li id="stop-{stop_id}".*?</li>\n', html, flags=re.S)
    assert match is not None, stop_id
    return match.group(0)


def key_in(card: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', card).group(1)  # type: ignore[union-attr]


def test_the_route_overview_and_a_stop_card(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                            settings: Settings) -> None:
    """Start, stops, load by box type, finish and progress; the card reads as a person writes it;
    no htmx on the page, and no aria-label on plain spans (issue 8 items 14, 17)."""
    with time_machine.travel(MORNING, tick=False):
        html = client.get(open_route(client, database, settings, day.route_ids[0])).text
    assert "Start 09:30" in html and "3 stops" in html and "Estimated finish 11:00" in html
    assert "Load: 2 × diabetic, 1 × standard, 1 × vegetarian (4 boxes)" in html
    assert "0 of 3 done" in html
    rosa = stop_card(html, day.stop_ids[0][0])
    assert "1234 98th Ave, Apt 3B, Oakland" in rosa and "unit Apt" not in rosa
    assert "Apt 4, Oakland" in stop_card(html, day.stop_ids[0][1])
    assert "2 boxes: diabetic" in rosa and "Diet: diabetic, low sodium" in rosa
    assert ">Delivered</button>" in rosa and ">Couldn&#39;t deliver</button>" in rosa
    assert 'data-token="drt_' in html
    assert "htmx" not in html and "/static/js/driver.js" in html
    assert not re.search(r"<span[^>]*aria-label", html)


def test_every_view_of_stop_details_is_audited(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                               settings: Settings) -> None:
    with time_machine.travel(MORNING, tick=False):
        url = open_route(client, database, settings, day.route_ids[0])
        client.get(url)
        client.get(url)
    with database.reader() as db:
        views = db.scalars(select(AuditEvent).where(AuditEvent.resource == "stop",
                                                    AuditEvent.action == "R")).all()
    assert sorted(int(v.resource_id) for v in views) == sorted(day.stop_ids[0] * 2)  # type: ignore[arg-type]
    assert all(v.patient_id is not None and v.user_id is not None for v in views)


def test_confirm_undo_and_the_reason_without_javascript(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                                        settings: Settings) -> None:
    """Delivered by a plain form; undone within 5 minutes (an amendment, the row kept); a failed
    stop asks for the reason; a late undo is refused."""
    first, second = day.stop_ids[0][:2]
    with time_machine.travel(MORNING, tick=False):
        url = open_route(client, database, settings, day.route_ids[0])
        html = client.get(url).text
        card = stop_card(html, first)
        done = client.post(f"/driver/stops/{first}/confirm", data={
            "outcome": "delivered", "idempotency_key": key_in(card), "csrf_token": csrf_token(html)})
        assert "Saved." in done.text and "1 of 3 done" in done.text
        undo = re.search(r'action="(/driver/confirmations/\d+/undo)"', stop_card(done.text, first)).group(1)  # type: ignore[union-attr]
        undone = client.post(undo, data={"csrf_token": csrf_token(html)})
        assert "Undone" in undone.text and "0 of 3 done" in undone.text

        asked = client.get(f"{url}?reason_for={second}")
        reason_card = stop_card(asked.text, second)
        assert 'value="no_answer"' in reason_card and 'value="refused"' in reason_card
        failed = client.post(f"/driver/stops/{second}/confirm", data={
            "outcome": "no_answer", "note": "rang twice", "idempotency_key": key_in(reason_card),
            "csrf_token": csrf_token(html)})
        assert "1 of 3 done" in failed.text and "No answer" in stop_card(failed.text, second)
        late_undo = re.search(r'action="(/driver/confirmations/\d+/undo)"',
                              stop_card(failed.text, second)).group(1)  # type: ignore[union-attr]
    with time_machine.travel(MORNING + dt.timedelta(minutes=6), tick=False):
        refused = client.post(late_undo, data={"csrf_token": csrf_token(html)})
        assert "Too late to undo" in refused.text
    with database.reader() as db:
        assert [(a.action, a.reason) for a in db.scalars(select(ConfirmationAmendment))] == \
            [("undo", "undone by the driver")]
        stops = {s.id: (s.status, s.outcome) for s in db.scalars(select(Stop)).unique()}
    assert stops[first] == ("pending", None) and stops[second] == ("failed", "no_answer")


def test_undoing_a_failed_attempt_takes_back_its_retry(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                                       settings: Settings) -> None:
    """A mistaken "Couldn't deliver" undone at once must not leave a second delivery booked."""
    stop = day.stop_ids[0][2]
    with time_machine.travel(MORNING, tick=False):
        html = client.get(open_route(client, database, settings, day.route_ids[0])).text
        failed = client.post(f"/driver/stops/{stop}/confirm", data={
            "outcome": "no_answer", "idempotency_key": "oops", "csrf_token": csrf_token(html)})
        run_due_jobs(database, settings, [followup.job_kind()])  # the worker was quicker than the driver
        with database.reader() as db:
            retries = db.scalars(select(Stop).where(Stop.carried_from_id == stop)).unique().all()
        assert [r.status for r in retries] == ["pending"]  # the follow-up booked a retry
        undo = re.search(r'action="(/driver/confirmations/\d+/undo)"', stop_card(failed.text, stop)).group(1)  # type: ignore[union-attr]
        client.post(undo, data={"csrf_token": csrf_token(html)})
    with database.reader() as db:
        retry = db.get(Stop, retries[0].id)
        assert retry is not None and retry.status == "removed" and "undone" in (retry.removed_reason or "")
        assert db.get(Stop, stop).status == "pending"  # type: ignore[union-attr]


def test_flags_and_problem_reports_reach_the_coordinator(client: TestClient, program: Program, day,  # type: ignore[no-untyped-def]
                                                         database: Database, settings: Settings) -> None:
    """A new address becomes a proposed change for review, never an overwrite; every flag and a
    problem report is on the live board's list."""
    stop = day.stop_ids[0][0]
    with time_machine.travel(MORNING, tick=False):
        html = client.get(open_route(client, database, settings, day.route_ids[0])).text
        token = csrf_token(html)
        missing = client.post(f"/driver/stops/{stop}/reports",
                              data={"kind": "address_changed", "csrf_token": token})
        assert missing.status_code == 400 and "new address" in missing.text
        client.post(f"/driver/stops/{stop}/reports",
                    data={"kind": "address_changed", "detail": "55 Elm St Apt 2", "csrf_token": token})
        client.post(f"/driver/stops/{stop}/reports", data={"kind": "no_fridge", "csrf_token": token})
        sent = client.post(f"/driver/routes/{day.route_ids[0]}/problem",
                           data={"kind": "route_problem", "detail": "Flat tyre, 20 min late",
                                 "csrf_token": token})
        assert "Your coordinator has your message" in sent.text
        assert client.post(f"/driver/stops/{day.stop_ids[1][0]}/reports",
                           data={"kind": "no_fridge", "csrf_token": token}).status_code == 404
    with database.reader() as db:
        item = db.scalar(select(ReviewItem).where(ReviewItem.kind == "address_change"))
        assert item is not None and item.details["proposed"]["address_line1"] == "55 Elm St Apt 2"
        assert item.patient.address_line1 == "1234 98th Ave"  # not overwritten
        assert sorted(r.kind for r in db.scalars(select(FieldReport))) == \
            ["address_changed", "no_fridge", "route_problem"]
        # "No working fridge" is a need besides food: it joins the referring clinic's needs list.
        need = db.scalar(select(Need))
        assert need is not None and (need.source, need.kinds, need.clinic_id) == (
            "driver", ["fridge_stove"], program.clinic1_id)
        assert need.referral_id == db.scalar(select(Order.referral_id).join(Stop, Stop.order_id == Order.id)
                                             .where(Stop.id == stop))
    client.cookies.clear()
    with time_machine.travel(MORNING, tick=False):
        sign_in(client, program.coordinator)
        board = client.get(f"/coordinator/plans/{day.plan_id}/board").text
    assert "Drivers' reports (3)" in board and "Flat tyre, 20 min late" in board and "no fridge" in board


def test_the_end_of_route_summary(client: TestClient, day, database: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    stops = day.stop_ids[0]
    with time_machine.travel(MORNING, tick=False):
        url = open_route(client, database, settings, day.route_ids[0])
        html = client.get(url).text
        for stop, outcome in ((stops[0], "delivered"), (stops[1], "refused")):
            client.post(f"/driver/stops/{stop}/confirm", data={
                "outcome": outcome, "idempotency_key": f"k-{stop}", "csrf_token": csrf_token(html)})
        summary = client.get(f"{url}/summary").text
    assert re.search(r"<strong>1</strong> delivered", summary)
    assert re.search(r"<strong>1</strong> not delivered", summary)
    assert re.search(r"<strong>1</strong> not confirmed yet", summary)
    assert "Boxes to bring back: 2" in summary  # the refused box and the one not confirmed yet


def test_a_driver_offers_shifts_through_the_roster(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                                   settings: Settings) -> None:
    with time_machine.travel(MORNING, tick=False):
        open_route(client, database, settings, day.route_ids[0])
        page = client.get("/driver/shifts")
        depot = re.search(r'<option value="(depot:\d+)">', page.text).group(1)  # type: ignore[union-attr]
        form = {"date": "2026-12-08", "start": "09:00", "end": "13:00", "start_place": depot,
                "csrf_token": csrf_token(page.text)}
        offered = client.post("/driver/shifts", data=form)
        assert offered.status_code == 200, offered.text[-3000:]
        assert "Tuesday, December 8, 2026" in offered.text
        past = client.post("/driver/shifts", data={**form, "date": "2026-11-20"})
        assert past.status_code == 400 and "in the past" in past.text
    with database.reader() as db:
        shifts = db.scalars(select(Shift).where(Shift.date == dt.date(2026, 12, 8))).all()
    assert [(s.offered_by, s.start) for s in shifts] == [("driver", dt.time(9, 0))]


def test_signing_out_keeps_the_link_for_this_phone_only(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                                       settings: Settings) -> None:
    """Issue 8 item 10: sign out, open the same link on the same phone: the route again. Another
    phone still cannot. The driver's sign-out spares the unsent queue (no "storage" wipe)."""
    with time_machine.travel(MORNING, tick=False):
        with database.writer() as db:
            link = publishing.issue_link(db, db.get(Route, day.route_ids[0]), settings)  # type: ignore[arg-type]
            db.commit()
        path = "/r/" + link.rsplit("/r/", 1)[1]
        page = client.get(path)
        out = client.post("/logout", data={"csrf_token": csrf_token(page.text)}, follow_redirects=False)
        assert out.headers["clear-site-data"] == '"cache"'
        again = client.get(path, follow_redirects=False)
        assert again.status_code in (302, 303), again.text
        client.cookies.clear()  # another phone: no device cookie
        refused = client.get(path)
        assert refused.status_code == 403 and "already opened" in refused.text


def test_before_planning_stops_wait_without_a_red_badge(client: TestClient, program: Program,  # type: ignore[no-untyped-def]
                                                        database: Database) -> None:
    """Issue 8 item 14: a day not planned yet is not shown as a list of failures."""
    with database.writer() as db:
        draft = make_day(db, program, date=DAY, status="draft")
        for stop in db.scalars(select(Stop).where(Stop.plan_id == draft.plan_id)).unique():
            stop.route_id, stop.seq = None, None
        db.commit()
    with time_machine.travel(MORNING, tick=False):
        sign_in(client, program.coordinator)
        html = client.get(f"/coordinator/plans/{DAY}").text
    assert "waiting for planning" in html and 'class="badge reason"' not in html
