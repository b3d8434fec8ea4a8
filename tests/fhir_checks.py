"""Checks by code we did not write: every FHIR resource parses with `fhir.resources` (R4B models)
and `fhirclient` (R4 models); and the SDOH Clinical Care guide's fixed values, stated as rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhirclient.models.fhirelementfactory import FHIRElementFactory

SAMPLE = Path(__file__).parents[1] / "docs" / "fhir-sample-bundle.json"
SNOMED = "http://snomed.info/sct"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
FHIR_JSON = {"content-type": "application/fhir+json"}


def sample_bundle(**changes: Any) -> dict[str, Any]:
    """docs/fhir-sample-bundle.json; `mrn=`, `request_id=` give another patient or ServiceRequest."""
    bundle = copy.deepcopy(json.loads(SAMPLE.read_text()))
    if "mrn" in changes:
        bundle["entry"][0]["resource"]["identifier"][0]["value"] = changes["mrn"]
    if "request_id" in changes:
        bundle["entry"][1]["resource"]["identifier"][0]["value"] = changes["request_id"]
    return bundle


def setting(entry: int, path: str, value: Any):  # type: ignore[no-untyped-def]
    """A change to a Bundle: `path` (dots, list indexes as digits) of entry's resource set to value."""
    def change(bundle: dict[str, Any]) -> None:
        target = bundle["entry"][entry]["resource"]
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(leaf) if leaf.isdigit() else leaf] = value
    return change


def parses(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource validates as FHIR R4 with both libraries (each raises on an unknown or
    ill-typed element); returned unchanged for chaining."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    FHIRElementFactory.instantiate(resource["resourceType"], resource)
    return resource


def codings(concept: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in (concept or {}).get("coding", [])}


def check_task(task: dict[str, Any]) -> dict[str, Any]:
    """The guide's rules for an SDOHCC Task For Referral Management, on a Task we serve."""
    parses(task)
    assert task["intent"] == "order", "intent is fixed to order"
    assert codings(task["code"]) == {("http://hl7.org/fhir/CodeSystem/task-code", "fulfill")}
    assert task["status"] not in ("ready", "received"), "the guide's value set drops ready and received"
    assert task["status"] in {"requested", "accepted", "rejected", "in-progress", "on-hold", "completed",
                              "failed", "cancelled"}
    assert task["focus"]["reference"].startswith("ServiceRequest/"), "focus: the ServiceRequest"
    assert task["for"]["reference"].startswith("Patient/")
    assert task["authoredOn"] and task["requester"]["reference"].startswith("Organization/")
    assert task["owner"]["reference"].startswith("Organization/")
    if "statusReason" in task:
        assert task["statusReason"]["text"], "statusReason.text is required when statusReason is present"
    if task["status"] in ("rejected", "cancelled", "on-hold", "failed"):
        assert task.get("statusReason", {}).get("text"), f"a {task['status']} Task says why"
    for output in task.get("output", []):
        assert codings(output["type"]) == {(SDOHCC, "resulting-activity")}, "output slice resulting-activity"
        assert output["valueReference"]["reference"].startswith("Procedure/")
    return task


def check_procedure(procedure: dict[str, Any]) -> dict[str, Any]:
    """The guide's SDOHCC Procedure for one delivery: provision of food, completed, when; nobody's name."""
    parses(procedure)
    assert procedure["status"] == "completed"
    assert (SNOMED, "710925007") in codings(procedure["code"])
    assert {(SNOMED, "410606002"), (SDOHCC, "food-insecurity")} <= codings(procedure["category"])
    assert procedure["performedDateTime"]
    assert "performer" not in procedure and "note" not in procedure, "no driver identity, no photo or note"
    return procedure


def check_service_request(request: dict[str, Any]) -> dict[str, Any]:
    parses(request)
    assert (SNOMED, "710925007") in codings(request["code"])
    assert any((SNOMED, "410606002") in codings(c) or (SDOHCC, "food-insecurity") in codings(c)
               for c in request["category"])
    return request
