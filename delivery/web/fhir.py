"""FHIR R4 endpoints after the SDOH Clinical Care guide (`/fhir`): FHIR JSON in and out
(`application/fhir+json`), every error an OperationOutcome. Each handler translates HTTP to one call
of `delivery.loop.fhir` and back. A caller sees only its own clinic's Tasks; every read of patient
data leaves an audit row."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body, RawBody

from delivery.loop.fhir import codes, direct, scopes, smart
from delivery.loop.fhir import resources as fhir
from delivery.loop.fhir.bundle import BundleError, read_bundle
from delivery.models import Organization, OrganizationKind, Referral, Role
from delivery.platform import audit
from delivery.platform.auth import Principal
from delivery.platform.errors import FieldError
from delivery.program import waitlist
from delivery.web import throttle
from delivery.web.audit import audit_context
from delivery.web.render import DB, Config, PathId, clock_of, principal, program_today

CLINIC = {"roles": (Role.clinic_staff,)}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # OAuth token responses
FAILED_TOKEN = "failed token request"
BODIES = ("application/fhir+json", "application/json")  # what a raw-body handler reads (R4.4)
REFER = {**CLINIC, "scope": (("Patient", "c"), ("ServiceRequest", "c")),  # a Bundle writes both
         "media_types": BODIES}
ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
               409: "conflict", 413: "too-costly", 415: "not-supported", 422: "processable",
               429: "throttled"}
PAGE_SIZE, MAX_PAGE = 50, 200
SEARCH_PARAMS = frozenset({"_id", "focus", "owner", "patient", "status", "_lastUpdated", "_include", "_count",
                           "_offset", "_format"})


def fhir_response(resource: dict[str, Any], status_code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(msgspec.json.encode(resource), status_code=status_code, media_type=fhir.FHIR_JSON,
                    headers=headers)


def outcome_response(request: Request, exc: Exception) -> Response:
    """Every error under /fhir as an OperationOutcome (which element, what to fix)."""
    if isinstance(exc, BundleError):
        status = 409 if exc.code == "duplicate" else 422 if exc.code != "structure" else 400
        outcome = fhir.operation_outcome(str(exc), code=exc.code, expression=exc.expression)
        return fhir_response(outcome, status)
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "") or str(exc) or "The server could not answer."
    extra = getattr(exc, "extra", None)
    if isinstance(extra, list):  # Litestar's validation: which parameter, what is wrong with it
        for e in (e for e in extra if isinstance(e, dict)):
            source = str(e.get("source", "")).rsplit(".", 1)[-1].lower()  # ParamType.PATH -> path
            detail += f"; {source} parameter {e.get('key')}: {e.get('message')}"
    code = ISSUE_CODES.get(status, "exception")
    headers = {**(getattr(exc, "headers", None) or {}),  # Retry-After of a 429
               **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return fhir_response(fhir.operation_outcome(detail, code=code), status, headers or None)


def scope_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """SMART scopes per route (R3.8): a system client's token carries only what it was granted."""
    who: Principal | None = connection.scope.get("user")
    needed = handler.opt.get("scope")
    if who is None or needed is None or who.scopes is None:
        return  # public routes; a person's bearer token is limited by role and clinic instead
    for resource_type, permission in needed:
        if not scopes.allows(who.scopes, resource_type, permission):
            raise PermissionDeniedException(
                f"This token's scopes do not allow system/{resource_type}.{permission}.")


def clinics_of(request: Request) -> list[int]:
    return principal(request).organizations_with(Role.clinic_staff)


def token_url(settings: Config) -> str:
    return f"{settings.base_url.rstrip('/')}/fhir/auth/token"


def audit_read(request: Request, resource: str, *read: tuple[object, int | None]) -> None:
    """Reads of patient data, (resource id, patient id) each, audited after the read."""
    audit.record_reads(request.app.state.database, audit_context(request), f"fhir:{resource}", read)


