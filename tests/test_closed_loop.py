"""The closed loop as a clinic lives it: refer over the API, a driver confirms, the clinic's receiver
gets a verified event, the clinic's screen shows it, staff record the receipt; and the story where
the driver fails twice. Plus receipts, polling and the `delivery webhook add` command."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.cli import main
from delivery.field import followup
from delivery.field.confirmations import confirm_stop
from delivery.loop import endpoints, sender
from delivery.models import (
    Order,
    OrderStatus,
    Organization,
    PlanStatus,
    Referral,
    ReviewItem,
    Route,
    Stop,
    WebhookEndpoint,
)
from delivery.plans import day as plan_day
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, api_token, referral_body, sign_in
from tests.day_builders import add_driver
from tests.job_builders import run_due_jobs
from tests.webhook_receiver import Receiver

FIRST_DAY = dt.date(2026, 12, 1)  # a Tuesday, the program's delivery day


@pytest.fixture(autouse=True)
def morning_of_the_first_day() -> object:
    """Every story starts at 8:00 in Oakland on FIRST_DAY, whatever the date the suite runs on: a
    referral made then is due that same day (the clock runs on from there)."""
    with time_machine.travel(dt.datetime(2026, 12, 1, 16, tzinfo=dt.UTC), tick=True) as traveller:
        yield traveller


def publish_route(database: Database, program: Program, order_id: int, date: dt.date, driver_n: int) -> int:
    """The day prepared from the orders and published with the order's stop on one driver's route
    (what the coordinator's planning and publishing do); returns the stop's id."""
    with database.writer() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        driver = add_driver(db, program, driver_n, date=date)
        plan = plan_day.prepare(db, food_bank, date)  # type: ignore[arg-type]
        route = Route(plan_id=plan.id, driver_id=driver.id, colour=0, published_version=1)
        db.add(route)
        db.flush()
        stop = db.scalars(select(Stop).where(Stop.plan_id == plan.id, Stop.order_id == order_id)).one()
        stop.route_id, stop.seq, stop.eta = route.id, 1, 10 * 3600
        plan.status, plan.published_version = PlanStatus.published, 1
        db.commit()
        return stop.id


def driver_confirms(database: Database, stop_id: int, outcome: str, at: dt.datetime) -> None:
    with database.writer() as db:
        stop = db.get(Stop, stop_id)
        user_id = db.get(Route, stop.route_id).driver.user_id  # type: ignore[union-attr]
        confirm_stop(db, stop=stop, user_id=user_id, outcome=outcome, note=None, occurred_at=at,  # type: ignore[arg-type]
                     idempotency_key=f"{stop_id}-{outcome}")
        db.commit()


def refer(database: Database, client: TestClient, program: Program, receiver: Receiver) -> tuple[int, int]:
    """The clinic's endpoint, then a referral over the API; returns (referral id, order id)."""
    with database.writer() as db:
        clinic = db.get(Organization, program.clinic1_id)
        receiver.secret = endpoints.register(db, clinic, receiver.url, allow_loopback=True,  # type: ignore[arg-type]
                                             actor=AuditContext()).secret
        headers = api_token(db, program.clinic1)
        db.commit()
    response = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["order_id"]


def worker_runs(database: Database, settings: Settings) -> None:
    """What `delivery worker` does next: run the outbox job the events queued (and any it queues
    for now), through the job runner."""
    run_due_jobs(database, settings, [sender.job_kind()])


def worker_follows_up(database: Database, settings: Settings) -> None:
    """What `delivery worker` does after a failed attempt: its queued follow-up (reschedule or hold)."""
    assert run_due_jobs(database, settings, [followup.job_kind()]) == 1


def received_kinds(receiver: Receiver) -> list[str]:
    return [item.event["type"] for item in sorted(receiver.unique().values(),
                                                   key=lambda r: r.event["data"]["sequence"])]


def test_the_whole_story_from_referral_to_receipt(
        program: Program, database: Database, loop_settings: Settings, loop_client: TestClient,
        receiver: Receiver) -> None:
    """Referral → published stop → driver confirms → verified `delivered` at the receiver within the
    sender's next run → the clinic's page says so → receipt over the API → `receipt_confirmed`."""
    referral_id, order_id = refer(database, loop_client, program, receiver)
    stop_id = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, stop_id, "delivered", dt.datetime(2026, 12, 1, 18, 42, tzinfo=dt.UTC))
    worker_runs(database, loop_settings)
    assert received_kinds(receiver)[-1] == "delivered"
    delivered = receiver.unique()
    for item in delivered.values():
        receiver.verify(item)  # standardwebhooks and svix both accept it
    last = max(delivered.values(), key=lambda r: r.event["data"]["sequence"]).event
    assert last["data"] == {"referral_id": referral_id, "order_id": order_id, "stop_id": stop_id,
                            "status": "active", "sequence": last["data"]["sequence"]}

    sign_in(loop_client, program.clinic1)
    page = loop_client.get(f"/clinic/referrals/{referral_id}").text
    assert "Delivered Tuesday 10:42 by Driver — receipt not yet confirmed" in page  # 18:42 UTC in Oakland
    listed = loop_client.get("/clinic?show=awaiting_receipt").text
    assert f"/clinic/referrals/{referral_id}" in listed

    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    answer = loop_client.post(f"/api/v1/referrals/{referral_id}/receipt", json={"received": True},
                              headers=headers)
    assert answer.status_code == 201, answer.text
    worker_runs(database, loop_settings)
    assert received_kinds(receiver)[-1] == "receipt_confirmed"
    assert "receipt confirmed" in loop_client.get(f"/clinic/referrals/{referral_id}").text
    again = loop_client.post(f"/api/v1/referrals/{referral_id}/receipt", json={"received": True},
                             headers=headers)
    assert again.status_code == 422 and "already recorded" in again.json()["detail"]


