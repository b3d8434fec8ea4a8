"""A clinic's EHR refers over FHIR ("Direct"): a transaction Bundle in, an SDOHCC Task back, and the
Task followed through search, read, cancellation; the program's capacity as a HealthcareService."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select

from delivery.models import AuditEvent, FhirTask, Order, OrderStatus, Organization, Referral, User
from delivery.platform.db import Database
from delivery.program import program_settings
from tests.builders import Program, api_token, sign_in
from tests.fhir_checks import (
    FHIR_JSON,
    check_service_request,
    check_task,
    parses,
    sample_bundle,
    setting,
)


def token_of(database: Database, email: str) -> dict[str, str]:
    with database.writer() as db:
        headers = api_token(db, email)
        db.commit()
    return headers


@pytest.fixture
def clinic1(database: Database, program: Program) -> dict[str, str]:
    return token_of(database, program.clinic1)


@pytest.fixture
def clinic2(database: Database, program: Program) -> dict[str, str]:
    return token_of(database, program.clinic2)


def post_bundle(client, headers: dict[str, str], bundle: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post("/fhir/Bundle", content=json.dumps(bundle), headers=headers | FHIR_JSON)


def refer(client, headers: dict[str, str], **changes: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Post the sample Bundle; the Task of the transaction-response."""
    response = post_bundle(client, headers, sample_bundle(**changes))
    assert response.status_code == 200, response.text
    return response.json()["entry"][-1]["resource"]


def count(database: Database, model: type) -> int:
    with database.reader() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def test_sample_bundle_becomes_an_accepted_task(client, clinic1, program: Program) -> None:
    """docs/ sample → transaction-response: a 201 per entry, then the Task (order, fulfill, focus, for,
    authoredOn, requester the clinic, owner the food bank), accepted because an order was created."""
    response = post_bundle(client, clinic1, sample_bundle())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    answer = parses(response.json())
    assert answer["type"] == "transaction-response"
    entries = answer["entry"]
    assert len(entries) == 10  # the 9 entries sent, then the Task created for them
    assert all(e["response"]["status"] == "201 Created" for e in entries)
    assert entries[0]["response"]["location"].startswith("Patient/")
    task = check_task(entries[-1]["resource"])
    assert task["status"] == "accepted" and "businessStatus" not in task
    assert task["focus"]["reference"] == entries[1]["response"]["location"]
    assert task["for"]["reference"] == entries[0]["response"]["location"]
    assert task["requester"]["reference"] == f"Organization/{program.clinic1_id}"
    assert task["owner"] == {"reference": f"Organization/{program.food_bank_id}",
                             "display": "Eastside Food Bank"}
    assert response.headers["location"].endswith(f"/fhir/Task/{task['id']}")


def test_the_referral_goes_through_refer_like_every_channel(client, clinic1, database: Database) -> None:
    """The Bundle's patient and screening become the same referral, order and timeline as the JSON API's."""
    task = refer(client, clinic1)
    with database.reader() as db:
        row = db.get(FhirTask, int(task["id"]))
        referral = db.get(Referral, row.referral_id)
        assert referral.source == "fhir" and referral.outcome == "home_delivery"
        patient = referral.patient
        assert (patient.mrn, patient.given_name, patient.unit, patient.language) == (
            "A-1001", "Rosa", "3B", "es")
        assert (patient.lat, patient.lon, patient.consent_to_share) == (37.7491, -122.169, True)
        s = referral.screening
        assert (s.hunger_worried, s.hunger_ran_out, s.transportation_barrier) == ("often", "sometimes", True)
        assert db.scalar(select(Order.status).where(Order.referral_id == referral.id)) == OrderStatus.active


def test_a_repeated_bundle_creates_no_second_referral(client, clinic1, database: Database) -> None:
    """The same ServiceRequest identifier again: 200 OK entries and the same Task; nothing new."""
    first = refer(client, clinic1)
    again = post_bundle(client, clinic1, sample_bundle())
    assert again.status_code == 200
    assert again.json()["entry"][-1]["resource"]["id"] == first["id"]
    assert {e["response"]["status"] for e in again.json()["entry"]} == {"200 OK"}
    assert count(database, Referral) == 1 and count(database, FhirTask) == 1


def test_another_request_for_a_patient_already_served_is_a_conflict(client, clinic1, database) -> None:
    """A new ServiceRequest for a patient with an open referral: 409 naming the patient, nothing created."""
    refer(client, clinic1)
    response = post_bundle(client, clinic1, sample_bundle(request_id="SR-other"))
    assert response.status_code == 409
    issue = parses(response.json())["issue"][0]
    assert issue["code"] == "duplicate" and issue["expression"] == ["Bundle.entry[0].resource.identifier"]
    assert count(database, Referral) == 1


