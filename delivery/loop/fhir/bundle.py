"""A clinic's referral Bundle (FHIR R4 transaction, SDOH Clinical Care) read into a `ReferralIn`.

The Bundle is first validated as FHIR by `fhir.resources` (its R4B models match R4 for every
resource read here); then the guide's rules and our own needs are checked, each refusal naming the
entry and element at fault as a FHIRPath expression. Nothing here touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pydantic
from fhir.resources.R4B import get_fhir_model_class

from delivery.loop.fhir import codes
from delivery.referrals.schemas import ReferralIn

ACCEPTED_TYPES = ("Patient", "ServiceRequest", "Observation", "QuestionnaireResponse", "Consent")
PRIORITIES = {"routine": 0, "urgent": 1, "asap": 2, "stat": 2}
# The FHIR element each field of PatientIn comes from, to name it when our own checks refuse it.
ELEMENTS = {
    "mrn": "identifier", "given_name": "name.given", "family_name": "name.family",
    "birth_date": "birthDate", "phone": "telecom", "language": "communication.language",
    "address": "address", "line1": "address.line", "unit": "address.line", "city": "address.city",
    "state": "address.state", "postal_code": "address.postalCode", "lat": "address.extension",
    "lon": "address.extension", "note": "note", "priority": "priority",
}


class BundleError(ValueError):
    """A Bundle we cannot take; `expression` is the FHIRPath of the element at fault."""

    def __init__(self, message: str, expression: str = "Bundle", code: str = "invalid") -> None:
        super().__init__(message)
        self.expression = expression
        self.code = code


@dataclass(frozen=True)
class ReferralBundle:
    """What a Bundle asks for: the referral, and the ServiceRequest's identity and content."""

    referral: ReferralIn
    request_identifier: str  # system|value of the ServiceRequest: the same one again is a re-send
    service_request: dict[str, Any]  # as sent, for Task.focus
    kinds: list[str]  # each entry's resource type, in order (for the transaction-response)
    patient_entry: int
    request_entry: int


def read_bundle(raw: bytes) -> ReferralBundle:
    """Read and check a referral Bundle; raises BundleError naming what to fix."""
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise BundleError(f"The body is not JSON: {exc}.", "Bundle", "structure") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise BundleError("Send a Bundle resource (resourceType \"Bundle\").", "Bundle.resourceType",
                          "structure")
    try:
        get_fhir_model_class("Bundle").model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise BundleError(f"Not valid FHIR R4: {first['msg']}.", _path(first["loc"]), "structure") from None
    if data.get("type") != "transaction":
        raise BundleError("The Bundle must be a transaction (type \"transaction\").", "Bundle.type")

    entries = data.get("entry") or []
    kinds = [entry.get("resource", {}).get("resourceType", "") for entry in entries]
    for i, (entry, kind) in enumerate(zip(entries, kinds, strict=True)):
        if kind not in ACCEPTED_TYPES:
            raise BundleError(f"A referral Bundle holds {', '.join(ACCEPTED_TYPES)}; "
                              f"not {kind or 'nothing'}.",
                              f"Bundle.entry[{i}].resource", "not-supported")
        if (entry.get("request") or {}).get("method") not in ("POST", "PUT"):
            raise BundleError("Each entry is created: request.method POST.",
                              f"Bundle.entry[{i}].request.method")
    patient_at = _one(kinds, "Patient")
    request_at = _one(kinds, "ServiceRequest")
    patient = entries[patient_at]["resource"]
    request = entries[request_at]["resource"]
    patient_refs = {entries[patient_at].get("fullUrl"),
                    f"Patient/{patient['id']}" if "id" in patient else None} - {None}

    request_identifier = _check_request(request, request_at, patient_refs)
    answers = _screening_answers(entries, kinds)
    consent_at = _check_consent(entries, kinds)
    body = {
        "patient": _patient(patient, patient_at) | _text_consent(entries[consent_at]["resource"], consent_at),
        "screening": _screening(answers) | _snap(entries, kinds),
        "priority": PRIORITIES.get(request.get("priority", "routine"), 0),
    }
    needs_at = _find_needs(entries, kinds)
    if needs_at is not None:
        body["needs"] = _needs(entries[needs_at]["resource"], needs_at)
    notes = [n.get("text", "") for n in request.get("note") or [] if n.get("text")]
    if notes:
        body["note"] = "\n".join(notes)[:1000]
    try:
        referral = msgspec.convert(body, ReferralIn)
    except msgspec.ValidationError as exc:
        raise _named(exc, patient_at, request_at, needs_at) from None
    stored = {key: request[key] for key in ("identifier", "status", "intent", "category", "code", "priority",
                                             "authoredOn", "requester", "note", "occurrenceDateTime",
                                             "occurrencePeriod") if key in request}
    return ReferralBundle(referral=referral, request_identifier=request_identifier,
                          service_request={"resourceType": "ServiceRequest", **stored}, kinds=kinds,
                          patient_entry=patient_at, request_entry=request_at)