def test_two_failed_attempts_put_the_order_on_the_review_list_and_tell_the_clinic(
        program: Program, database: Database, loop_settings: Settings, loop_client: TestClient,
        receiver: Receiver) -> None:
    """A first failure is rescheduled to the next delivery day; the second holds the order, opens a
    review item with both reasons, and the clinic's receiver hears `held_for_review`."""
    referral_id, order_id = refer(database, loop_client, program, receiver)
    first = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, first, "no_answer", dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC))
    with database.reader() as db:  # the driver's tap only queued the follow-up
        assert db.scalars(select(Stop).where(Stop.carried_from_id == first)).first() is None
    worker_follows_up(database, loop_settings)
    with database.reader() as db:
        retry = db.scalars(select(Stop).where(Stop.carried_from_id == first)).one()
        assert retry.date == FIRST_DAY + dt.timedelta(weeks=1)
    second = publish_route(database, program, order_id, retry.date, 2)
    assert second == retry.id
    driver_confirms(database, second, "refused", dt.datetime(2026, 12, 8, 18, tzinfo=dt.UTC))
    worker_follows_up(database, loop_settings)
    worker_runs(database, loop_settings)
    assert received_kinds(receiver)[-6:] == ["out_for_delivery", "attempt_failed", "rescheduled",
                                             "out_for_delivery", "attempt_failed", "held_for_review"]
    with database.reader() as db:
        item = db.scalars(select(ReviewItem).where(ReviewItem.kind == "failed_attempts")).one()
        assert item.details == {"order_id": order_id, "reasons": ["no_answer", "refused"]}
        assert db.get(Order, order_id).status == OrderStatus.paused  # type: ignore[union-attr]
        food_bank = db.get(Organization, program.food_bank_id)
        third_week = FIRST_DAY + dt.timedelta(weeks=2)
        assert order_id not in {o.id for o in plan_day.due_orders(db, food_bank.id, third_week)}  # type: ignore[union-attr]
    sign_in(loop_client, program.clinic1)
    told = loop_client.get(f"/clinic/referrals/{referral_id}").text
    assert "Deliveries on hold after 2 failed attempts" in told


def test_a_failed_fortnightly_delivery_is_retried_the_next_week(
        program: Program, database: Database, loop_settings: Settings, loop_client: TestClient,
        receiver: Receiver) -> None:
    """An order due every other week is not due the week after a failed attempt: the retry goes
    there only because the program has room that day (a one-off stop, counted against capacity)."""
    with database.writer() as db:
        clinic = db.get(Organization, program.clinic1_id)
        receiver.secret = endpoints.register(db, clinic, receiver.url, allow_loopback=True,  # type: ignore[arg-type]
                                             actor=AuditContext()).secret
        headers = api_token(db, program.clinic1)
        db.commit()
    body = {**referral_body(), "order": {"cadence": "biweekly"}}
    response = loop_client.post("/api/v1/referrals", json=body, headers=headers)
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]
    stop_id = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, stop_id, "no_answer", dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC))
    worker_follows_up(database, loop_settings)
    with database.reader() as db:
        retry = db.scalars(select(Stop).where(Stop.carried_from_id == stop_id)).one()
        assert retry.date == FIRST_DAY + dt.timedelta(weeks=1)


