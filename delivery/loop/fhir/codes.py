"""The code systems and fixed values of the SDOH Clinical Care guide (3.0.0) that this server speaks."""

from __future__ import annotations

from enum import StrEnum

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
IDENTIFIER_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0203"
TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
CAPACITY_EXTENSION = ("http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
                      "SDOHCC-ExtensionHealthcareServiceCapacityStatus")
GEOLOCATION_EXTENSION = "http://hl7.org/fhir/StructureDefinition/geolocation"
TASK_PROFILE = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
PROCEDURE_PROFILE = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Procedure"

SOCIAL_SERVICE_PROCEDURE = "410606002"  # SNOMED category of a social care ServiceRequest / Procedure
FOOD_INSECURITY = "food-insecurity"  # the guide's own category code
PROVISION_OF_FOOD = "710925007"  # SNOMED: what the ServiceRequest asks for and each Procedure did

# The screening, by LOINC question code.
HUNGER_WORRIED = "88122-7"
HUNGER_RAN_OUT = "88123-5"
HUNGER_RISK = "88124-3"  # derived by the clinic from the two above: read, never needed
TRANSPORTATION = "93030-5"
MOBILITY = "69859-7"  # serious difficulty walking or climbing stairs
ERRANDS = "69861-3"  # difficulty doing errands alone
HUNGER_ANSWERS = {"LA28397-0": "often", "LA6729-3": "sometimes", "LA28398-8": "never"}
YES_NO = {"LA33-6": True, "LA32-8": False}

# SNAP/CalFresh enrollment: the guide's SDOHCC Observation Program Enrollment Status (category
# program-enrollment, value enrolled | not-enrolled | not-enrolled-on-waitlist). The profile codes the
# program from a VSAC value set we cannot check offline, so the food program is told by its SDOH
# category food-insecurity instead (Observation.code.text may name SNAP or CalFresh).
PROGRAM_ENROLLMENT = "program-enrollment"
ENROLLMENT_ANSWERS = {"enrolled": "yes", "not-enrolled": "no", "not-enrolled-on-waitlist": "no"}

# Our own codes where neither LOINC nor the guide has one: the "Other than medical care, what do you
# need to be more healthy?" question, and the patient's consent to texts about deliveries.
LOCAL_CODES = "urn:produce-box-delivery:codes"
NEEDS_QUESTION = "needs-besides-medical-care"
TEXT_CONSENT = "delivery-texts"
# The quick picks, as the guide's SDOH category codes (SDOHCC temporary codes).
NEED_CATEGORIES = {"utility-insecurity": "rent_utilities", "housing-instability": "rent_utilities",
                   "financial-insecurity": "rent_utilities", "inadequate-housing": "fridge_stove",
                   "transportation-insecurity": "ride", "food-insecurity": "food_benefits",
                   "social-connection": "someone_to_talk_to", "sdoh-category-unspecified": "other"}

# Task.status values the performer may set: the guide's value set drops `ready` and `received`.
PERFORMER_STATUSES = frozenset({"accepted", "rejected", "in-progress", "on-hold", "completed", "failed",
                                "cancelled"})
FORBIDDEN_STATUSES = frozenset({"ready", "received"})


class BusinessStatus(StrEnum):
    """Our own small code system for Task.businessStatus (the guide leaves it open)."""

    scheduled = "scheduled"
    out_for_delivery = "out-for-delivery"
    delivered = "delivered"
    delivered_left_at_door = "delivered-left-at-door"
    attempt_not_home = "attempt-not-home"
    attempt_bad_address = "attempt-bad-address"
    attempt_refused = "attempt-refused"
    attempt_other = "attempt-other"  # unsafe to deliver, or another reason the driver wrote down
    rescheduled = "rescheduled"
    paused = "paused"
    waitlisted = "waitlisted"


BUSINESS_STATUS_DISPLAY = {
    BusinessStatus.scheduled: "Delivery scheduled",
    BusinessStatus.out_for_delivery: "Out for delivery",
    BusinessStatus.delivered: "Delivered",
    BusinessStatus.delivered_left_at_door: "Delivered, left at the door",
    BusinessStatus.attempt_not_home: "Attempted: nobody home",
    BusinessStatus.attempt_bad_address: "Attempted: address not found",
    BusinessStatus.attempt_refused: "Attempted: refused",
    BusinessStatus.attempt_other: "Attempted: not delivered",
    BusinessStatus.rescheduled: "Rescheduled",
    BusinessStatus.paused: "Deliveries paused",
    BusinessStatus.waitlisted: "On the waitlist",
}


def business_status_system(base_url: str) -> str:
    """Where our code system is published (named in the CapabilityStatement)."""
    return f"{base_url.rstrip('/')}/fhir/CodeSystem/delivery-business-status"


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    found = {"system": system, "code": code}
    return found | {"display": display} if display else found


def has_coding(concept: dict | None, system: str, code: str) -> bool:
    """Whether a CodeableConcept (as JSON) carries this system and code."""
    return any(c.get("system") == system and c.get("code") == code for c in (concept or {}).get("coding", []))
