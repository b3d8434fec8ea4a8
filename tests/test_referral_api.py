"""A clinic's system refers patients over the JSON API with a bearer token."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from sqlalchemy import func, select

from delivery.models import Order, Organization, Patient, ReviewItem
from delivery.platform.db import Database
from tests.builders import Program, api_token, referral_body, sign_in


@pytest.fixture
def clinic1_headers(database: Database, program: Program) -> dict[str, str]:
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    return headers


def test_design_example_becomes_a_home_delivery_order(client, clinic1_headers) -> None:
    """The DESIGN.md body gives 201, outcome home_delivery, an Order, and a timeline."""
    response = client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["outcome"] == "home_delivery" and body["status"] == "active"
    assert isinstance(body["order_id"], int) and body["geocode_status"] == "given"
    assert "no reliable transportation" in body["reason"]

    fetched = client.get(f"/api/v1/referrals/{body['id']}", headers=clinic1_headers).json()
    kinds = [event["kind"] for event in fetched["timeline"]]
    assert kinds == ["received", "order_created", "outcome"]
    assert all(event["at"] for event in fetched["timeline"])


def test_the_timeline_is_data_oldest_first(client, clinic1_headers) -> None:
    """GET /api/v1/referrals/{id}: each event's sequence, kind, at, data (ids and values) and text."""
    body = client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers).json()
    fetched = client.get(f"/api/v1/referrals/{body['id']}", headers=clinic1_headers).json()
    timeline = fetched["timeline"]
    assert [set(event) for event in timeline] == [{"sequence", "kind", "at", "data", "text"}] * 3
    assert [(e["sequence"], e["kind"]) for e in timeline] == [
        (1, "received"), (2, "order_created"), (3, "outcome")]
    received, created, outcome = timeline
    assert received["data"]["source"] == "api" and received["data"]["actor_id"] > 0
    assert received["text"] == "Referred by Fruitvale Clinic (api)."
    assert created["data"]["order_id"] == body["order_id"]
    assert created["data"]["terms"]["boxes"] == 1
    assert created["text"].startswith("1 standard box(es), weekly, first delivery ")
    assert (outcome["data"]["outcome"], outcome["text"]) == ("home_delivery", body["reason"])
    assert msgspec.json.decode(msgspec.json.encode(timeline[0]["at"]), type=dt.datetime).tzinfo is not None


def test_food_insecure_without_barrier_is_told_the_nearest_depot(client, clinic1_headers) -> None:
    """No barrier -> pick-up referral, no Order, the nearest depot and its hours in the reason."""
    body = referral_body(screening__transportation_barrier=False)
    answer = client.post("/api/v1/referrals", json=body, headers=clinic1_headers).json()
    assert answer["outcome"] == "pickup" and answer["order_id"] is None
    assert "Eastside warehouse" in answer["reason"] and "Mon-Fri 9am-5pm" in answer["reason"]


def test_not_food_insecure_is_not_eligible_with_reason(client, clinic1_headers) -> None:
    """A negative Hunger Vital Sign is declined with the reason."""
    body = referral_body(screening__hunger_worried="never", screening__hunger_ran_out="never")
    answer = client.post("/api/v1/referrals", json=body, headers=clinic1_headers).json()
    assert answer["outcome"] == "not_eligible" and answer["order_id"] is None
    assert "negative" in answer["reason"]


@pytest.mark.req("R4.2")
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"patient__address__postal_code": "ABCDE"}, "patient.address.postal_code"),
        ({"patient__nickname": "Rosie"}, "patient.nickname"),
        ({"screening__hunger_worried": "always"}, "screening.hunger_worried"),
        ({"patient__floor": 5000}, "patient.floor"),
        ({"patient__given_name": "x" * 101}, "patient.given_name"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(client, clinic1_headers, database, change,
                                                      field) -> None:
    """A malformed body is refused with a message naming the field, and nothing is stored."""
    response = client.post("/api/v1/referrals", json=referral_body(**change), headers=clinic1_headers)
    assert response.status_code == 400
    assert all(part in response.text for part in field.split("."))
    with database.reader() as db:
        assert db.scalar(select(func.count(Patient.id))) == 0


def test_missing_point_with_geocoding_off_goes_to_review_not_lost(client, clinic1_headers, database) -> None:
    """Without lat/lon, and no geocoder (the test app's DELIVERY_GEOCODER=none), the referral is
    accepted and the address is in the coordinators' review queue at once, with the reason."""
    body = referral_body()
    del body["patient"]["address"]["lat"], body["patient"]["address"]["lon"]
    answer = client.post("/api/v1/referrals", json=body, headers=clinic1_headers).json()
    assert answer["geocode_status"] == "needs_review" and answer["order_id"] is not None
    with database.reader() as db:
        [item] = db.scalars(select(ReviewItem).where(ReviewItem.resolved_at.is_(None)))
        assert item.kind == "geocode_failed" and "Geocoding is off" in item.message


def test_second_referral_for_an_open_patient_is_a_conflict(client, clinic1_headers, database) -> None:
    """Referring a patient who already has an open referral says so (409) and creates nothing."""
    first = client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers).json()
    again = client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers)
    assert again.status_code == 409 and str(first["id"]) in again.json()["detail"]
    with database.reader() as db:
        assert db.scalar(select(func.count(Order.id))) == 1


