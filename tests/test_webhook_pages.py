"""A clinic's admin and the food bank's admin manage webhook endpoints through the app: register one
(the secret shown once), watch its deliveries, resend, send a test event, rotate the secret, turn it
off; every change audited (R10.2); each admin sees only the clinics they look after."""

from __future__ import annotations

import datetime as dt
import re

from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import (
    AuditEvent,
    DeliveryState,
    EndpointState,
    Role,
    WebhookDelivery,
    WebhookEndpoint,
)
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, password_hash, sign_in
from tests.day_builders import add_order
from tests.test_closed_loop import FIRST_DAY, driver_confirms, publish_route, worker_runs
from tests.webhook_receiver import Receiver

CLINIC_ADMIN = "it-admin@elmhurst.example.org"
FIRST_DAY_EVENING = dt.datetime(2026, 12, 1, 18, 42, tzinfo=dt.UTC)


def secret_on(html: str) -> str:
    found = re.search(r'<code id="secret">(whsec_[^<]+)</code>', html)
    assert found, "no secret on the page"
    return found.group(1)


def audit_rows(database: Database) -> list[tuple[str, str]]:
    with database.reader() as db:
        return [(a.action, a.detail or "") for a in db.scalars(
            select(AuditEvent).where(AuditEvent.resource == "webhook_endpoint").order_by(AuditEvent.id))]


def test_the_food_banks_admin_connects_a_clinic_and_watches_its_deliveries(
        program: Program, database: Database, loop_settings: Settings, loop_client: TestClient,
        receiver: Receiver) -> None:
    csrf = sign_in(loop_client, program.admin)
    assert "Fruitvale Clinic" in loop_client.get("/webhooks").text
    bad = loop_client.post("/webhooks/", data={"clinic_id": program.clinic1_id, "url": "http://ehr.example.org/",
                                               "csrf_token": csrf})
    assert bad.status_code == 422 and "https://" in bad.text

    made = loop_client.post("/webhooks/", data={"clinic_id": program.clinic1_id, "url": receiver.url,
                                                "events": ["delivered", "attempt_failed"],
                                                "csrf_token": csrf})
    assert made.status_code == 201, made.text
    receiver.secret = secret_on(made.text)
    with database.reader() as db:
        endpoint = db.scalars(select(WebhookEndpoint)).one()
        assert endpoint.event_kinds == ["attempt_failed", "delivered"]
    page_url = f"/webhooks/{endpoint.id}"
    assert receiver.secret not in loop_client.get(page_url).text  # shown once

    test = loop_client.post(f"{page_url}/test", data={"csrf_token": csrf})
    assert "your receiver answered 204" in test.text
    assert receiver.accepted[-1].event["type"] == "test"

    with database.writer() as db:  # a delivery to watch: a referral delivered to the door
        order = add_order(db, program, 1, date=FIRST_DAY)
        db.commit()
        order_id = order.id
    stop_id = publish_route(database, program, order_id, FIRST_DAY, 1)
    receiver.behaviours.extend(["500"])
    driver_confirms(database, stop_id, "delivered", FIRST_DAY_EVENING)
    worker_runs(database, loop_settings)
    shown = loop_client.get(page_url).text
    assert "HTTP 500" in shown and "delivered" in shown  # the failure, listed with its answer

    with database.reader() as db:
        delivery = db.scalars(select(WebhookDelivery)).unique().one()
    resent = loop_client.post(f"{page_url}/deliveries/{delivery.id}/resend", data={"csrf_token": csrf})
    assert "will be sent again" in resent.text
    worker_runs(database, loop_settings)  # the resend queued the outbox job: it runs now
    with database.reader() as db:
        assert db.get(WebhookDelivery, delivery.id).state == DeliveryState.delivered  # type: ignore[union-attr]
    assert [r.event["type"] for r in receiver.unique().values()] == ["test", "delivered"]
    assert re.search(r"<td>HTTP 204</td>\s*<td>\d+ ms</td>", loop_client.get(page_url).text)

    rotated = loop_client.post(f"{page_url}/rotate", data={"csrf_token": csrf})
    assert secret_on(rotated.text) != receiver.secret and "24 hours" in rotated.text
    off = loop_client.post(f"{page_url}/enabled", data={"enabled": "false", "csrf_token": csrf})
    assert off.status_code == 200 and "Turn sending on" in off.text  # after the redirect
    with database.reader() as db:
        assert db.get(WebhookEndpoint, endpoint.id).state == EndpointState.disabled  # type: ignore[union-attr]

    actions = audit_rows(database)
    assert [a for a, _ in actions] == ["C", "U", "U", "U"]
    assert "registered for Fruitvale Clinic" in actions[0][1] and "resend of msg_" in actions[1][1]
    assert "secret rotated" in actions[2][1] and actions[3][1] == "turned off"
    assert all("whsec_" not in detail for _, detail in actions)


def test_a_failing_endpoint_shows_its_notice(
        program: Program, database: Database, loop_client: TestClient, receiver: Receiver) -> None:
    with database.writer() as db:
        endpoint = WebhookEndpoint(clinic_id=program.clinic1_id, url=receiver.url, secret="whsec_x",
                                   event_kinds=[], state=EndpointState.failing, consecutive_failures=5,
                                   notice="This endpoint is failing: the last 5 requests failed.")
        db.add(endpoint)
        db.commit()
    sign_in(loop_client, program.admin)
    assert "This endpoint is failing" in loop_client.get(f"/webhooks/{endpoint.id}").text
    assert "This endpoint is failing" in loop_client.get("/webhooks").text


def test_a_clinic_admin_sees_only_their_clinic_and_staff_see_no_webhooks(
        program: Program, database: Database, loop_client: TestClient, receiver: Receiver) -> None:
    with database.writer() as db:
        user = auth.create_user(db, email=CLINIC_ADMIN, display_name="Jo IT",
                                memberships=[(program.clinic2_id, Role.admin)])
        user.password_hash = password_hash()
        other = WebhookEndpoint(clinic_id=program.clinic1_id, url=receiver.url, secret="whsec_x",
                                event_kinds=[], state=EndpointState.active, consecutive_failures=0)
        db.add(other)
        db.commit()
    csrf = sign_in(loop_client, CLINIC_ADMIN)
    listing = loop_client.get("/webhooks").text
    assert "Elmhurst Clinic" in listing and "Fruitvale Clinic" not in listing
    assert loop_client.get(f"/webhooks/{other.id}").status_code == 404
    assert loop_client.post(f"/webhooks/{other.id}/rotate", data={"csrf_token": csrf}).status_code == 404
    stolen = loop_client.post("/webhooks/", data={"clinic_id": program.clinic1_id, "url": receiver.url,
                                                  "csrf_token": csrf})
    assert stolen.status_code == 422 and "Choose one of your clinics" in stolen.text
    mine = loop_client.post("/webhooks/", data={"clinic_id": program.clinic2_id, "url": receiver.url,
                                                "csrf_token": csrf})
    assert mine.status_code == 201 and secret_on(mine.text).startswith("whsec_")

    loop_client.get("/logout")
    loop_client.cookies.clear()
    sign_in(loop_client, program.clinic1)  # clinic staff: no webhook pages at all
    assert loop_client.get("/webhooks", follow_redirects=False).status_code == 403