def _path(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as FHIRPath: ('entry', 1, 'resource', 'code') -> Bundle.entry[1].resource.code."""
    path = "Bundle"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _one(kinds: list[str], kind: str) -> int:
    found = [i for i, k in enumerate(kinds) if k == kind]
    if len(found) != 1:
        raise BundleError(f"A referral Bundle holds exactly one {kind}; this one has {len(found)}.",
                          "Bundle.entry")
    return found[0]


def _check_request(request: dict[str, Any], at: int, patient_refs: set[str]) -> str:
    """The guide's rules for the SDOHCC ServiceRequest we fulfil; returns its identifier."""
    where = f"Bundle.entry[{at}].resource"
    identifiers = [i for i in request.get("identifier") or [] if i.get("system") and i.get("value")]
    if not identifiers:
        raise BundleError("Give the ServiceRequest an identifier (system and value): a re-sent Bundle "
                          "is recognised by it.", f"{where}.identifier", "required")
    if request.get("status") != "active" or request.get("intent") != "order":
        raise BundleError("A referral's ServiceRequest has status \"active\" and intent \"order\".",
                          f"{where}.status")
    if not codes.has_coding(request.get("code"), codes.SNOMED, codes.PROVISION_OF_FOOD):
        raise BundleError(f"This program fulfils SNOMED {codes.PROVISION_OF_FOOD} \"Provision of food\" "
                          "(a home-delivered produce box); put it in ServiceRequest.code.", f"{where}.code",
                          "code-invalid")
    categories = request.get("category") or []
    if not any(codes.has_coding(c, codes.SNOMED, codes.SOCIAL_SERVICE_PROCEDURE)
               or codes.has_coding(c, codes.SDOHCC_CODES, codes.FOOD_INSECURITY) for c in categories):
        raise BundleError(f"Categorise the ServiceRequest as SNOMED {codes.SOCIAL_SERVICE_PROCEDURE} or the "
                          f"guide's {codes.FOOD_INSECURITY}.", f"{where}.category", "code-invalid")
    if (request.get("subject") or {}).get("reference") not in patient_refs:
        raise BundleError("ServiceRequest.subject must reference the Patient entry (its fullUrl).",
                          f"{where}.subject")
    first = identifiers[0]
    return f"{first['system']}|{first['value']}"[:400]


def _patient(patient: dict[str, Any], at: int) -> dict[str, Any]:
    where = f"Bundle.entry[{at}].resource"
    identifiers = patient.get("identifier") or []
    mrns = [i for i in identifiers if codes.has_coding(i.get("type"), codes.IDENTIFIER_TYPES, "MR")]
    identifier = (mrns or identifiers or [{}])[0]
    if not identifier.get("value"):
        raise BundleError("Give the Patient the clinic's identifier (an MR identifier).",
                          f"{where}.identifier", "required")
    name = (patient.get("name") or [{}])[0]
    address = (patient.get("address") or [{}])[0]
    lines = address.get("line") or []
    found: dict[str, Any] = {
        "mrn": identifier["value"], "given_name": " ".join(name.get("given") or []),
        "family_name": name.get("family", ""), "birth_date": patient.get("birthDate"),
        "address": {"line1": lines[0] if lines else "", "city": address.get("city", ""),
                    "state": address.get("state", ""), "postal_code": address.get("postalCode", "")},
    }
    if len(lines) > 1:
        found["address"]["unit"] = ", ".join(lines[1:])
    point = {e["url"]: e.get("valueDecimal") for ext in address.get("extension") or []
             if ext.get("url") == codes.GEOLOCATION_EXTENSION for e in ext.get("extension") or []}
    if point.get("latitude") is not None and point.get("longitude") is not None:
        found["address"] |= {"lat": point["latitude"], "lon": point["longitude"]}
    phones = [t["value"] for t in patient.get("telecom") or []
              if t.get("system") == "phone" and t.get("value")]
    if phones:
        found["phone"] = phones[0]
    languages = [c.get("code") for comm in patient.get("communication") or []
                 for c in (comm.get("language") or {}).get("coding", []) if c.get("code")]
    if languages:
        found["language"] = languages[0]
    return found


@dataclass(frozen=True)
class Answer:
    value: object  # a LOINC answer code or a boolean
    expression: str


def _screening_answers(entries: list[dict[str, Any]], kinds: list[str]) -> dict[str, Answer]:
    """The screening answers by LOINC question code, from Observations or a QuestionnaireResponse."""
    answers: dict[str, Answer] = {}
    for i, (entry, kind) in enumerate(zip(entries, kinds, strict=True)):
        resource = entry["resource"]
        if kind == "Observation":
            questions = [c["code"] for c in (resource.get("code") or {}).get("coding", [])
                         if c.get("system") == codes.LOINC and c.get("code")]
            value: object = resource.get("valueBoolean")
            loinc = [c["code"] for c in (resource.get("valueCodeableConcept") or {}).get("coding", [])
                     if c.get("system") == codes.LOINC]
            value = loinc[0] if loinc else value
            for question in questions:
                answers[question] = Answer(value, f"Bundle.entry[{i}].resource.value")
        elif kind == "QuestionnaireResponse":
            _items(resource.get("item") or [], f"Bundle.entry[{i}].resource", answers)
    return answers


def _items(items: list[dict[str, Any]], where: str, answers: dict[str, Answer]) -> None:
    for n, item in enumerate(items):
        path = f"{where}.item[{n}]"
        question = item.get("linkId", "").lstrip("/")
        for answer in item.get("answer") or []:
            value = answer.get("valueBoolean")
            if "valueCoding" in answer:
                value = answer["valueCoding"].get("code")
            answers[question] = Answer(value, f"{path}.answer")
            _items(answer.get("item") or [], path, answers)
        _items(item.get("item") or [], path, answers)


def _screening(answers: dict[str, Answer]) -> dict[str, Any]:
    def pick(question: str, choices: dict[str, Any], field: str, required: bool) -> dict[str, Any]:
        answer = answers.get(question)
        if answer is None:
            if required:
                raise BundleError(f"The screening needs LOINC {question} ({field}), as an Observation or a "
                                  "QuestionnaireResponse item.", "Bundle.entry", "required")
            return {}
        if isinstance(answer.value, bool) and choices is codes.YES_NO:
            return {field: answer.value}
        if not isinstance(answer.value, str) or answer.value not in choices:
            raise BundleError(f"LOINC {question} ({field}) takes one of {', '.join(choices)}.",
                              answer.expression, "code-invalid")
        return {field: choices[answer.value]}

    return (pick(codes.HUNGER_WORRIED, codes.HUNGER_ANSWERS, "hunger_worried", True)
            | pick(codes.HUNGER_RAN_OUT, codes.HUNGER_ANSWERS, "hunger_ran_out", True)
            | pick(codes.TRANSPORTATION, codes.YES_NO, "transportation_barrier", True)
            | ({"mobility_barrier": False} | pick(codes.MOBILITY, codes.YES_NO, "mobility_barrier", False))
            | pick(codes.ERRANDS, codes.YES_NO, "errands_barrier", False))


def _check_consent(entries: list[dict[str, Any]], kinds: list[str]) -> int:
    """The Consent entry, which must be active: home delivery shares the patient's details."""
    for i, kind in enumerate(kinds):
        if kind == "Consent":
            if entries[i]["resource"].get("status") != "active":
                raise BundleError("The patient's Consent must be active to share their name, address and "
                                  "phone with the food bank and its drivers.",
                                  f"Bundle.entry[{i}].resource.status")
            return i
    raise BundleError("Add the patient's Consent (status active): home delivery shares their name, address "
                      "and phone with the food bank and its drivers.", "Bundle.entry", "required")


def _text_consent(consent: dict[str, Any], at: int) -> dict[str, bool]:
    """Consent to texts about deliveries: a nested provision of the patient's Consent coded
    delivery-texts, permit or deny (the SDOHCC Consent allows nested provisions; no standard code
    names texting). Absent: nothing said, so the API's default holds."""
    for n, provision in enumerate((consent.get("provision") or {}).get("provision") or []):
        concepts = provision.get("code") or []
        if any(codes.has_coding(c, codes.LOCAL_CODES, codes.TEXT_CONSENT) for c in concepts):
            if provision.get("type") not in ("permit", "deny"):
                raise BundleError("Say whether the patient agrees to texts about deliveries: provision.type "
                                  "permit or deny.",
                                  f"Bundle.entry[{at}].resource.provision.provision[{n}].type", "required")
            return {"consent_to_text": provision["type"] == "permit"}
    return {}


def _categories(resource: dict[str, Any]) -> set[str]:
    return {c.get("code") for concept in resource.get("category") or []
            for c in concept.get("coding") or [] if c.get("system") == codes.SDOHCC_CODES}


def _snap(entries: list[dict[str, Any]], kinds: list[str]) -> dict[str, str]:
    """SNAP/CalFresh enrollment from the guide's Program Enrollment Status Observation for a
    food-insecurity program; absent: unknown (the API's default)."""
    for i, kind in enumerate(kinds):
        resource = entries[i]["resource"]
        wanted = {codes.PROGRAM_ENROLLMENT, codes.FOOD_INSECURITY}
        if kind != "Observation" or not wanted <= _categories(resource):
            continue
        found = [c.get("code") for c in (resource.get("valueCodeableConcept") or {}).get("coding") or []
                 if c.get("system") == codes.SDOHCC_CODES]
        if not found or found[0] not in codes.ENROLLMENT_ANSWERS:
            raise BundleError("SNAP/CalFresh enrollment takes the guide's enrolled, not-enrolled or "
                              f"not-enrolled-on-waitlist ({codes.SDOHCC_CODES}).",
                              f"Bundle.entry[{i}].resource.value", "code-invalid")
        return {"snap_enrolled": codes.ENROLLMENT_ANSWERS[found[0]]}
    return {}


def _find_needs(entries: list[dict[str, Any]], kinds: list[str]) -> int | None:
    found = [i for i, kind in enumerate(kinds) if kind == "Observation"
             and codes.has_coding(entries[i]["resource"].get("code"), codes.LOCAL_CODES,
                                  codes.NEEDS_QUESTION)]
    if len(found) > 1:
        raise BundleError("Send the patient's answer about other needs once (one Observation).",
                          f"Bundle.entry[{found[1]}].resource.code")
    return found[0] if found else None


def _needs(observation: dict[str, Any], at: int) -> dict[str, Any]:
    """"Other than medical care, what do you need to be more healthy?": the quick picks as the
    guide's SDOH category codes in valueCodeableConcept, the patient's words in its text (or in
    valueString when nothing was picked)."""
    if "valueString" in observation:
        return {"words": observation["valueString"]}
    value = observation.get("valueCodeableConcept")
    if value is None:
        raise BundleError("Give the patient's answer in valueCodeableConcept (quick picks as SDOH category "
                          "codes, their words in text) or valueString.", f"Bundle.entry[{at}].resource.value",
                          "required")
    picks = []
    for coding in value.get("coding") or []:
        known = coding.get("system") == codes.SDOHCC_CODES
        pick = codes.NEED_CATEGORIES.get(coding.get("code", "")) if known else None
        if pick is None:
            raise BundleError(f"A need is one of the guide's SDOH categories ({codes.SDOHCC_CODES}): "
                              f"{', '.join(codes.NEED_CATEGORIES)}.", f"Bundle.entry[{at}].resource.value",
                              "code-invalid")
        picks.append(pick)
    # Several categories share one pick (utilities, housing, money: rent_utilities): once each.
    return {"picks": list(dict.fromkeys(picks))} | ({"words": value["text"]} if value.get("text") else {})


def _named(exc: msgspec.ValidationError, patient_at: int, request_at: int,
           needs_at: int | None) -> BundleError:
    """msgspec's refusal ("… - at `$.patient.address.postal_code`") as the FHIR element at fault."""
    message, _, at = str(exc).partition(" - at `$.")
    parts = at.rstrip("`").split(".") if at else []
    if parts and parts[0] == "patient":
        element = ELEMENTS.get(parts[-1], ELEMENTS.get(parts[1], "")) if len(parts) > 1 else ""
        expression = f"Bundle.entry[{patient_at}].resource" + (f".{element}" if element else "")
    elif parts and parts[0] in ("note", "priority"):
        expression = f"Bundle.entry[{request_at}].resource.{parts[0]}"
    elif parts and parts[0] == "needs" and needs_at is not None:
        expression = f"Bundle.entry[{needs_at}].resource.value"
    else:
        expression = "Bundle"
    return BundleError(f"{message}.", expression)