def _without(kind: str):  # type: ignore[no-untyped-def]
    def change(bundle: dict[str, Any]) -> None:
        bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != kind]
    return change


@pytest.mark.parametrize(("change", "status", "expression", "words"), [
    (setting(1, "bogus", 1), 400, "Bundle.entry[1].resource.bogus", "Not valid FHIR R4"),
    (setting(0, "birthDate", "1948-13-02"), 400, "Bundle.entry[0].resource.birthDate", "Not valid FHIR R4"),
    (lambda b: b.update(type="batch"), 422, "Bundle.type", "transaction"),
    (setting(1, "code", {"coding": [{"system": "http://snomed.info/sct", "code": "1234"}]}), 422,
     "Bundle.entry[1].resource.code", "710925007"),
    (setting(1, "category", [{"text": "food"}]), 422, "Bundle.entry[1].resource.category", "410606002"),
    (setting(1, "identifier", []), 422, "Bundle.entry[1].resource.identifier", "identifier"),
    (setting(1, "subject", {"reference": "Patient/elsewhere"}), 422, "Bundle.entry[1].resource.subject",
     "Patient entry"),
    (setting(2, "valueCodeableConcept.coding.0.code", "LA0000-0"), 422, "Bundle.entry[2].resource.value",
     "88122-7"),
    (_without("Consent"), 422, "Bundle.entry", "Consent"),
    (setting(6, "status", "rejected"), 422, "Bundle.entry[6].resource.status", "Consent"),
    (_without("Patient"), 422, "Bundle.entry", "exactly one Patient"),
    (setting(0, "address.0.postalCode", "ABCDE"), 422, "Bundle.entry[0].resource.address.postalCode",
     "regex"),
    (setting(0, "identifier.0.value", "A 1001!"), 422, "Bundle.entry[0].resource.identifier", "regex"),
])
def test_a_bad_bundle_names_the_entry_and_element_and_creates_nothing(
        client, clinic1, database: Database, change, status: int, expression: str, words: str) -> None:
    """4xx with an OperationOutcome (which entry, which element, what to fix); all or nothing."""
    bundle = sample_bundle()
    change(bundle)
    response = post_bundle(client, clinic1, bundle)
    assert response.status_code == status, response.text
    issue = parses(response.json())["issue"][0]
    assert issue["severity"] == "error" and issue["expression"] == [expression]
    assert words in issue["diagnostics"]
    assert count(database, Referral) == 0 and count(database, FhirTask) == 0


def test_screening_as_a_questionnaire_response(client, clinic1, database: Database) -> None:
    """The screening may come as one QuestionnaireResponse instead of Observations."""
    bundle = sample_bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Observation"]
    loinc = "http://loinc.org"
    bundle["entry"].append({"resource": {
        "resourceType": "QuestionnaireResponse", "status": "completed",
        "subject": {"reference": bundle["entry"][0]["fullUrl"]},
        "item": [{"linkId": "/88122-7", "answer": [{"valueCoding": {"system": loinc, "code": "LA6729-3"}}]},
                 {"linkId": "/88123-5", "answer": [{"valueCoding": {"system": loinc, "code": "LA28398-8"}}]},
                 {"linkId": "/93030-5", "answer": [{"valueCoding": {"system": loinc, "code": "LA32-8"}}]},
                 {"linkId": "/69859-7", "answer": [{"valueCoding": {"system": loinc, "code": "LA33-6"}}]}]},
        "request": {"method": "POST", "url": "QuestionnaireResponse"}})
    response = post_bundle(client, clinic1, bundle)
    assert response.status_code == 200, response.text
    with database.reader() as db:
        s = db.scalar(select(Referral)).screening
        assert (s.hunger_worried, s.hunger_ran_out, s.transportation_barrier, s.mobility_barrier) == (
            "sometimes", "never", False, True)


def test_not_eligible_is_rejected_with_the_reason(client, clinic1) -> None:
    """Never food insecure: the Task is rejected, statusReason.text says why."""
    bundle = sample_bundle()
    for at in (2, 3):
        bundle["entry"][at]["resource"]["valueCodeableConcept"]["coding"][0]["code"] = "LA28398-8"
    task = check_task(post_bundle(client, clinic1, bundle).json()["entry"][-1]["resource"])
    assert task["status"] == "rejected"
    assert "Hunger Vital Sign screen is negative" in task["statusReason"]["text"]


