"""FHIR "Direct Light": the clinic's own FHIR server (fhirstarter on loopback) holds the Tasks; the
`fhir_poll` job takes each once, makes the referral through the Direct path, writes the Task's
progress and a Procedure per delivery back there, and keeps polling through an unreliable server."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from delivery.field.confirmations import confirm_stop
from delivery.loop.fhir import light
from delivery.models import (
    AuditEvent,
    FhirConnection,
    FhirRemoteTask,
    Job,
    Order,
    Organization,
    Plan,
    Referral,
    Stop,
    utcnow,
)
from delivery.plans import day as days
from delivery.plans import planning, publishing
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from delivery.platform.settings import Settings
from tests.builders import Program
from tests.day_builders import DAY, add_driver
from tests.fhir_checks import SAMPLE, check_procedure, parses
from tests.fhir_server import ClinicServer
from tests.job_builders import FakeClock

OWNER = "Organization/fb-7"
MONDAY_9AM_PT = dt.datetime(2026, 11, 30, 17, tzinfo=dt.UTC)  # inside working hours in Oakland


def seed(server: ClinicServer, n: int, *, mrn: str, consent: bool = True, screen: str | None = None,
         owner: str = OWNER) -> None:
    """Patient, ServiceRequest, screening and Consent as the sample Bundle has them, and a Task
    `t{n}` owned by the food bank (as a clinic's EHR would hold them)."""
    sample = json.loads(SAMPLE.read_text())["entry"]
    ids = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['resourceType'][:3].lower()}{n}-{i}"
           for i, e in enumerate(sample)}

    def relink(resource: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(resource)
        for urn, ref in ids.items():
            text = text.replace(urn, ref)
        return json.loads(text)

    resources = [relink(copy.deepcopy(e["resource"])) | {"id": ids[e["fullUrl"]].split("/")[1]}
                 for e in sample]
    patient, request = resources[0], resources[1]
    patient["identifier"][0]["value"] = mrn
    request["identifier"][0]["value"] = f"sr-{n}"
    request["supportingInfo"] = [{"reference": ids[e["fullUrl"]]} for e in sample[2:]
                                 if consent or e["resource"]["resourceType"] != "Consent"]
    for i, resource in enumerate(resources):
        if screen and i in (2, 3):  # the Hunger Vital Sign's two questions
            resource["valueCodeableConcept"]["coding"][0]["code"] = screen
        server.put(resource)
    server.put({"resourceType": "Task", "id": f"t{n}", "status": "requested", "intent": "order",
                "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                                     "code": "fulfill"}]},
                "focus": {"reference": f"ServiceRequest/{request['id']}"},
                "for": {"reference": f"Patient/{patient['id']}"}, "authoredOn": "2026-11-30T09:00:00Z",
                "requester": {"reference": "Organization/clinic-1"}, "owner": {"reference": owner}})


@pytest.fixture
def clinic_server() -> Iterator[ClinicServer]:
    server = ClinicServer()
    server.start()
    yield server
    server.stop()


def connect(database: Database, program: Program, server: ClinicServer, clock: FakeClock) -> int:
    with database.writer() as db:
        row = light.add_connection(db, AuditContext.for_command("test"),
                                   db.get(Organization, program.clinic1_id),
                                   base_url=server.base_url, owner_reference=OWNER, bearer_token=server.token,
                                   allow_loopback=True, now=clock.now())
        db.commit()
        return row.id


def poll(database: Database, settings: Settings, clock: FakeClock) -> int:
    """Run the due fhir_poll jobs, as `delivery worker` would at this (fake) time."""
    runner = Runner(database, settings, [light.job_kind()], clock=clock, poll_s=0)
    ran = 0
    while runner.run_once():
        ran += 1
    return ran


def connection(database: Database, connection_id: int) -> FhirConnection:
    with database.reader() as db:
        row = db.get(FhirConnection, connection_id)
        assert row is not None
        return row


def count(database: Database, model: type) -> int:
    with database.reader() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def test_the_schedule_keeps_to_working_hours_and_never_under_15_minutes() -> None:
    tz = "America/Los_Angeles"
    assert light.next_poll(MONDAY_9AM_PT, interval_minutes=60, hours=(8, 18), timezone=tz) == \
        MONDAY_9AM_PT + dt.timedelta(hours=1)
    assert light.next_poll(MONDAY_9AM_PT, interval_minutes=5, hours=(8, 18), timezone=tz) == \
        MONDAY_9AM_PT + dt.timedelta(minutes=15)
    friday_evening = dt.datetime(2026, 12, 5, 1, 30, tzinfo=dt.UTC)  # Fri 17:30 in Oakland
    assert light.next_poll(friday_evening, interval_minutes=60, hours=(8, 18), timezone=tz) == \
        dt.datetime(2026, 12, 7, 16, tzinfo=dt.UTC)  # Monday 08:00
    assert light.retry_at(MONDAY_9AM_PT, 1, None, 60) == MONDAY_9AM_PT + dt.timedelta(minutes=1)
    assert light.retry_at(MONDAY_9AM_PT, 3, None, 60) == MONDAY_9AM_PT + dt.timedelta(minutes=4)
    assert light.retry_at(MONDAY_9AM_PT, 9, None, 60) == MONDAY_9AM_PT + dt.timedelta(hours=1)
    assert light.retry_at(MONDAY_9AM_PT, 1, 600, 60) == MONDAY_9AM_PT + dt.timedelta(minutes=10)
    assert light.parse_retry_after("120", MONDAY_9AM_PT) == 120
    assert light.parse_retry_after("Mon, 30 Nov 2026 17:02:00 GMT", MONDAY_9AM_PT) == 120


def test_each_task_is_taken_once_through_an_unreliable_server(
        database: Database, program: Program, settings: Settings, clinic_server: ClinicServer) -> None:
    """Down, then 500, then 429 with Retry-After: each failure is recorded and retried later (backing
    off, after Retry-After); then two pages of Tasks become referrals once each — accepted, not
    eligible (rejected, with the reason), a Task without Consent rejected with what is missing, a Task
    whose screening cannot be read rejected saying so — and a Task owned by another organization is
    left alone. Polling again creates nothing new."""
    seed(clinic_server, 1, mrn="L-1")
    seed(clinic_server, 2, mrn="L-2")
    seed(clinic_server, 3, mrn="L-3", screen="LA28398-8")  # never: not food insecure
    seed(clinic_server, 4, mrn="L-4", consent=False)
    seed(clinic_server, 5, mrn="L-5", owner="Organization/someone-else")
    seed(clinic_server, 6, mrn="L-6")
    del clinic_server.store["Observation"]["obs6-2"]  # their ServiceRequest names what they no longer have
    clock = FakeClock(MONDAY_9AM_PT)
    conn_id = connect(database, program, clinic_server, clock)

    clinic_server.stop()
    assert poll(database, settings, clock) == 1
    down = connection(database, conn_id)
    assert "could not be reached" in (down.last_error or "") and down.last_success_at is None
    assert down.next_poll_at == clock.now() + dt.timedelta(minutes=1)
    clinic_server.start()
    clinic_server.failures.extend([(500, {}), (429, {"Retry-After": "300"})])
    clock.advance(60)
    assert poll(database, settings, clock) == 1
    assert connection(database, conn_id).last_error.endswith("HTTP 500.")  # type: ignore[union-attr]
    clock.advance(120)
    assert poll(database, settings, clock) == 1
    busy = connection(database, conn_id)
    assert busy.last_error.endswith("HTTP 429.") and busy.failures == 3  # type: ignore[union-attr]
    assert busy.next_poll_at == clock.now() + dt.timedelta(seconds=300), "Retry-After is respected"
    clock.advance(299)
    assert poll(database, settings, clock) == 0
    assert count(database, Referral) == 0

    clock.advance(1)
    assert poll(database, settings, clock) == 1
    done = connection(database, conn_id)
    assert (done.failures, done.last_success_at) == (0, clock.now())
    assert done.next_poll_at == clock.now() + dt.timedelta(hours=1)
    searches = [s for s in clinic_server.seen if s.startswith("GET /Task?")]
    assert any("_page=2" in s for s in searches), "the second page was followed"
    tasks = {n: parses(clinic_server.get("Task", f"t{n}")) for n in range(1, 7)}
    assert count(database, Referral) == 3 and count(database, FhirRemoteTask) == 5
    assert [tasks[n]["status"] for n in range(1, 7)] == ["accepted", "accepted", "rejected", "rejected",
                                                          "requested", "rejected"]
    assert "could not be read" in tasks[6]["statusReason"]["text"]
    assert "Hunger Vital Sign screen is negative" in tasks[3]["statusReason"]["text"]
    assert "Consent" in tasks[4]["statusReason"]["text"]
    with database.reader() as db:
        refused = db.scalar(select(FhirRemoteTask).where(FhirRemoteTask.remote_id == "t4"))
        assert refused.referral_id is None and "Consent" in refused.refusal  # type: ignore[union-attr]

    with database.reader() as db:
        created = db.scalars(select(AuditEvent).where(AuditEvent.client_id == f"fhir-poll:{conn_id}")).all()
    assert len(created) == 3 and all(a.action == "C" and a.patient_id for a in created)

    writes = clinic_server.writes
    clock.advance(3600)
    assert poll(database, settings, clock) == 1
    assert count(database, Referral) == 3 and count(database, FhirRemoteTask) == 5
    assert clinic_server.writes == writes, "nothing changed here: nothing is written there again"
    latest = [unquote(s) for s in clinic_server.seen if s.startswith("GET /Task?")][-1]
    assert f"_lastUpdated=gt{done.cursor}" in latest, "the search goes on from the cursor"
    with database.reader() as db:
        queued = db.scalars(select(Job).where(Job.kind == light.KIND, Job.state == "queued")).all()
    assert len(queued) == 1, "one poll queued per connection"


def test_the_story_in_direct_light(database: Database, program: Program, settings: Settings,
                                   clinic_server: ClinicServer) -> None:
    """A Task on the clinic's server → poll → referral → the day planned, published, confirmed → the
    clinic's server holds the Task in-progress (delivered) with the Procedure as its output; the order
    ends → completed."""
    seed(clinic_server, 1, mrn="S-1")
    clock = FakeClock(MONDAY_9AM_PT)
    with database.writer() as db:
        driver_user = add_driver(db, program, 1).user_id
        db.commit()
    connect(database, program, clinic_server, clock)
    assert poll(database, settings, clock) == 1
    assert clinic_server.get("Task", "t1")["status"] == "accepted"

    with database.writer() as db:
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        db.commit()
        plan_id = plan.id
    planning.plan_now(database, settings, plan_id, 1.0)
    with database.writer() as db:
        publishing.publish(db, db.get(Plan, plan_id), AuditContext.for_command("publish"), settings)
        db.commit()
    clock.advance(3600)
    assert poll(database, settings, clock) == 1
    scheduled = clinic_server.get("Task", "t1")
    assert ((scheduled["status"], scheduled["businessStatus"]["coding"][0]["code"])
            == ("in-progress", "scheduled"))

    with database.writer() as db:
        stop = db.scalar(select(Stop).join(Order, Order.id == Stop.order_id).where(Stop.plan_id == plan_id))
        assert stop is not None and stop.route_id is not None
        at = (utcnow() - dt.timedelta(minutes=5)).replace(microsecond=0)
        confirm_stop(db, stop=stop, user_id=driver_user, outcome="delivered", note="Left with Rosa",
                     occurred_at=at, idempotency_key="k-1")
        db.commit()
    clock.advance(3600)
    assert poll(database, settings, clock) == 1
    task = parses(clinic_server.get("Task", "t1"))
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == ("in-progress", "delivered")
    (output,) = task["output"]
    procedure_id = output["valueReference"]["reference"].split("/")[1]
    procedure = check_procedure(clinic_server.get("Procedure", procedure_id))
    assert procedure["subject"] == task["for"] and procedure["basedOn"] == [task["focus"]]
    assert "Rosa" not in json.dumps(procedure)

    with database.writer() as db:
        from delivery.program import orders
        referral = db.scalar(select(Referral))
        orders.close_referral(db, referral, "Six months served.", None, today=DAY)  # type: ignore[arg-type]
        db.commit()
    clock.advance(3600)
    assert poll(database, settings, clock) == 1
    assert clinic_server.get("Task", "t1")["status"] == "completed"
    assert len(clinic_server.store["Procedure"]) == 1, "one Procedure per delivery, however often we poll"


def test_an_admin_connects_a_clinic_server_and_sees_how_its_polls_go(
        loop_client, database: Database, program: Program, loop_settings: Settings,
        clinic_server: ClinicServer) -> None:
    """The page refuses what it cannot use (and never echoes the token), queues the first poll, and
    then shows the last successful poll, the last error and the counts."""
    from tests.builders import sign_in

    token = sign_in(loop_client, program.admin)
    form = {"clinic_id": str(program.clinic1_id), "base_url": "http://ehr.example.org/fhir",
            "owner_reference": OWNER, "bearer_token": "s3cret-token-value", "csrf_token": token}
    refused = loop_client.post("/fhir-admin/connections", data=form)
    assert refused.status_code == 422 and "must be https://" in refused.text
    assert "s3cret-token-value" not in refused.text
    assert loop_client.post("/fhir-admin/connections", data=form | {"base_url": "https://ehr.example.org/fhir",
                                                                 "interval_minutes": "5"}
                       ).status_code == 422
    seed(clinic_server, 1, mrn="P-1")
    made = loop_client.post("/fhir-admin/connections", data=form | {"base_url": clinic_server.base_url,
                                                                "bearer_token": clinic_server.token})
    assert made.status_code == 200 and "first poll runs within a minute" in made.text
    assert clinic_server.token not in made.text and "never yet" in made.text
    clock = FakeClock(utcnow() + dt.timedelta(seconds=1))
    assert poll(database, loop_settings, clock) == 1
    page = loop_client.get("/fhir-admin/").text
    assert "1 (1 referrals, 0 refused)" in page and "never yet" not in page
    with database.reader() as db:
        audited = db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.resource == "fhir_connection"))
    assert audited == 1