@pytest.mark.req("R3.3")
def test_clinic_cannot_see_another_clinics_referral(client, clinic1_headers, database, program) -> None:
    """Clinic 2's staff get 404 for clinic 1's referral; the coordinator of the program sees it."""
    created = client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers).json()
    with database.writer() as db:
        other = api_token(db, program.clinic2)
        coordinator = api_token(db, program.coordinator)
        db.commit()
    assert client.get(f"/api/v1/referrals/{created['id']}", headers=other).status_code == 404
    assert client.get(f"/api/v1/referrals/{created['id']}", headers=coordinator).status_code == 200
    # A coordinator cannot refer (that is a clinic's act), and nobody anonymous gets in.
    assert client.post("/api/v1/referrals", json=referral_body(), headers=coordinator).status_code == 403
    assert client.get(f"/api/v1/referrals/{created['id']}").status_code == 401


def test_same_name_and_birth_date_under_another_mrn_is_flagged(client, clinic1_headers, database) -> None:
    """A second MRN for the same name and birth date is created but flagged for review."""
    client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers)
    client.post("/api/v1/referrals", json=referral_body(patient__mrn="A-2002"), headers=clinic1_headers)
    with database.reader() as db:
        items = db.scalars(select(ReviewItem)).all()
    assert [item.kind for item in items] == ["possible_duplicate"]
    assert "A-1001" in items[0].message


def test_full_program_puts_eligible_patients_on_a_prioritised_waitlist(client, clinic1_headers, database,
                                                                        program) -> None:
    """Over capacity, referrals wait in order of priority then date, with their place shown."""
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 1
        db.commit()
    served = client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers).json()
    normal_body = referral_body(patient__mrn="B-1", patient__given_name="Ana")
    urgent_body = {**referral_body(patient__mrn="C-1", patient__given_name="Bo"), "priority": 2}
    normal = client.post("/api/v1/referrals", json=normal_body, headers=clinic1_headers).json()
    urgent = client.post("/api/v1/referrals", json=urgent_body, headers=clinic1_headers).json()
    assert served["outcome"] == "home_delivery"
    assert normal["outcome"] == urgent["outcome"] == "waitlisted"
    assert "position 1" in normal["reason"]
    normal_now = client.get(f"/api/v1/referrals/{normal['id']}", headers=clinic1_headers).json()
    urgent_now = client.get(f"/api/v1/referrals/{urgent['id']}", headers=clinic1_headers).json()
    assert (urgent_now["waitlist_position"], normal_now["waitlist_position"]) == (1, 2)


def test_openapi_documents_the_referral_contract(client, program) -> None:
    """Signed-in staff read the OpenAPI document with the referral operations; strangers do not."""
    assert client.get("/schema/openapi.json", follow_redirects=False).status_code == 303
    sign_in(client, program.coordinator)
    spec = msgspec.json.decode(client.get("/schema/openapi.json").content)
    assert "/api/v1/referrals" in spec["paths"] and "/api/v1/referrals/{referral_id}" in spec["paths"]


def test_openapi_lists_only_the_api(client, program) -> None:
    """People's pages stay out of the API document; every documented path is under /api."""
    sign_in(client, program.coordinator)
    spec = msgspec.json.decode(client.get("/schema/openapi.json").content)
    assert spec["paths"]
    assert all(path.startswith("/api/") for path in spec["paths"])


def test_resent_referral_keeps_stored_details_and_reports_what_differed(client, clinic1_headers,
                                                                       database) -> None:
    """A re-sent body without phone, language or notes keeps them; a new floor is applied and both
    the 409 answer and the timeline say floor 3 → 5."""
    first = client.post("/api/v1/referrals", json=referral_body(), headers=clinic1_headers).json()
    body = referral_body(patient__floor=5)
    for optional in ("phone", "language", "access_notes", "dietary", "elevator"):
        del body["patient"][optional]
    again = client.post("/api/v1/referrals", json=body, headers=clinic1_headers)
    assert again.status_code == 409
    assert again.json()["extra"]["changes"] == [{"field": "floor", "before": "3", "after": "5",
                                                 "applied": True}]
    assert "What differed was stored: floor" in again.json()["detail"]
    with database.reader() as db:
        patient = db.scalar(select(Patient))
        assert (patient.phone, patient.language, patient.access_notes, patient.dietary) == (
            "+15105550101", "es", "gate code 1234", ["diabetic"])
        assert patient.floor == 5
    timeline = client.get(f"/api/v1/referrals/{first['id']}", headers=clinic1_headers).json()["timeline"]
    assert timeline[-1]["kind"] == "patient_corrected" and "floor 3 → 5" in timeline[-1]["text"]
    assert timeline[-1]["data"]["changes"] == [{"field": "floor", "before": "3", "after": "5",
                                                "applied": True}]