def test_waitlisted_is_accepted_with_place_and_wait(client, clinic1, database: Database, program) -> None:
    """A full program: accepted, businessStatus waitlisted, the place in statusReason.text; and the
    HealthcareService says waitlist."""
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 0
        db.commit()
    task = check_task(refer(client, clinic1))
    assert task["status"] == "accepted"
    assert task["businessStatus"]["coding"][0]["code"] == "waitlisted"
    assert task["statusReason"]["text"].startswith("On the waitlist at position 1")
    service = parses(client.get("/fhir/HealthcareService", headers=clinic1).json())["entry"][0]["resource"]
    status, notes = service["extension"][0]["extension"]
    assert status["valueCodeableConcept"]["coding"][0]["code"] == "waitlist"
    assert notes["valueString"].startswith("About 1 waiting")


def test_a_program_may_answer_waitlisted_as_rejected_for_no_capacity(client, clinic1, database: Database,
                                                                     program: Program) -> None:
    """The program's strict reading (an admin's choice on the program page): the same waiting referral
    is a rejected Task whose statusReason.text says there is no capacity and where it waits; the
    default reading (the test above) still holds for programs that did not choose it."""
    token = sign_in(client, program.admin)
    with database.reader() as db:
        fb = db.get(Organization, program.food_bank_id)
        form = {c.name: str(getattr(fb, c.name)) for c in program_settings.CHOICES}
    assert "Tell FHIR clinics a waitlisted referral is rejected" in client.get("/coordinator/program").text
    saved = client.post(f"/coordinator/program/{program.food_bank_id}/choices",
                        data={**form, "box_types": ["standard"], "require_upstairs": "true",
                              "waitlisted_is_rejected": "true", "csrf_token": token})
    assert "a waitlisted FHIR referral is accepted (waitlisted) → rejected (no capacity)" in saved.text
    client.cookies.clear()
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 0
        db.commit()
    task = check_task(refer(client, clinic1))
    assert (task["status"], task.get("businessStatus")) == ("rejected", None)
    assert task["statusReason"]["text"].startswith("No capacity: the program is full. On the waitlist at "
                                                   "position 1")
    service = parses(client.get("/fhir/HealthcareService", headers=clinic1).json())["entry"][0]["resource"]
    status, _ = service["extension"][0]["extension"]
    assert status["valueCodeableConcept"]["coding"][0]["code"] == "no-capacity"