class FhirController(Controller):
    path = "/fhir"
    include_in_schema = False  # described by its CapabilityStatement (GET /fhir/metadata), not OpenAPI
    guards = [scope_guard]
    exception_handlers = {HTTPException: outcome_response, NotAuthorizedException: outcome_response,
                          PermissionDeniedException: outcome_response, BundleError: outcome_response,
                          FieldError: outcome_response}

    @get("/metadata", opt={"public": True}, sync_to_thread=False)
    def metadata(self, settings: Config) -> Response:
        return fhir_response(fhir.capability_statement(settings.base_url))

    @get("/.well-known/smart-configuration", opt={"public": True}, sync_to_thread=False)
    def smart_configuration(self, settings: Config) -> Response:
        """SMART discovery: where to get a token, and how to sign for it."""
        return Response({
            "token_endpoint": token_url(settings), "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": smart.ALGORITHMS,
            "scopes_supported": list(smart.SCOPES_SUPPORTED),
            "capabilities": ["client-confidential-asymmetric"]})

    @post("/auth/token", opt={"public": True, "throttle": "login"}, sync_to_thread=True, status_code=200)
    def issue_token(self, request: Request, db: DB, settings: Config, data: Annotated[dict[str, str], Body(
            media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
        """SMART Backend Services: a signed client assertion in, a five-minute access token out. Failed
        requests count against the client they name, as failed sign-ins do against an account (R6.1)."""
        client_id = smart.claimed_client(data)
        if client_id:
            throttle.per_account(request, FAILED_TOKEN, client_id, count=False)
        try:
            issued = smart.issue_token(db, data, token_url=token_url(settings), now=settings.clock.now())
        except smart.TokenError as exc:
            db.rollback()
            if client_id:
                throttle.per_account(request, FAILED_TOKEN, client_id)
            return Response({"error": exc.error, "error_description": str(exc)}, status_code=400,
                            headers=NO_STORE)
        db.commit()
        return Response(dataclasses.asdict(issued), headers=NO_STORE)

    @get("/CodeSystem/delivery-business-status", opt={"public": True}, sync_to_thread=False)
    def business_status_codes(self, settings: Config) -> Response:
        return fhir_response(fhir.business_status_code_system(settings.base_url))

    @post("/Bundle", opt=REFER, sync_to_thread=True)
    def create_referral(self, request: Request, db: DB, settings: Config, body: RawBody) -> Response:
        """A transaction Bundle refers a patient; the answer is the transaction-response with the Task."""
        return _refer(request, db, settings, body)

    @post("/", opt=REFER, sync_to_thread=True)
    def transaction(self, request: Request, db: DB, settings: Config, body: RawBody) -> Response:
        """The same, POSTed to the base as FHIR clients send a transaction."""
        return _refer(request, db, settings, body)

    @get("/Task/{task_id:int}", opt={**CLINIC, "scope": (("Task", "r"),), "phi": ("R", "fhir:Task")},
         sync_to_thread=True)
    def read_task(self, request: Request, db: DB, settings: Config, task_id: PathId) -> Response:
        task = self._task(db, request, task_id)
        audit_read(request, "Task", (task_id, task.referral.patient_id))
        return fhir_response(fhir.task(task.row, task.referral, task.state, clinic=task.clinic,
                                       food_bank=task.food_bank, base_url=settings.base_url))

    @get("/Task", opt={**CLINIC, "scope": (("Task", "s"),), "phi": ("R", "fhir:Task")}, sync_to_thread=True)
    def search_tasks(self, request: Request, db: DB, settings: Config) -> Response:
        params = request.query_params
        unknown = sorted(set(params) - SEARCH_PARAMS)
        # FHIR: a server ignores parameters it does not know, unless the client asks it to be strict;
        # the self link then shows what was applied.
        if unknown and "handling=strict" in request.headers.get("prefer", ""):
            raise HTTPException(status_code=400, detail=f"Unsupported search parameter {unknown[0]}: this "
                                f"server searches Task by {', '.join(sorted(SEARCH_PARAMS))}.")
        query = _task_query(params, clinics_of(request))
        found = direct.search(db, query, clock_of(request))
        count = _bounded(params.get("_count"), PAGE_SIZE, 0, MAX_PAGE, "_count")  # 0: the total only
        offset = _bounded(params.get("_offset"), 0, 0, 10**6, "_offset")
        page = found[offset:offset + count]
        matches = [fhir.task(t.row, t.referral, t.state, clinic=t.clinic, food_bank=t.food_bank,
                             base_url=settings.base_url) for t in page]
        included = []
        if "Task:focus" in params.getall("_include", []):
            included = [fhir.service_request(t.row, t.referral) for t in page]
        base = f"{settings.base_url}/fhir/Task"
        pairs = [(k, v) for k, v in params.multi_items() if k in SEARCH_PARAMS and k != "_offset"]
        next_url = (f"{base}?{urlencode([*pairs, ('_offset', str(offset + count))])}"
                    if count and offset + count < len(found) else None)
        audit_read(request, "Task", *((t.row.id, t.referral.patient_id) for t in page))
        return fhir_response(fhir.searchset(matches, included, total=len(found),
                                            self_url=f"{base}?{urlencode([*pairs, ('_offset', offset)])}",
                                            next_url=next_url))

    @patch("/Task/{task_id:int}", opt={**CLINIC, "scope": (("Task", "u"),)}, sync_to_thread=True)
    def patch_task(self, request: Request, db: DB, settings: Config, task_id: PathId,
                   body: RawBody) -> Response:
        """JSON Patch of status (and statusReason): the requester cancels."""
        operations = _decode(body)
        if not isinstance(operations, list) or not operations:
            raise HTTPException(status_code=400, detail="Send a JSON Patch: a list of operations.")
        wanted: dict[str, Any] = {}
        for op in operations:
            path = op.get("path") if isinstance(op, dict) else None
            if not isinstance(op, dict) or op.get("op") not in ("replace", "add") or path not in (
                    "/status", "/statusReason", "/statusReason/text"):
                raise HTTPException(status_code=422, detail="The requester may change only /status (to "
                                                            "cancelled) and /statusReason.")
            wanted[path] = op.get("value")
        reason = wanted.get("/statusReason/text") or (wanted.get("/statusReason") or {}).get("text")
        return self._cancel(request, db, settings, task_id, wanted.get("/status"), reason)

    @put("/Task/{task_id:int}", opt={**CLINIC, "scope": (("Task", "u"),), "media_types": BODIES},
         sync_to_thread=True)
    def update_task(self, request: Request, db: DB, settings: Config, task_id: PathId,
                    body: RawBody) -> Response:
        """The Task sent back with status cancelled: the requester cancels."""
        sent = _decode(body)
        if not isinstance(sent, dict) or sent.get("resourceType") != "Task" or sent.get("id") != str(task_id):
            raise HTTPException(status_code=400,
                                detail=f"Send Task {task_id} (resourceType Task, id {task_id}).")
        return self._cancel(request, db, settings, task_id, sent.get("status"),
                            (sent.get("statusReason") or {}).get("text"))

    def _cancel(self, request: Request, db: DB, settings: Config, task_id: int, status: object,
                reason: object) -> Response:
        if status != "cancelled":
            raise HTTPException(status_code=422, detail="The requester may set status to cancelled only; the "
                                                        "food bank sets every other status.")
        task = self._task(db, request, task_id)
        direct.cancel(db, task, actor_id=principal(request).user_id,
                      reason=reason if isinstance(reason, str) else None, clock=clock_of(request))
        audit.record(db, audit_context(request), "U", "fhir:Task", task_id,
                     patient_id=task.referral.patient_id)
        db.commit()
        task = direct.view(db, task.row, clock_of(request))
        return fhir_response(fhir.task(task.row, task.referral, task.state, clinic=task.clinic,
                                       food_bank=task.food_bank, base_url=settings.base_url))

    @get("/ServiceRequest/{request_id:int}",
         opt={**CLINIC, "scope": (("ServiceRequest", "r"),), "phi": ("R", "fhir:ServiceRequest")},
         sync_to_thread=True)
    def read_service_request(self, request: Request, db: DB, request_id: PathId) -> Response:
        task = self._task(db, request, request_id, kind="ServiceRequest")
        audit_read(request, "ServiceRequest", (request_id, task.referral.patient_id))
        return fhir_response(fhir.service_request(task.row, task.referral))

    @get("/Procedure/{procedure_id:int}",
         opt={**CLINIC, "scope": (("Procedure", "r"),), "phi": ("R", "fhir:Procedure")}, sync_to_thread=True)
    def read_procedure(self, request: Request, db: DB, procedure_id: PathId) -> Response:
        found = direct.delivery(db, procedure_id, clinics_of(request), clock_of(request))
        if found is None:
            raise HTTPException(status_code=404, detail=f"No Procedure {procedure_id}.")
        done, task = found
        audit_read(request, "Procedure", (procedure_id, task.referral.patient_id))
        return fhir_response(fhir.procedure(done, task.row, task.referral))

    @get("/HealthcareService", opt={**CLINIC, "scope": (("HealthcareService", "s"),)}, sync_to_thread=True)
    def search_services(self, request: Request, db: DB, settings: Config) -> Response:
        services = [_service(request, db, bank) for bank in _programs(db, clinics_of(request))]
        return fhir_response(fhir.searchset(services, [], total=len(services), next_url=None,
                                            self_url=f"{settings.base_url}/fhir/HealthcareService"))

    @get("/HealthcareService/{service_id:int}", opt={**CLINIC, "scope": (("HealthcareService", "r"),)},
         sync_to_thread=True)
    def read_service(self, request: Request, db: DB, service_id: PathId) -> Response:
        found = [bank for bank in _programs(db, clinics_of(request)) if bank.id == service_id]
        if not found:
            raise HTTPException(status_code=404, detail=f"No HealthcareService {service_id}.")
        return fhir_response(_service(request, db, found[0]))

    @staticmethod
    def _task(db: DB, request: Request, task_id: int, kind: str = "Task") -> direct.TaskView:
        row = direct.visible_task(db, task_id, clinics_of(request))
        if row is None:
            raise HTTPException(status_code=404, detail=f"No {kind} {task_id}.")
        return direct.view(db, row, clock_of(request))



def _refer(request: Request, db: DB, settings: Config, body: bytes) -> Response:
    bundle = read_bundle(body)
    clinics = clinics_of(request)
    if len(clinics) != 1:
        raise HTTPException(status_code=422, detail="This account refers for several clinics; use one "
                                                    "clinic's token.")
    received = direct.receive(db, bundle, clinic_id=clinics[0], actor_id=principal(request).user_id,
                              clock=clock_of(request))
    if received.created:
        referral = db.get(Referral, received.task.referral_id)
        audit.record(db, audit_context(request), "C", "fhir:Task", received.task.id,
                     patient_id=referral.patient_id if referral else None)
    db.commit()
    task = direct.view(db, received.task, clock_of(request))
    status = "201 Created" if received.created else "200 OK"
    locations = {bundle.patient_entry: f"Patient/{task.referral.patient_id}",
                 bundle.request_entry: f"ServiceRequest/{task.row.id}"}
    entries = [{"response": {"status": status} | ({"location": locations[i]} if i in locations else {})}
               for i in range(len(bundle.kinds))]
    served = fhir.task(task.row, task.referral, task.state, clinic=task.clinic, food_bank=task.food_bank,
                       base_url=settings.base_url)
    entries.append({"fullUrl": f"Task/{task.row.id}", "resource": served,
                    "response": {"status": status, "location": f"Task/{task.row.id}",
                                 "lastModified": served["meta"]["lastUpdated"]}})
    return fhir_response({"resourceType": "Bundle", "type": "transaction-response", "entry": entries},
                         headers={"Location": f"{settings.base_url}/fhir/Task/{task.row.id}"})


def _service(request: Request, db: DB, food_bank: Organization) -> dict[str, Any]:
    """The program as a HealthcareService, its capacity as of today where it delivers."""
    return fhir.healthcare_service(food_bank, waitlist.program_status(db, food_bank,
                                                                      program_today(request, food_bank)))


def _programs(db: DB, clinic_ids: list[int]) -> list[Organization]:
    """The food bank programs these clinics refer to."""
    banks = {c.food_bank_id for c in (db.get(Organization, i) for i in clinic_ids) if c and c.food_bank_id}
    found = [db.get(Organization, i) for i in sorted(banks)]
    return [b for b in found if b is not None and b.kind == OrganizationKind.food_bank]


def _decode(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise HTTPException(status_code=400, detail=f"The body is not JSON: {exc}.") from None


def _bounded(raw: str | None, default: int, low: int, high: int, name: str) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise HTTPException(status_code=400, detail=f"{name} takes a whole number from {low} to {high}.")
    return int(raw)


def _reference_id(value: str, kind: str, name: str) -> int:
    """`Kind/12` (or a full URL ending so, or a bare 12) as 12."""
    tail = value.rstrip("/").rsplit("/", 2)
    number = tail[-1]
    if not number.isdigit() or (len(tail) > 1 and tail[-2] != kind):
        raise HTTPException(status_code=400, detail=f"{name} takes a {kind} reference such as {kind}/12.")
    return int(number)


def _instant(raw: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise HTTPException(status_code=400, detail=f"{name} takes a date-time such as "
                                                    "gt2026-12-01T08:00:00Z.") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _task_query(params: Any, clinic_ids: list[int]) -> direct.TaskQuery:
    ids = None
    if "_id" in params:
        ids = [_reference_id(v, "Task", "_id") for v in params["_id"].split(",")]
    if "focus" in params:
        focus = [_reference_id(v, "ServiceRequest", "focus") for v in params["focus"].split(",")]
        ids = focus if ids is None else [i for i in ids if i in focus]
    statuses = None
    if "status" in params:
        statuses = frozenset(params["status"].split(","))
        wrong = statuses - codes.PERFORMER_STATUSES - {"requested"}
        if wrong:
            raise HTTPException(status_code=400, detail=f"Unknown Task status {sorted(wrong)[0]}.")
    after = before = None
    for value in params.getall("_lastUpdated", []):
        prefix, rest = value[:2], value[2:]
        if prefix == "gt":
            after = _instant(rest, "_lastUpdated")
        elif prefix == "lt":
            before = _instant(rest, "_lastUpdated")
        else:
            raise HTTPException(status_code=400, detail="_lastUpdated takes gt… or lt… (e.g. gt2026-12-01).")
    return direct.TaskQuery(
        clinic_ids=clinic_ids, task_ids=ids,
        owner_id=_reference_id(params["owner"], "Organization", "owner") if "owner" in params else None,
        patient_id=_reference_id(params["patient"], "Patient", "patient") if "patient" in params else None,
        statuses=statuses, updated_after=after, updated_before=before)