def test_a_wrong_address_goes_to_review_as_an_address_problem(
        program: Program, database: Database, loop_settings: Settings, loop_client: TestClient,
        receiver: Receiver) -> None:
    """No blind retry: the order is held and the review item is an address problem."""
    _, order_id = refer(database, loop_client, program, receiver)
    stop_id = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, stop_id, "wrong_address", dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC))
    worker_follows_up(database, loop_settings)
    with database.reader() as db:
        assert db.scalars(select(ReviewItem.kind)).all() == ["address_problem"]
        assert db.scalars(select(Stop).where(Stop.carried_from_id == stop_id)).first() is None


def test_not_received_after_delivered_alerts_the_coordinators(
        program: Program, database: Database, loop_client: TestClient, receiver: Receiver) -> None:
    """A denied receipt needs a note, then opens a review item; before any delivery it is refused."""
    referral_id, order_id = refer(database, loop_client, program, receiver)
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        other = api_token(db, program.clinic2)
        db.commit()
    url = f"/api/v1/referrals/{referral_id}/receipt"
    early = loop_client.post(url, json={"received": True}, headers=headers)
    assert early.status_code == 422 and "Nothing has been delivered" in early.json()["detail"]
    stop_id = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, stop_id, "left_at_door", dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC))
    assert loop_client.post(url, json={"received": False}, headers=headers).status_code == 422
    assert loop_client.post(url, json={"received": False, "note": "x"}, headers=other).status_code == 404
    assert loop_client.post(url, json={"received": False, "note": "box not there"},
                            headers=headers).status_code == 201
    with database.reader() as db:
        item = db.scalars(select(ReviewItem)).one()
        assert item.kind == "receipt_denied" and "box not there" in item.message


def test_polling_pages_through_changes_scoped_to_the_clinic(
        program: Program, database: Database, loop_client: TestClient, receiver: Receiver) -> None:
    """updated_since and status filter, the cursor pages, another clinic's token sees none of them."""
    with database.writer() as db:
        headers, other = api_token(db, program.clinic1), api_token(db, program.clinic2)
        db.commit()
    ids = []
    for n in range(3):
        body = referral_body(patient__mrn=f"P-{n}", patient__given_name=f"Pat{n}")
        ids.append(loop_client.post("/api/v1/referrals", json=body, headers=headers).json()["id"])
    first = loop_client.get("/api/v1/referrals?limit=2", headers=headers).json()
    assert [r["id"] for r in first["referrals"]] == ids[:2] and first["next_cursor"]
    rest = loop_client.get(f"/api/v1/referrals?limit=2&cursor={first['next_cursor']}", headers=headers).json()
    assert [r["id"] for r in rest["referrals"]] == ids[2:] and rest["next_cursor"] is None
    later = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    assert loop_client.get("/api/v1/referrals", params={"updated_since": later},
                           headers=headers).json()["referrals"] == []
    assert loop_client.get("/api/v1/referrals?status=closed", headers=headers).json()["referrals"] == []
    assert loop_client.get("/api/v1/referrals", headers=other).json()["referrals"] == []
    bad = loop_client.get("/api/v1/referrals?cursor=nonsense", headers=headers)
    assert bad.status_code == 422


