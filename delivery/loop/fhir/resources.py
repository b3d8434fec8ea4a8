"""Our records as FHIR R4 JSON (SDOH Clinical Care shapes): Task, ServiceRequest, Procedure,
HealthcareService, CapabilityStatement, OperationOutcome and Bundles. Plain functions, no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

from delivery.loop.fhir import codes
from delivery.loop.fhir.task_status import Delivery, TaskState
from delivery.models import FhirTask, Organization, Referral
from delivery.program.waitlist import ProgramStatus

Json = dict[str, Any]
FHIR_JSON = "application/fhir+json"
PRIORITY = {0: "routine", 1: "urgent", 2: "asap"}
SOCIAL_CARE_FOOD = [codes.coding(codes.SNOMED, codes.SOCIAL_SERVICE_PROCEDURE, "Social service procedure"),
                    codes.coding(codes.SDOHCC_CODES, codes.FOOD_INSECURITY, "Food Insecurity")]
PROVISION_OF_FOOD = codes.coding(codes.SNOMED, codes.PROVISION_OF_FOOD, "Provision of food")


def instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def organization_ref(organization: Organization) -> Json:
    return {"reference": f"Organization/{organization.id}", "display": organization.name}


def task(row: FhirTask, referral: Referral, state: TaskState, *, clinic: Organization,
         food_bank: Organization, base_url: str) -> Json:
    """The SDOHCC Task For Referral Management for one referral."""
    resource: Json = {
        "resourceType": "Task", "id": str(row.id),
        "meta": {"profile": [codes.TASK_PROFILE],
                 "lastUpdated": instant(state.last_updated or row.created_at)},
        "identifier": [{"system": f"{base_url.rstrip('/')}/fhir/referral", "value": str(referral.id)}],
        "status": state.status, "intent": "order",
        "code": {"coding": [codes.coding(codes.TASK_CODES, "fulfill", "Fulfill the focal request")]},
        "priority": PRIORITY.get(referral.priority, "routine"),
        "focus": {"reference": f"ServiceRequest/{row.id}"},
        "for": {"reference": f"Patient/{referral.patient_id}"},
        "authoredOn": instant(row.created_at),
        "requester": organization_ref(clinic), "owner": organization_ref(food_bank),
    }
    if state.business_status is not None:
        resource["businessStatus"] = {"coding": [codes.coding(
            codes.business_status_system(base_url), state.business_status,
            codes.BUSINESS_STATUS_DISPLAY[state.business_status])]}
    if state.reason:
        resource["statusReason"] = {"text": state.reason}
    if state.deliveries:
        resource["output"] = [{"type": {"coding": [codes.coding(codes.SDOHCC_CODES, "resulting-activity",
                                                                  "Resulting Activity")]},
                               "valueReference": {"reference": f"Procedure/{d.stop_id}"}}
                              for d in state.deliveries]
    return resource


def service_request(row: FhirTask, referral: Referral) -> Json:
    """The clinic's ServiceRequest as it sent it, under our id and pointing at our Patient."""
    subject = {"reference": f"Patient/{referral.patient_id}"}
    return {**row.service_request, "id": str(row.id), "subject": subject}


def procedure(delivery: Delivery, row: FhirTask, referral: Referral) -> Json:
    """One delivery as an SDOHCC Procedure: what was done and when; never who drove or a photo."""
    return {
        "resourceType": "Procedure", "id": str(delivery.stop_id),
        "meta": {"profile": [codes.PROCEDURE_PROFILE], "lastUpdated": instant(delivery.at)},
        "status": "completed",
        "category": {"coding": SOCIAL_CARE_FOOD},
        "code": {"coding": [PROVISION_OF_FOOD],
                 "text": f"Home-delivered produce box ({delivery.boxes} of them)"},
        "subject": {"reference": f"Patient/{referral.patient_id}"},
        "basedOn": [{"reference": f"ServiceRequest/{row.id}"}],
        "performedDateTime": instant(delivery.at),
    }


def capacity(status: ProgramStatus, *, rejects_when_full: bool = False) -> tuple[str, str]:
    """The guide's capacity-status code and a note a referrer can act on."""
    weeks = status.expected_wait_weeks
    wait = f"expected wait about {weeks} week{'s' if weeks != 1 else ''}" if weeks else "wait not known yet"
    if status.waiting:
        note = f"About {status.waiting} waiting; {wait}."
        return ("no-capacity", note) if rejects_when_full else ("waitlist", note)
    if status.boxes_free_next_day is not None and status.boxes_free_next_day <= 0:
        return "waitlist", f"Full on the next delivery day; new referrals wait, {wait}."
    free = ("" if status.boxes_free_next_day is None
            else f" {status.boxes_free_next_day} boxes free on the next delivery day.")
    return "capacity", ("Taking new referrals." + free).strip()


