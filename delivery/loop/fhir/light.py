"""FHIR "Direct Light": the clinic's FHIR server holds the Task; we poll it and write back.

The `fhir_poll` job, per clinic connection:
1. reads `Task?owner=<the food bank there>&_lastUpdated=gt<cursor>&_include=Task:focus`, following
   the `next` links, and for each new Task its ServiceRequest, Patient and what the ServiceRequest's
   `supportingInfo` names (screening Observations or QuestionnaireResponse, Consent);
2. turns them into the same transaction Bundle a clinic would POST us, and creates the referral
   through `bundle.read_bundle` and `direct.receive` (so `intake.refer()` and every rule of Direct);
   a Task is taken once per connection (unique connection + Task id), a refused one is rejected
   there with the reason; a Task the clinic cancelled there cancels the referral here;
3. reconciles every open Task there with the referral's timeline (`direct.view`): the Task's status,
   businessStatus and statusReason, and a Procedure created there for each delivery (listed in the
   Task's output) — accepted or rejected, in-progress, completed or failed, the guide's sequence;
4. queues itself for the next poll: the connection's interval inside working hours (program time
   zone, weekdays), never sooner than 15 minutes; after a failure (server down, 5xx, 429) sooner,
   backing off, and never before a `Retry-After`.

Network calls happen outside transactions: state is read on a reader, the server is asked, then a
short writer records what came of it. HTTP is httpx with explicit status handling; resources are
validated with `fhir.resources` (R4B models) before they are used or sent.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pydantic
from fhir.resources.R4B import get_fhir_model_class
from joserfc import jwt
from joserfc.jwk import import_key
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.loop.fhir import codes, direct
from delivery.loop.fhir import resources as fhir
from delivery.loop.fhir.bundle import BundleError, read_bundle
from delivery.models import FhirConnection, FhirRemoteTask, FhirTask, Organization, Referral
from delivery.platform import audit, jobs
from delivery.platform.audit import AuditContext
from delivery.platform.clock import Clock
from delivery.platform.errors import FieldError

log = logging.getLogger("delivery.loop.fhir.light")

KIND = "fhir_poll"
MIN_INTERVAL_MINUTES = 15  # the guide asks pollers for no more than every 15 minutes
DEFAULT_INTERVAL_MINUTES = 60
FIRST_RETRY = dt.timedelta(minutes=1)
MAX_PAGES = 100
TIMEOUT_S = 20.0
FHIR_JSON = "application/fhir+json"
ENDED = direct.ENDED
SOURCES = ("Observation", "QuestionnaireResponse", "Consent")


class ConnectionRefused(FieldError):
    """A connection that cannot be saved as asked; the message says what to fix."""

    default_code = "fhir_connection_refused"


class RemoteError(Exception):
    """The clinic's server did not answer usefully; `retry_after` in seconds when it said so."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after, self.status = retry_after, status

    @property
    def about_the_resource(self) -> bool:
        """Their answer was about what was asked (not found, gone, invalid), not about the server or
        our credentials: the Task that led there is refused, the poll goes on."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (401, 403, 429)


# --- the schedule (plain rules) ---------------------------------------------------------------


def next_poll(now: dt.datetime, *, interval_minutes: int, hours: tuple[int, int],
              timezone: str) -> dt.datetime:
    """When to poll next: `interval_minutes` on (at least 15), moved to the start of the next working
    hours (weekdays, `hours` start to end, program time zone) when it falls outside them."""
    zone = ZoneInfo(timezone)
    at = (now + dt.timedelta(minutes=max(interval_minutes, MIN_INTERVAL_MINUTES))).astimezone(zone)
    start, end = hours
    for _ in range(8):
        opening = at.replace(hour=start, minute=0, second=0, microsecond=0)
        if at.weekday() < 5 and opening <= at < at.replace(hour=end, minute=0, second=0, microsecond=0):
            return at.astimezone(dt.UTC)
        if at.weekday() < 5 and at < opening:
            return opening.astimezone(dt.UTC)
        at = (at + dt.timedelta(days=1)).replace(hour=start, minute=0, second=0, microsecond=0)
    return at.astimezone(dt.UTC)


def retry_at(now: dt.datetime, failures: int, retry_after: float | None,
             interval_minutes: int) -> dt.datetime:
    """After `failures` failed polls in a row: 1, 2, 4 … minutes, at most the interval; never before
    the server's Retry-After."""
    wait = min(FIRST_RETRY * 2 ** (failures - 1), dt.timedelta(minutes=max(interval_minutes,
                                                                            MIN_INTERVAL_MINUTES)))
    if retry_after is not None:
        wait = max(wait, dt.timedelta(seconds=retry_after))
    return now + wait


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max((email.utils.parsedate_to_datetime(value) - now).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


# --- connections (admin) ----------------------------------------------------------------------


def add_connection(db: Session, ctx: AuditContext, clinic: Organization, *, base_url: str,
                   owner_reference: str, bearer_token: str | None = None, token_url: str | None = None,
                   client_id: str | None = None, private_jwk: dict[str, Any] | None = None,
                   scope: str | None = None,
                   interval_minutes: int = DEFAULT_INTERVAL_MINUTES, hours: tuple[int, int] = (8, 18),
                   allow_loopback: bool = False, now: dt.datetime) -> FhirConnection:
    """Register a clinic's FHIR server and queue its first poll now."""
    base_url = base_url.strip().rstrip("/")
    if not base_url.startswith("https://") and not (allow_loopback and base_url.startswith("http://127.0.0.1")):
        raise ConnectionRefused("The clinic's FHIR base URL must be https://.", "base_url")
    if not owner_reference.startswith("Organization/") or len(owner_reference) > 200:
        raise ConnectionRefused("Give the food bank's Organization on their server, e.g. Organization/123.",
                               "owner_reference")
    if not MIN_INTERVAL_MINUTES <= interval_minutes <= 24 * 60:
        raise ConnectionRefused(f"Poll every {MIN_INTERVAL_MINUTES} to 1440 minutes (the guide asks for no "
                               f"more than every {MIN_INTERVAL_MINUTES}).", "interval_minutes")
    if not 0 <= hours[0] < hours[1] <= 24:
        raise ConnectionRefused("Working hours: a start hour before the end hour, 0 to 24.", "hours")
    smart = bool(token_url or client_id or private_jwk)
    if smart and not (token_url and client_id and private_jwk):
        raise ConnectionRefused("SMART Backend Services needs the token URL, our client id there and our "
                               "private key (JWK).", "token_url")
    if smart == bool(bearer_token):
        raise ConnectionRefused("Give either a bearer token or SMART Backend Services credentials.",
                                "bearer_token")
    if private_jwk is not None:
        try:
            if not import_key(private_jwk).is_private:
                raise ValueError("a public key")
        except Exception as exc:  # joserfc raises several kinds for a bad key
            raise ConnectionRefused(f"The private key (JWK) was refused: {exc}.", "private_jwk") from None
    row = FhirConnection(clinic_id=clinic.id, base_url=base_url, owner_reference=owner_reference,
                         bearer_token=bearer_token or None, token_url=token_url, client_id=client_id,
                         private_jwk=private_jwk, scope=scope or "system/Task.rsu system/ServiceRequest.r "
                         "system/Patient.r system/Observation.r system/QuestionnaireResponse.r "
                         "system/Consent.r system/Procedure.c", interval_minutes=interval_minutes,
                         hours_start=hours[0], hours_end=hours[1], next_poll_at=now, failures=0, enabled=True)
    db.add(row)
    db.flush()
    audit.record(db, ctx, "C", "fhir_connection", row.id,
                 detail=f"{clinic.name}: {base_url} as {owner_reference}; "
                        f"{'SMART ' + (client_id or '') if smart else 'bearer token'}")
    jobs.enqueue(db, KIND, {"connection_id": row.id}, run_after=now, dedupe_key=f"connection-{row.id}")
    return row


@dataclass(frozen=True)
class ConnectionSummary:
    connection: FhirConnection
    clinic: Organization
    tasks: int
    referrals: int
    refused: int


def summaries(db: Session, clinic_ids: list[int]) -> list[ConnectionSummary]:
    """Each connection of these clinics with its counts, for the admins' page."""
    out = []
    for row, clinic in db.execute(select(FhirConnection, Organization).join(
            Organization, Organization.id == FhirConnection.clinic_id)
            .where(FhirConnection.clinic_id.in_(clinic_ids)).order_by(FhirConnection.id)):
        counts = db.execute(select(func.count(FhirRemoteTask.id), func.count(FhirRemoteTask.referral_id),
                                   func.count(FhirRemoteTask.refusal))
                            .where(FhirRemoteTask.connection_id == row.id)).one()
        out.append(ConnectionSummary(row, clinic, *counts))
    return out


# --- talking to the clinic's server -----------------------------------------------------------


class Remote:
    """The clinic's FHIR server through httpx: statuses checked, resources validated."""

    def __init__(self, http: httpx.Client, connection: FhirConnection, now: dt.datetime) -> None:
        self.http, self.base, self.now = http, connection.base_url, now
        self.headers = {"Accept": FHIR_JSON}
        if connection.bearer_token:
            self.headers["Authorization"] = f"Bearer {connection.bearer_token}"
        else:
            self.headers["Authorization"] = f"Bearer {self._smart_token(connection)}"

    def _smart_token(self, connection: FhirConnection) -> str:
        """SMART Backend Services: our signed assertion for a short-lived token."""
        key = import_key(connection.private_jwk or {})
        alg = "ES384" if key.key_type == "EC" else "RS384"
        now = int(self.now.timestamp())
        assertion = jwt.encode({"alg": alg, "kid": key.kid or "", "typ": "JWT"},
                               {"iss": connection.client_id, "sub": connection.client_id,
                                "aud": connection.token_url, "exp": now + 240, "jti": uuid.uuid4().hex},
                               key, algorithms=[alg])
        answer = self._send("POST", connection.token_url or "", data={
            "grant_type": "client_credentials", "scope": connection.scope or "",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}, auth=False)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise RemoteError("The token endpoint answered without an access_token.")
        return token

    def _send(self, method: str, url: str, *, auth: bool = True, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self.http.request(method, url,
                                       headers=self.headers if auth else {"Accept": "application/json"},
                                       timeout=TIMEOUT_S, follow_redirects=False, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(f"{method} {url}: the server could not be reached "
                              f"({type(exc).__name__}).") from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise RemoteError(f"{method} {url}: HTTP {answer.status_code}.",
                              parse_retry_after(answer.headers.get("retry-after"), self.now))
        if answer.status_code >= 400:
            raise RemoteError(f"{method} {url}: HTTP {answer.status_code}: {answer.text[:200]}",
                              status=answer.status_code)
        if not answer.content:
            return {"location": answer.headers.get("location", "")}
        try:
            found = answer.json()
        except ValueError:
            raise RemoteError(f"{method} {url}: the answer is not JSON.") from None
        if isinstance(found, dict) and not found.get("id") and answer.headers.get("location"):
            found["location"] = answer.headers["location"]
        return found if isinstance(found, dict) else {}

    def url(self, reference: str) -> str:
        return reference if reference.startswith("http") else f"{self.base}/{reference.lstrip('/')}"

    def read(self, reference: str, kind: str | None = None) -> dict[str, Any]:
        found = self._send("GET", self.url(reference))
        return valid(found, kind or reference.rsplit("/", 2)[-2])

    def search_tasks(self, owner: str, cursor: str | None) -> list[dict[str, Any]]:
        """Every Task and included resource of the search, following `next` links."""
        params = [("owner", owner), ("_include", "Task:focus"), ("_sort", "_lastUpdated")]
        if cursor:
            params.append(("_lastUpdated", f"gt{cursor}"))
        url: str | None = str(httpx.URL(f"{self.base}/Task", params=params))
        entries: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return entries
            page = valid(self._send("GET", url), "Bundle")
            entries += [e["resource"] for e in page.get("entry") or [] if "resource" in e]
            url = next((link["url"] for link in page.get("link") or [] if link.get("relation") == "next"),
                       None)
        raise RemoteError(f"The Task search ran over {MAX_PAGES} pages; a later poll goes on from there.")

    def update(self, resource: dict[str, Any]) -> dict[str, Any]:
        """PUT the resource back, validated first."""
        path = f"{resource['resourceType']}/{resource['id']}"
        return self._write("PUT", path, valid(resource, resource["resourceType"]))

    def create(self, resource: dict[str, Any]) -> str:
        """POST a new resource; its id on their server."""
        answer = self._write("POST", resource["resourceType"], valid(resource, resource["resourceType"]))
        made = answer.get("id") or answer.get("location", "").split(f"{resource['resourceType']}/")[-1]
        made = str(made).split("/")[0]
        if not made:
            raise RemoteError(f"Creating a {resource['resourceType']} gave no id.")
        return made

    def _write(self, method: str, path: str, resource: dict[str, Any]) -> dict[str, Any]:
        saved = dict(self.headers)
        self.headers = saved | {"Content-Type": FHIR_JSON}
        try:
            return self._send(method, self.url(path), content=json.dumps(resource))
        finally:
            self.headers = saved


def valid(resource: dict[str, Any], kind: str) -> dict[str, Any]:
    """The resource if it is a valid FHIR R4 `kind`, else RemoteError."""
    if resource.get("resourceType") != kind:
        raise RemoteError(f"Expected a {kind}, got {resource.get('resourceType') or 'something else'}.")
    try:
        get_fhir_model_class(kind).model_validate(resource)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise RemoteError(f"Their {kind} is not valid FHIR R4: {first['msg']} at "
                          f"{'.'.join(str(p) for p in first['loc'])}.", status=422) from None
    return resource


def reference_of(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def local(reference: str, base: str) -> str:
    """Their absolute reference as a relative one (`Patient/7`)."""
    return reference.removeprefix(base.rstrip("/") + "/")


# --- a poll -----------------------------------------------------------------------------------


@dataclass
class Found:
    """A Task there and what it refers to, gathered before anything is written here."""

    task: dict[str, Any]
    request: dict[str, Any] | None = None
    bundle: bytes | None = None
    problem: str | None = None


def gather(remote: Remote, task: dict[str, Any], included: dict[str, dict[str, Any]]) -> Found:
    """The Task's ServiceRequest, Patient and supporting resources as a referral transaction Bundle.
    A Task that points at nothing usable is `problem` (rejected there), not an error of the poll."""
    try:
        return _gather(remote, task, included)
    except RemoteError as exc:
        if not exc.about_the_resource:
            raise
        return Found(task, problem=f"A resource the Task refers to could not be read: {exc}"[:1000])


def _gather(remote: Remote, task: dict[str, Any], included: dict[str, dict[str, Any]]) -> Found:
    focus = local((task.get("focus") or {}).get("reference", ""), remote.base)
    if not focus.startswith("ServiceRequest/"):
        return Found(task, problem="Task.focus must reference the ServiceRequest for home-delivered food.")
    request = included.get(focus) or remote.read(focus, "ServiceRequest")
    subject = local((request.get("subject") or {}).get("reference", ""), remote.base)
    if not subject.startswith("Patient/"):
        return Found(task, request, problem="ServiceRequest.subject must reference the Patient.")
    parts = [remote.read(subject, "Patient"), request]
    for ref in request.get("supportingInfo") or []:
        target = local(ref.get("reference", ""), remote.base)
        if target.split("/")[0] in SOURCES:
            parts.append(remote.read(target))
    entries = [{"fullUrl": reference_of(r), "resource": _relative(r, remote.base),
                "request": {"method": "POST", "url": r["resourceType"]}} for r in parts]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return Found(task, request, bundle=json.dumps(bundle).encode())


def _relative(resource: dict[str, Any], base: str) -> dict[str, Any]:
    """References written as absolute URLs of their server, made relative (as the Bundle reader expects)."""
    return json.loads(json.dumps(resource).replace(f'"{base.rstrip("/")}/', '"'))


def take(db: Session, connection: FhirConnection, found: Found, clock: Clock) -> FhirRemoteTask:
    """Create the referral for a new Task (once: the caller checked it is new, the unique key holds).
    Raises BundleError or FieldError when it cannot be made (the caller records the refusal)."""
    task = found.task
    row = FhirRemoteTask(connection_id=connection.id, remote_id=str(task["id"]),
                         patient_reference=local((task.get("for") or {}).get("reference", ""),
                                                 connection.base_url),
                         request_reference=local((task.get("focus") or {}).get("reference", ""),
                                                 connection.base_url),
                         refusal=found.problem, procedures={})
    if found.bundle is not None:
        received = direct.receive(db, read_bundle(found.bundle), clinic_id=connection.clinic_id,
                                  actor_id=None, clock=clock)
        row.referral_id = received.task.referral_id
        if received.created:
            referral = db.get(Referral, row.referral_id)
            audit.record(db, AuditContext(client_id=f"fhir-poll:{connection.id}"), "C", "fhir:Task",
                         received.task.id, patient_id=referral.patient_id if referral else None,
                         detail=f"from Task/{row.remote_id} at {connection.base_url}"[:500])
    db.add(row)
    db.flush()
    return row


def desired(db: Session, row: FhirRemoteTask, clock: Clock) -> tuple[str, str | None, str | None,
                                                                      list[direct.Delivery], Any]:
    """What their Task should say now: (status, businessStatus, reason, deliveries, view)."""
    if row.referral_id is None:
        return "rejected", None, f"Not taken: {row.refusal}"[:1000], [], None
    local_task = db.scalar(select(FhirTask).where(FhirTask.referral_id == row.referral_id))
    assert local_task is not None
    view = direct.view(db, local_task, clock)
    return view.state.status, view.state.business_status, view.state.reason, view.state.deliveries, view


def signature(status: str, business: str | None, reason: str | None, procedures: dict[str, Any]) -> str:
    return f"{status}|{business or ''}|{len(procedures)}|{reason or ''}"[:1200]


def run(ctx: jobs.JobContext) -> None:
    """One poll of one connection (see the module's docstring); queues the next."""
    connection_id = int(ctx.payload["connection_id"])
    now = ctx.clock.now()
    with ctx.database.reader() as db:
        connection = db.get(FhirConnection, connection_id)
        if connection is None or not connection.enabled:
            return
        db.expunge(connection)
        known = {r.remote_id: r.referral_id for r in db.scalars(select(FhirRemoteTask).where(
            FhirRemoteTask.connection_id == connection_id))}
    try:
        with httpx.Client() as http:
            remote = Remote(http, connection, now)
            cursor = poll(ctx, connection, remote, known)
            write_back(ctx, connection, remote)
    except RemoteError as exc:
        log.warning("FHIR connection %s: %s", connection_id, exc)
        _finish(ctx, connection_id, now, error=str(exc), retry_after=exc.retry_after)
        return
    _finish(ctx, connection_id, now, cursor=cursor)


def poll(ctx: jobs.JobContext, connection: FhirConnection, remote: Remote,
         known: dict[str, int | None]) -> str | None:
    """Take the new Tasks; cancel referrals whose Task the clinic cancelled. Returns the new cursor."""
    found = remote.search_tasks(connection.owner_reference, connection.cursor)
    included = {reference_of(r): r for r in found if r.get("resourceType") != "Task" and r.get("id")}
    tasks = [valid(r, "Task") for r in found if r.get("resourceType") == "Task"]
    cursor = connection.cursor
    for task in tasks:
        updated = (task.get("meta") or {}).get("lastUpdated")
        remote_id = str(task["id"])
        if remote_id in known:
            if task.get("status") == "cancelled" and known[remote_id] is not None:
                _cancelled_there(ctx, connection, known[remote_id], task)  # type: ignore[arg-type]
        elif task.get("status") in ("requested", "received", "ready"):
            gathered = gather(remote, task, included)  # network first, then a short transaction
            with ctx.database.writer() as db:
                here = db.get(FhirConnection, connection.id)
                try:
                    taken = take(db, here, gathered, ctx.settings.clock)  # type: ignore[arg-type]
                except (BundleError, FieldError) as exc:
                    db.rollback()
                    where = f" ({exc.expression})" if isinstance(exc, BundleError) else ""
                    gathered.problem, gathered.bundle = f"{exc}{where}"[:1000], None
                    taken = take(db, db.get(FhirConnection, connection.id), gathered, ctx.settings.clock)  # type: ignore[arg-type]
                db.commit()
                known[remote_id] = taken.referral_id
        if updated and (cursor is None or updated > cursor):
            cursor = updated
    return cursor


def _cancelled_there(ctx: jobs.JobContext, connection: FhirConnection, referral_id: int,
                     task: dict[str, Any]) -> None:
    with ctx.database.writer() as db:
        row = db.scalar(select(FhirTask).where(FhirTask.referral_id == referral_id))
        if row is None:
            return
        view = direct.view(db, row, ctx.settings.clock)
        if view.state.status in ENDED:
            return
        direct.cancel(db, view, actor_id=None, reason=(task.get("statusReason") or {}).get("text"),
                      clock=ctx.settings.clock)
        db.commit()


def write_back(ctx: jobs.JobContext, connection: FhirConnection, remote: Remote) -> int:
    """Bring every open Task there up to date with its referral here; returns how many were written."""
    with ctx.database.reader() as db:
        rows = list(db.scalars(select(FhirRemoteTask).where(FhirRemoteTask.connection_id == connection.id)
                               .order_by(FhirRemoteTask.id)))
        plans = []
        for row in rows:
            status, business, reason, deliveries, view = desired(db, row, ctx.settings.clock)
            new = [d for d in deliveries if str(d.stop_id) not in row.procedures]
            procedures = {d.stop_id: fhir.procedure(d, view.row, view.referral) for d in new} if view else {}
            written_status = (row.written or "").split("|")[0]
            if written_status in ENDED and written_status == status and not new:
                continue
            plans.append((row.id, row.remote_id, row.patient_reference, row.request_reference,
                          dict(row.procedures), status, business, reason, procedures))
    count = 0
    for row_id, remote_id, patient, request, made, status, business, reason, procedures in plans:
        for stop_id, procedure in procedures.items():
            procedure = {k: v for k, v in procedure.items() if k not in ("id", "meta")}
            procedure |= {"subject": {"reference": patient}, "basedOn": [{"reference": request}]}
            made[str(stop_id)] = remote.create(procedure)
            with ctx.database.writer() as db:  # kept at once: a later failure does not create it twice
                db.get(FhirRemoteTask, row_id).procedures = dict(made)  # type: ignore[union-attr]
                db.commit()
        wanted = signature(status, business, reason, made)
        with ctx.database.reader() as db:
            if db.get(FhirRemoteTask, row_id).written == wanted:  # type: ignore[union-attr]
                continue
        task = remote.read(f"Task/{remote_id}", "Task")
        task["status"] = status
        task.pop("businessStatus", None)
        task.pop("statusReason", None)
        if business:
            task["businessStatus"] = {"coding": [codes.coding(
                codes.business_status_system(ctx.settings.base_url), business,
                codes.BUSINESS_STATUS_DISPLAY[business])]}  # type: ignore[index]
        if reason:
            task["statusReason"] = {"text": reason}
        theirs = [o for o in task.get("output") or [] if not codes.has_coding(
            o.get("type"), codes.SDOHCC_CODES, "resulting-activity")]
        task["output"] = theirs + [{"type": {"coding": [codes.coding(codes.SDOHCC_CODES, "resulting-activity",
                                                                       "Resulting Activity")]},
                                    "valueReference": {"reference": f"Procedure/{made[key]}"}}
                                   for key in sorted(made, key=int)]
        if not task["output"]:
            task.pop("output")
        remote.update(task)
        with ctx.database.writer() as db:
            db.get(FhirRemoteTask, row_id).written = wanted  # type: ignore[union-attr]
            db.commit()
        count += 1
    return count


def _finish(ctx: jobs.JobContext, connection_id: int, now: dt.datetime, *, cursor: str | None = None,
            error: str | None = None, retry_after: float | None = None) -> None:
    """Record how the poll went and queue the next one."""
    with ctx.database.writer() as db:
        connection = db.get(FhirConnection, connection_id)
        if connection is None:
            return
        food_bank = db.get(Organization, db.get(Organization, connection.clinic_id).food_bank_id or 0)  # type: ignore[union-attr]
        if error is None:
            connection.cursor, connection.last_success_at, connection.failures = cursor, now, 0
            due = next_poll(now, interval_minutes=connection.interval_minutes,
                            hours=(connection.hours_start, connection.hours_end),
                            timezone=food_bank.timezone if food_bank else "UTC")
        else:
            connection.failures += 1
            connection.last_error, connection.last_error_at = error[:500], now
            due = retry_at(now, connection.failures, retry_after, connection.interval_minutes)
        connection.next_poll_at = due
        jobs.enqueue(db, KIND, {"connection_id": connection_id}, run_after=due,
                     dedupe_key=f"connection-{connection_id}")
        db.commit()


def job_kind() -> jobs.Kind:
    # The handler records failures and queues its own retry (Retry-After, backoff): a raise here is a
    # bug or the database, retried by the runner.
    return jobs.Kind(KIND, run, backoff=jobs.exponential(first_s=60.0, max_s=3600.0))
