"""The Direct story told in FHIR, end to end: a clinic's Bundle arrives, the Task is accepted, the
day is planned and published, the driver confirms, and the clinic sees the delivery on its Task."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select

from delivery.field.confirmations import confirm_stop
from delivery.models import Order, Organization, Plan, Stop, utcnow
from delivery.plans import day as days
from delivery.plans import planning, publishing
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, api_token
from tests.day_builders import DAY, add_driver
from tests.fhir_checks import FHIR_JSON, check_procedure, check_service_request, check_task, sample_bundle


def test_bundle_to_delivered_procedure(client, database: Database, program: Program,
                                       settings: Settings) -> None:
    """Bundle → accepted → plan → publish → confirm (delivery/field/confirmations.py) → Task in-progress
    with businessStatus delivered and an output Procedure the clinic can read."""
    with database.writer() as db:
        clinic = api_token(db, program.clinic1)
        driver = add_driver(db, program, 1)
        db.commit()
        driver_user = driver.user_id

    answer = client.post("/fhir/Bundle", content=json.dumps(sample_bundle()), headers=clinic | FHIR_JSON)
    task = check_task(answer.json()["entry"][-1]["resource"])
    assert task["status"] == "accepted"

    with database.writer() as db:
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        db.commit()
        plan_id = plan.id
    planning.plan_now(database, settings, plan_id, 1.0)
    with database.writer() as db:
        publishing.publish(db, db.get(Plan, plan_id), AuditContext.for_command("publish"), settings)
        db.commit()
    published = check_task(client.get(f"/fhir/Task/{task['id']}", headers=clinic).json())
    assert (published["status"], published["businessStatus"]["coding"][0]["code"]) == ("in-progress",
                                                                                      "scheduled")
    with database.writer() as db:
        stop = db.scalar(select(Stop).join(Order, Order.id == Stop.order_id).where(Stop.plan_id == plan_id))
        assert stop is not None and stop.route_id is not None, "the referral's order is on a route"
        # the door's time, as the phone tells it (a plausible clock: the timeline keeps it)
        at = (utcnow() - dt.timedelta(minutes=5)).replace(microsecond=0)
        note = "Left with Rosa"
        confirm_stop(db, stop=stop, user_id=driver_user, outcome="delivered", note=note, occurred_at=at,
                     idempotency_key="k-1")
        db.commit()
        stop_id = stop.id

    found = client.get(f"/fhir/Task?focus={task['focus']['reference']}&_include=Task:focus", headers=clinic)
    match, included = found.json()["entry"]
    followed = check_task(match["resource"])
    check_service_request(included["resource"])
    assert followed["status"] == "in-progress"
    assert followed["businessStatus"]["coding"][0]["code"] == "delivered"
    assert [o["valueReference"]["reference"] for o in followed["output"]] == [f"Procedure/{stop_id}"]

    procedure = check_procedure(client.get(f"/fhir/Procedure/{stop_id}", headers=clinic).json())
    assert procedure["performedDateTime"] == at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert procedure["subject"] == followed["for"]
    assert "Rosa" not in json.dumps(procedure), "the driver's note stays with the food bank"