def healthcare_service(food_bank: Organization, status: ProgramStatus) -> Json:
    """The program, with the guide's capacity-status extension computed from live numbers (no-capacity
    rather than waitlist for a program that answers waitlisted referrals as rejected)."""
    code, note = capacity(status, rejects_when_full=food_bank.waitlisted_is_rejected)
    return {
        "resourceType": "HealthcareService", "id": str(food_bank.id), "active": True,
        "providedBy": organization_ref(food_bank),
        "name": f"{food_bank.name}: home-delivered produce boxes",
        "category": [{"coding": SOCIAL_CARE_FOOD}],
        "type": [{"coding": [PROVISION_OF_FOOD], "text": "home-delivered produce box"}],
        "extension": [{"url": codes.CAPACITY_EXTENSION, "extension": [
            {"url": "capacityStatus",
             "valueCodeableConcept": {"coding": [codes.coding(codes.SDOHCC_CODES, code)]}},
            {"url": "capacityNotes", "valueString": note}]}],
    }


def business_status_code_system(base_url: str) -> Json:
    """Our Task.businessStatus codes, served where the CapabilityStatement says."""
    return {
        "resourceType": "CodeSystem", "id": "delivery-business-status",
        "url": codes.business_status_system(base_url), "name": "DeliveryBusinessStatus",
        "title": "Produce-box delivery: Task business status", "status": "active", "content": "complete",
        "concept": [{"code": c.value, "display": codes.BUSINESS_STATUS_DISPLAY[c]}
                    for c in codes.BusinessStatus],
    }


def operation_outcome(message: str, *, code: str = "invalid", expression: str | None = None,
                      severity: str = "error") -> Json:
    issue: Json = {"severity": severity, "code": code, "diagnostics": message}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def searchset(matches: list[Json], included: list[Json], *, total: int, self_url: str,
              next_url: str | None) -> Json:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    entries = [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": mode}}
               for mode, found in (("match", matches), ("include", included)) for r in found]
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
    return bundle | {"entry": entries} if entries else bundle  # FHIR arrays are never empty


def capability_statement(base_url: str) -> Json:
    """Exactly what this server supports: these resources, interactions and search parameters, and
    SMART Backend Services (or a clinic user's bearer token)."""
    base = base_url.rstrip("/")

    def resource(kind: str, interactions: list[str], search: list[tuple[str, str]] | None = None,
                 **more: Any) -> Json:
        found: Json = {"type": kind, "interaction": [{"code": i} for i in interactions]}
        if search:
            found["searchParam"] = [{"name": n, "type": t} for n, t in search]
        return found | more

    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-01",
        "kind": "instance", "fhirVersion": "4.0.1", "format": ["json"],
        "software": {"name": "Produce-box delivery"},
        "implementation": {"description": "Home-delivered produce boxes", "url": f"{base}/fhir"},
        "rest": [{
            "mode": "server",
            "documentation": (f"Task.businessStatus codes: {codes.business_status_system(base)}. A Bundle is "
                              "POSTed to /fhir/Bundle (a transaction). The requester may PATCH or PUT a Task "
                              "to cancelled; every other status is set by the food bank."),
            "security": {
                "service": [{"coding": [codes.coding(
                    "http://terminology.hl7.org/CodeSystem/restful-security-service", "SMART-on-FHIR")]}],
                "description": "SMART Backend Services (private_key_jwt, RS384 or ES384), system/ scopes; "
                               "or a clinic user's bearer token, limited to that clinic.",
                "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                               "extension": [{"url": "token", "valueUri": f"{base}/fhir/auth/token"}]}],
            },
            "resource": [
                resource("Bundle", ["create"], documentation=(
                    "transaction only: a referral. Optional: SNAP enrollment as an SDOHCC Program Enrollment "
                    f"Status Observation (category food-insecurity); other needs as an Observation coded "
                    f"{codes.LOCAL_CODES}#{codes.NEEDS_QUESTION} (SDOH category codes, words in text); "
                    f"consent to texts as a Consent provision coded {codes.TEXT_CONSENT}")),
                resource("Task", ["read", "search-type", "update", "patch"],
                         [("_id", "token"), ("focus", "reference"), ("owner", "reference"),
                          ("patient", "reference"), ("status", "token"), ("_lastUpdated", "date")],
                         searchInclude=["Task:focus"], supportedProfile=[codes.TASK_PROFILE]),
                resource("ServiceRequest", ["read"]),
                resource("Procedure", ["read"], supportedProfile=[codes.PROCEDURE_PROFILE]),
                resource("HealthcareService", ["read", "search-type"]),
                resource("CodeSystem", ["read"]),
            ],
        }],
    }