def test_webhook_add_prints_the_id_and_a_secret_shown_once(
        monkeypatch: pytest.MonkeyPatch, database_url: str, program: Program, database: Database,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`delivery webhook add --clinic NAME --url URL --events …` as DESIGN.md says; a bad URL is a
    clear error."""
    monkeypatch.setenv("DELIVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("DELIVERY_SECRET_KEY", "test-secret")
    monkeypatch.setenv("DELIVERY_WEBHOOK_ALLOW_LOOPBACK", "true")
    assert main(["webhook", "add", "--clinic", "Fruitvale Clinic", "--url", "http://127.0.0.1:9/hooks",
                 "--events", "delivered,receipt_confirmed"]) == 0
    out = capsys.readouterr().out
    secret = out.split("secret (shown once): ")[1].strip()
    assert secret.startswith("whsec_")
    with database.reader() as db:
        endpoint = db.scalars(select(WebhookEndpoint)).one()
        assert (endpoint.secret, endpoint.event_kinds) == (secret, ["delivered", "receipt_confirmed"])
        assert out.startswith(f"endpoint {endpoint.id} ")
    assert main(["webhook", "add", "--clinic", "Fruitvale Clinic", "--url", "http://ehr.example.org/"]) == 2
    assert "https" in capsys.readouterr().err
    assert main(["webhook", "add", "--clinic", "Nowhere", "--url", "https://ehr.example.org/"]) == 2
    assert "Fruitvale Clinic" in capsys.readouterr().err


def held_after_two_failures(database: Database, settings: Settings, program: Program, client: TestClient,
                            receiver: Receiver) -> tuple[int, int]:
    """An order held for review after two failed attempts; returns (order id, review item id)."""
    _, order_id = refer(database, client, program, receiver)
    first = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, first, "no_answer", dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC))
    worker_follows_up(database, settings)
    with database.reader() as db:
        retry = db.scalars(select(Stop).where(Stop.carried_from_id == first)).one()
    second = publish_route(database, program, order_id, retry.date, 2)
    driver_confirms(database, second, "refused", dt.datetime(2026, 12, 8, 18, tzinfo=dt.UTC))
    worker_follows_up(database, settings)
    with database.reader() as db:
        item = db.scalars(select(ReviewItem).where(ReviewItem.kind == "failed_attempts")).one()
    return order_id, item.id


def test_the_coordinator_resumes_a_held_order_and_the_clinic_hears_it(
        program: Program, database: Database, loop_settings: Settings, loop_client: TestClient,
        receiver: Receiver) -> None:
    order_id, item_id = held_after_two_failures(database, loop_settings, program, loop_client, receiver)
    csrf = sign_in(loop_client, program.coordinator)
    queue = loop_client.get("/coordinator/reviews").text
    assert "Deliveries on hold after failed attempts" in queue and "no answer, refused" in queue
    answer = loop_client.post(f"/coordinator/reviews/{item_id}/resume", data={"csrf_token": csrf})
    assert answer.status_code == 200 and "Deliveries resume" in answer.text
    with database.reader() as db:
        assert db.get(Order, order_id).status == OrderStatus.active  # type: ignore[union-attr]
        assert db.get(ReviewItem, item_id).resolved_at is not None  # type: ignore[union-attr]
        food_bank = db.get(Organization, program.food_bank_id)
        third_week = FIRST_DAY + dt.timedelta(weeks=2)
        assert order_id in {o.id for o in plan_day.due_orders(db, food_bank.id, third_week)}  # type: ignore[union-attr]
    again = loop_client.post(f"/coordinator/reviews/{item_id}/resume", data={"csrf_token": csrf})
    assert again.status_code == 422  # settled once: the page shows the resolution
    worker_runs(database, loop_settings)
    assert received_kinds(receiver)[-1] == "review_resolved"


def test_a_wrong_address_can_end_the_order_with_a_reason(
        program: Program, database: Database, loop_settings: Settings, loop_client: TestClient,
        receiver: Receiver) -> None:
    referral_id, order_id = refer(database, loop_client, program, receiver)
    stop_id = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, stop_id, "wrong_address", dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC))
    worker_follows_up(database, loop_settings)
    with database.reader() as db:
        item_id = db.scalars(select(ReviewItem.id)).one()
    csrf = sign_in(loop_client, program.coordinator)
    url = f"/coordinator/reviews/{item_id}/end-order"
    assert loop_client.post(url, data={"reason": "", "csrf_token": csrf}).status_code == 422
    assert loop_client.post(url, data={"reason": "Moved to Fresno", "csrf_token": csrf}).status_code == 200
    with database.reader() as db:
        assert db.get(Order, order_id).status == OrderStatus.ended  # type: ignore[union-attr]
        assert db.get(Referral, referral_id).status == "closed"  # type: ignore[union-attr]
        assert db.get(ReviewItem, item_id).resolution == "Deliveries ended: Moved to Fresno"  # type: ignore[union-attr]


def test_a_denied_receipt_is_marked_handled_with_what_was_done(
        program: Program, database: Database, loop_client: TestClient, receiver: Receiver) -> None:
    referral_id, order_id = refer(database, loop_client, program, receiver)
    stop_id = publish_route(database, program, order_id, FIRST_DAY, 1)
    driver_confirms(database, stop_id, "left_at_door", dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC))
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    loop_client.post(f"/api/v1/referrals/{referral_id}/receipt", json={"received": False, "note": "gone"},
                     headers=headers)
    with database.reader() as db:
        item_id = db.scalars(select(ReviewItem.id)).one()
    csrf = sign_in(loop_client, program.coordinator)
    assert "did not receive a delivered box" in loop_client.get("/coordinator/reviews").text
    url = f"/coordinator/reviews/{item_id}/handled"
    assert loop_client.post(f"/coordinator/reviews/{item_id}/resume",
                            data={"csrf_token": csrf}).status_code == 422  # nothing is held
    assert loop_client.post(url, data={"note": "", "csrf_token": csrf}).status_code == 422
    assert loop_client.post(url, data={"note": "Box re-sent Friday", "csrf_token": csrf}).status_code == 200
    with database.reader() as db:
        assert db.get(ReviewItem, item_id).resolution == "Handled: Box re-sent Friday"  # type: ignore[union-attr]
        assert db.get(Order, order_id).status == OrderStatus.active  # type: ignore[union-attr]