def test_a_connection_with_smart_backend_services_signs_for_its_token(
        database: Database, program: Program, settings: Settings, clinic_server: ClinicServer) -> None:
    """Our assertion, signed ES384 with the stored private key, verifies on their side (joserfc) with
    the public key they registered; the token it gets reads their Tasks."""
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-384", parameters={"kid": "ours-1"})
    clinic_server.client_keys["produce-box"] = key.as_dict(private=False)
    seed(clinic_server, 1, mrn="K-1")
    clock = FakeClock(MONDAY_9AM_PT)
    with database.writer() as db:
        light.add_connection(db, AuditContext.for_command("test"), db.get(Organization, program.clinic1_id),
                             base_url=clinic_server.base_url, owner_reference=OWNER,
                             token_url=f"{clinic_server.base_url}/auth/token", client_id="produce-box",
                             private_jwk=key.as_dict(private=True), allow_loopback=True, now=clock.now())
        with pytest.raises(light.ConnectionRefused, match="private key"):
            light.add_connection(db, AuditContext.for_command("test"),
                                 db.get(Organization, program.clinic1_id),
                                 base_url=clinic_server.base_url, owner_reference=OWNER,
                                 token_url=f"{clinic_server.base_url}/auth/token", client_id="produce-box",
                                 private_jwk=key.as_dict(private=False), allow_loopback=True, now=clock.now())
        db.commit()
    assert poll(database, settings, clock) == 1
    (claims,) = clinic_server.assertions
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("produce-box", "produce-box",
                                                             f"{clinic_server.base_url}/auth/token")
    assert clinic_server.get("Task", "t1")["status"] == "accepted"