def test_healthcare_service_has_capacity_when_there_is_room(client, clinic1, program: Program) -> None:
    """Room on the next delivery day: capacity, with the number of free boxes."""
    service = parses(client.get(f"/fhir/HealthcareService/{program.food_bank_id}", headers=clinic1).json())
    ext = service["extension"][0]
    assert ext["url"].endswith("SDOHCC-ExtensionHealthcareServiceCapacityStatus")
    assert ext["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "capacity"
    assert "100 boxes free" in ext["extension"][1]["valueString"]
    assert client.get("/fhir/HealthcareService/999", headers=clinic1).status_code == 404


def test_read_search_include_and_page(client, clinic1, clinic2, program: Program) -> None:
    """Task read; search by focus, owner, patient, status, _lastUpdated; _include=Task:focus; paging."""
    tasks = [refer(client, clinic1, mrn=f"M-{n}", request_id=f"SR-{n}") for n in range(3)]
    first = tasks[0]
    assert check_task(client.get(f"/fhir/Task/{first['id']}", headers=clinic1).json()) == first

    def search(query: str, headers: dict[str, str] = clinic1) -> dict[str, Any]:
        response = client.get(f"/fhir/Task?{query}", headers=headers)
        assert response.status_code == 200, response.text
        return parses(response.json())

    found = search(f"focus={first['focus']['reference']}&_include=Task:focus")
    assert [e["search"]["mode"] for e in found["entry"]] == ["match", "include"]
    check_service_request(found["entry"][1]["resource"])
    assert found["entry"][1]["resource"]["id"] == first["focus"]["reference"].split("/")[1]
    assert search(f"owner=Organization/{program.food_bank_id}")["total"] == 3
    assert search("owner=Organization/999")["total"] == 0
    assert search(f"patient={first['for']['reference']}")["total"] == 1
    assert search("status=accepted")["total"] == 3 and search("status=completed")["total"] == 0
    assert search("_lastUpdated=gt2000-01-01T00:00:00Z")["total"] == 3
    assert search("_lastUpdated=gt2100-01-01T00:00:00Z")["total"] == 0
    assert search("_lastUpdated=lt2000-01-01")["total"] == 0
    page = search("_count=2")
    assert page["total"] == 3 and len(page["entry"]) == 2
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = parses(client.get(next_url, headers=clinic1).json())
    assert [e["resource"]["id"] for e in rest["entry"]] == [tasks[2]["id"]]
    assert not any(link["relation"] == "next" for link in rest["link"])
    for entry in page["entry"] + rest["entry"]:
        check_task(entry["resource"])
    # another clinic sees none of it
    assert search("", clinic2)["total"] == 0
    assert client.get(f"/fhir/Task/{first['id']}", headers=clinic2).status_code == 404


def test_bad_search_values_are_400_and_unknown_parameters_ignored_unless_strict(client, clinic1) -> None:
    """Bad values say what to fix; an unknown parameter is left out of the self link (FHIR's lenient
    default) and refused with Prefer: handling=strict."""
    for query in ("status=ready", "_lastUpdated=eq2026-01-01", "focus=Patient/1", "_count=-1"):
        response = client.get(f"/fhir/Task?{query}", headers=clinic1)
        assert response.status_code == 400, query
        assert parses(response.json())["issue"][0]["diagnostics"]
    refer(client, clinic1)
    lenient = parses(client.get("/fhir/Task?subject=Patient/1&_count=0", headers=clinic1).json())
    assert lenient["total"] == 1 and "entry" not in lenient, "FHIR arrays are never empty: left out"
    assert "subject" not in lenient["link"][0]["url"]
    strict = client.get("/fhir/Task?subject=Patient/1", headers=clinic1 | {"Prefer": "handling=strict"})
    assert strict.status_code == 400 and "subject" in strict.json()["issue"][0]["diagnostics"]


def test_the_requester_cancels_with_patch(client, clinic1, database: Database) -> None:
    """PATCH status cancelled: the order ends through the orders service, the timeline tells it."""
    task = refer(client, clinic1)
    patch = [{"op": "replace", "path": "/status", "value": "cancelled"},
             {"op": "add", "path": "/statusReason", "value": {"text": "Moved to a care home"}}]
    response = client.patch(f"/fhir/Task/{task['id']}", content=json.dumps(patch),
                            headers=clinic1 | {"content-type": "application/json-patch+json"})
    assert response.status_code == 200, response.text
    cancelled = check_task(response.json())
    assert cancelled["status"] == "cancelled" and "Moved to a care home" in cancelled["statusReason"]["text"]
    with database.reader() as db:
        order = db.scalar(select(Order))
        assert order.status == OrderStatus.ended and "Fruitvale Clinic through FHIR" in order.end_reason
        assert db.scalar(select(AuditEvent.resource_id).where(AuditEvent.action == "U")) == task["id"]
        referral = db.get(Referral, order.referral_id)
        assert referral.status == "closed"
    again = client.patch(f"/fhir/Task/{task['id']}", content=json.dumps(patch),
                         headers=clinic1 | {"content-type": "application/json-patch+json"})
    assert again.status_code == 409


def test_the_requester_cancels_with_put_and_may_set_nothing_else(client, clinic1, clinic2) -> None:
    """PUT of the Task with status cancelled works; any other status is the food bank's to set; another
    clinic cannot touch it."""
    task = refer(client, clinic1)
    url = f"/fhir/Task/{task['id']}"
    refused = client.put(url, content=json.dumps(task | {"status": "completed"}), headers=clinic1 | FHIR_JSON)
    assert refused.status_code == 422
    wrong_op = [{"op": "replace", "path": "/owner", "value": {"reference": "Organization/9"}}]
    assert client.patch(url, content=json.dumps(wrong_op), headers=clinic1 | FHIR_JSON).status_code == 422
    body = json.dumps(task | {"status": "cancelled"})
    assert client.put(url, content=body, headers=clinic2 | FHIR_JSON).status_code == 404
    done = client.put(url, content=body, headers=clinic1 | FHIR_JSON)
    assert done.status_code == 200 and check_task(done.json())["status"] == "cancelled"


def test_every_read_of_patient_data_is_audited(client, clinic1, database: Database) -> None:
    """GET Task, search and ServiceRequest each leave an audit row naming the user and the patient."""
    task = refer(client, clinic1)
    before = count(database, AuditEvent)
    client.get(f"/fhir/Task/{task['id']}", headers=clinic1)
    client.get("/fhir/Task?_include=Task:focus", headers=clinic1)
    client.get(f"/fhir/{task['focus']['reference']}", headers=clinic1)
    with database.reader() as db:
        rows = list(db.scalars(select(AuditEvent).order_by(AuditEvent.id).offset(before)))
    assert [(r.action, r.resource) for r in rows] == [("R", "fhir:Task"), ("R", "fhir:Task"),
                                                      ("R", "fhir:ServiceRequest")]
    assert all(r.user_id and r.patient_id for r in rows)
    with database.reader() as db:
        created = db.scalar(select(AuditEvent).where(AuditEvent.action == "C"))
    assert (created.resource, created.resource_id) == ("fhir:Task", task["id"]) and created.patient_id


def test_without_a_token_every_route_but_metadata_is_401_operation_outcome(client) -> None:
    for path in ("/fhir/Task", "/fhir/Task/1", "/fhir/Procedure/1", "/fhir/HealthcareService"):
        response = client.get(path)
        assert response.status_code == 401
        assert parses(response.json())["issue"][0]["code"] == "login"
    anonymous = client.post("/fhir/Bundle", content=json.dumps(sample_bundle()), headers=FHIR_JSON)
    assert anonymous.status_code == 401


def test_a_coordinator_token_is_not_a_clinic(client, database: Database, program: Program) -> None:
    assert client.get("/fhir/Task", headers=token_of(database, program.coordinator)).status_code == 403


def test_capability_statement_says_exactly_what_is_supported(client) -> None:
    """Public metadata: the resources, interactions and search parameters served, SMART, our code system."""
    statement = parses(client.get("/fhir/metadata").json())
    rest = statement["rest"][0]
    kinds = {r["type"]: r for r in rest["resource"]}
    assert set(kinds) == {"Bundle", "Task", "ServiceRequest", "Procedure", "HealthcareService", "CodeSystem"}
    assert {p["name"] for p in kinds["Task"]["searchParam"]} == {"_id", "focus", "owner", "patient", "status",
                                                                 "_lastUpdated"}
    assert kinds["Task"]["searchInclude"] == ["Task:focus"]
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    system = next(w for w in rest["documentation"].split() if "CodeSystem" in w).rstrip(".")
    code_system = parses(client.get(system.replace("https://testserver.local", "")).json())
    assert code_system["url"] == system
    assert {c["code"] for c in code_system["concept"]} >= {"delivered", "waitlisted", "attempt-not-home"}


def test_transaction_response_parses_as_bundle_with_msgspec_roundtrip(client, clinic1) -> None:
    """The body is plain JSON a client can re-read (no NaN, no Python reprs)."""
    response = post_bundle(client, clinic1, sample_bundle())
    assert msgspec.json.decode(response.content)["resourceType"] == "Bundle"


def test_refused_patient_data_requests_leave_fail_audit_rows(client, clinic1, clinic2, database: Database,
                                                             program: Program) -> None:
    """401 (no token), 403 (a coordinator's token) and 404 (another clinic's Task) on patient-data
    routes are audited as failures with who and what; public and program routes are not."""
    task = refer(client, clinic1)
    with database.reader() as db:
        before = db.scalar(select(func.count(AuditEvent.id)))
    assert client.get(f"/fhir/Task/{task['id']}").status_code == 401
    assert client.get("/fhir/Task", headers=token_of(database, program.coordinator)).status_code == 403
    assert client.get(f"/fhir/Task/{task['id']}", headers=clinic2).status_code == 404
    assert client.get("/fhir/Procedure/999", headers=clinic1).status_code == 404
    assert client.get("/fhir/HealthcareService").status_code == 401  # the program, no patient data
    assert client.get("/fhir/metadata").status_code == 200
    with database.reader() as db:
        rows = list(db.scalars(select(AuditEvent).order_by(AuditEvent.id).offset(before)))
        coordinator = db.scalar(select(User.id).where(User.email == program.coordinator))
        staff1, staff2 = (db.scalar(select(User.id).where(User.email == e))
                          for e in (program.clinic1, program.clinic2))
    failed = [(r.action, r.resource, r.resource_id, r.outcome, r.user_id, r.detail[:3]) for r in rows
              if r.outcome == "fail"]
    assert failed == [("R", "fhir:Task", task["id"], "fail", None, "401"),
                      ("R", "fhir:Task", None, "fail", coordinator, "403"),
                      ("R", "fhir:Task", task["id"], "fail", staff2, "404"),
                      ("R", "fhir:Procedure", "999", "fail", staff1, "404")]
    assert all(r.ip and r.request_id for r in rows if r.outcome == "fail")
