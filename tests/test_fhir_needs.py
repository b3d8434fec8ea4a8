"""The FHIR channel carries what the other channels do: the patient's other needs (to the clinic's
worklist), SNAP/CalFresh enrollment (to the benefits staff) and consent to texts (to the patient)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from delivery.loop.fhir import codes
from delivery.models import BenefitsCase, FhirTask, Need, Referral
from delivery.platform.db import Database
from delivery.program import benefits
from delivery.referrals import needs
from tests.builders import Program, api_token
from tests.fhir_checks import FHIR_JSON, parses, sample_bundle, setting

SNAP_AT, NEEDS_AT, CONSENT_AT = 7, 8, 6  # entries of docs/fhir-sample-bundle.json
TEXTS = {"coding": [{"system": codes.LOCAL_CODES, "code": codes.TEXT_CONSENT}]}


@pytest.fixture
def clinic1(database: Database, program: Program) -> dict[str, str]:
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    return headers


def post(client, headers: dict[str, str], bundle: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post("/fhir/Bundle", content=json.dumps(bundle), headers=headers | FHIR_JSON)


def resource(bundle: dict[str, Any], at: int) -> dict[str, Any]:
    return bundle["entry"][at]["resource"]


def test_the_sample_carries_needs_snap_and_text_consent_and_each_parses() -> None:
    """The entries added for this are valid FHIR R4 with both libraries."""
    bundle = sample_bundle()
    for at in (SNAP_AT, NEEDS_AT, CONSENT_AT):
        parses(resource(bundle, at))


def test_needs_snap_no_and_text_consent_reach_the_clinic_benefits_staff_and_patient(
        client, clinic1, database: Database, program: Program) -> None:
    """A pick plus the patient's words → the need on the clinic's worklist, from FHIR; SNAP not-enrolled
    with a food-insecure screen → a benefits case; the Consent's texts provision → consent_to_text."""
    bundle = sample_bundle()
    answer = resource(bundle, NEEDS_AT)["valueCodeableConcept"]
    answer["coding"].append({"system": codes.SDOHCC_CODES, "code": "social-connection"})
    response = post(client, clinic1, bundle)
    assert response.status_code == 200, response.text
    with database.reader() as db:
        referral = db.scalar(select(Referral))
        assert referral.screening.snap_enrolled == "no"
        assert referral.patient.text_consent is True
        [need] = needs.worklist(db, program.clinic1_id)
        assert (need.referral_id, need.source, need.kinds, need.words) == (
            referral.id, "fhir", ["ride", "someone_to_talk_to"], "A ride to the dialysis clinic on Tuesdays")
        assert needs.worklist(db, program.food_bank_id) == []
        case = benefits.of_referral(db, referral.id)
        assert case is not None and case in benefits.worklist(db, [program.clinic1_id])


def test_enrolled_words_only_and_texts_denied(client, clinic1, database: Database, program: Program) -> None:
    """enrolled → yes and no benefits case; valueString → words with no pick; provision deny → false."""
    bundle = sample_bundle()
    resource(bundle, SNAP_AT)["valueCodeableConcept"]["coding"][0]["code"] = "enrolled"
    resource(bundle, NEEDS_AT).pop("valueCodeableConcept")
    resource(bundle, NEEDS_AT)["valueString"] = "Someone to fix my stove"
    resource(bundle, CONSENT_AT)["provision"]["provision"][0]["type"] = "deny"
    assert post(client, clinic1, parses(bundle)).status_code == 200
    with database.reader() as db:
        referral = db.scalar(select(Referral))
        assert (referral.screening.snap_enrolled, referral.patient.text_consent) == ("yes", False)
        [need] = needs.worklist(db, program.clinic1_id)
        assert (need.kinds, need.words) == ([], "Someone to fix my stove")
        assert benefits.of_referral(db, referral.id) is None


def test_absent_means_the_api_defaults(client, clinic1, database: Database) -> None:
    """No enrollment Observation, no needs, no texts provision: unknown, none, not consented."""
    bundle = sample_bundle()
    bundle["entry"] = bundle["entry"][:SNAP_AT]
    resource(bundle, CONSENT_AT)["provision"].pop("provision")
    assert post(client, clinic1, bundle).status_code == 200
    with database.reader() as db:
        referral = db.scalar(select(Referral))
        assert (referral.screening.snap_enrolled, referral.patient.text_consent) == ("unknown", False)
        assert db.scalar(select(func.count()).select_from(Need)) == 0
        assert db.scalar(select(func.count()).select_from(BenefitsCase)) == 0


@pytest.mark.parametrize(("change", "expression", "words"), [
    (setting(NEEDS_AT, "valueCodeableConcept.coding.0.code", "pizza"),
     f"Bundle.entry[{NEEDS_AT}].resource.value", "SDOH categories"),
    (setting(NEEDS_AT, "valueCodeableConcept.text", "x" * 501),
     f"Bundle.entry[{NEEDS_AT}].resource.value", "length"),
    (setting(SNAP_AT, "valueCodeableConcept.coding.0.code", "maybe"),
     f"Bundle.entry[{SNAP_AT}].resource.value", "not-enrolled"),
    (setting(CONSENT_AT, "provision.provision.0", {"code": [TEXTS]}),
     f"Bundle.entry[{CONSENT_AT}].resource.provision.provision[0].type", "permit or deny"),
])
def test_a_bad_answer_names_the_element_and_creates_nothing(client, clinic1, database: Database, change,
                                                            expression: str, words: str) -> None:
    bundle = sample_bundle()
    change(bundle)
    response = post(client, clinic1, bundle)
    assert response.status_code == 422, response.text
    issue = parses(response.json())["issue"][0]
    assert issue["expression"] == [expression] and words in issue["diagnostics"]
    with database.reader() as db:
        assert db.scalar(select(func.count()).select_from(Referral)) == 0
        assert db.scalar(select(func.count()).select_from(FhirTask)) == 0
