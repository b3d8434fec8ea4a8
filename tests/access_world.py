"""One program's data with someone on each side of every boundary, for the access suites
(tests/test_access_matrix.py): built once per database, then every route is called as each principal.

"Own" principals hold each Role (read from the enum, so a role added later gets one) at the first
clinic and the food bank: clinic 1's staff, driver A. "Other" principals sit across a boundary:
driver B (another route the same day), clinic 2's staff (session and API token), clinic 2's SMART
system token, and the admin of another program. The canary patient (tests/plan_builders.CANARIES)
is on driver A's route, referred by clinic 1.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.loop import endpoints
from delivery.loop.fhir import smart
from delivery.models import Driver, FhirTask, Organization, OrganizationKind, Role, Stop, User
from delivery.plans import publishing
from delivery.platform import auth
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.reports.charts import CHARTS
from delivery.web.security import is_api_path, mask_csrf
from tests.builders import Program, make_program, password_hash, referral_body
from tests.fhir_checks import FHIR_JSON, sample_bundle
from tests.log_guard import watch
from tests.plan_builders import CANARY, CANARY_BIRTH, StopSpec, make_day
from tests.test_confirmation_api import jpeg_with_gps

LA = ZoneInfo("America/Los_Angeles")
DAY = dt.date(2026, 12, 1)  # a Tuesday, the program's delivery day
MORNING = dt.datetime(2026, 12, 1, 8, 0, tzinfo=LA)
COOKIE = "__Host-session"
ID_MAX = 2**31 - 1  # an id no row has: a write reaches its handler and finds nothing
SYSTEM_SCOPES = ("system/Task.rsu system/Patient.c system/ServiceRequest.cr system/Procedure.r "
                 "system/HealthcareService.rs")
EC_KEY = ECKey.generate_key("P-384", parameters={"kid": "matrix"})
OWN, OTHER = "own", "other"
PATH_VALUES = {"/reports/tables/{name:str}": {"name": "figures"}}  # where one name means two things


@dataclass
class Who:
    """A principal: how it authenticates on pages (cookie) and on /api and /fhir (bearer)."""

    name: str
    role: str | None  # None: anonymous
    side: str = OWN
    cookie: str | None = None
    csrf: str | None = None  # the session's raw token; masked afresh per request like a page would
    bearer: str | None = None
    user_id: int | None = None

    def credentials(self, path: str) -> bool:
        return bool(self.bearer if is_api_path(path) else self.cookie)

    def headers(self, path: str, *, with_csrf: bool) -> dict[str, str]:
        if is_api_path(path):
            return {"Authorization": f"Bearer {self.bearer}"} if self.bearer else {}
        headers = {"Cookie": f"{COOKIE}={self.cookie}"} if self.cookie else {}
        if with_csrf and self.csrf:
            headers["X-CSRF-Token"] = mask_csrf(self.csrf)
        return headers


@dataclass
class World:
    app: Litestar
    client: TestClient
    database: Database
    settings: Settings
    program: Program
    people: list[Who]
    ids: dict[str, Any]  # path parameter name -> a value on the own side
    canary_patient_id: int
    canary_referral_id: int
    outbox_bodies: list[str] = field(default_factory=list)

    def path(self, template: str, *, nowhere: bool = False, writing: bool = False) -> str:
        """The route's path with its parameters filled from `ids` (ids no row has when `nowhere`).
        A read's parameter this world has no value for fails loudly: give it one in `build`; a
        write may name a row that does not exist (it must still be refused or not found)."""
        values = {**self.ids, **PATH_VALUES.get(template, {})}

        def fill(match: re.Match[str]) -> str:
            name, kind = match.group(1), match.group(2)
            if kind == "int" and (nowhere or (writing and name not in values)):
                return str(ID_MAX)
            if name not in values:
                raise KeyError(f"tests/access_world.py has no value for the path parameter {name!r}")
            return str(values[name])

        return re.sub(r"\{(\w+):(\w+)\}", fill, template)

    def call(self, method: str, path: str, who: Who, *, with_csrf: bool = False,
             json: Any = None, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """One request as `who`, with nothing carried over from an earlier one (no cookie jar)."""
        self.client.cookies.clear()
        response = self.client.request(method, path, headers={**who.headers(path, with_csrf=with_csrf),
                                                              **(headers or {})},
                                       json=json, content=content, follow_redirects=False)
        self.client.cookies.clear()
        return response


def person(db: Any, settings: Settings, name: str, role: str, email: str, side: str = OWN) -> Who:
    """Signed in (a session, as the sign-in form would start) and holding an API token."""
    user = db.scalar(select(User).where(User.email == email))
    cookie, session = auth.start_session(db, user, settings)
    return Who(name, role, side, watch(cookie), session.csrf_token, watch(auth.create_api_token(db, email)),
               user.id)


def system_token(client: TestClient, client_id: str) -> str:
    now = int(MORNING.timestamp())
    claims = {"iss": client_id, "sub": client_id, "aud": "https://testserver.local/fhir/auth/token",
              "exp": now + 240, "jti": uuid.uuid4().hex}
    signed = jwt.encode({"alg": "ES384", "kid": EC_KEY.kid}, claims, EC_KEY, algorithms=["ES384"])
    answer = client.post("/fhir/auth/token", data={
        "grant_type": "client_credentials", "scope": SYSTEM_SCOPES,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed})
    assert answer.status_code == 200, answer.text
    return watch(answer.json()["access_token"])


def build(app: Litestar, client: TestClient, database: Database, settings: Settings) -> World:
    """Runs with the clock at MORNING (the caller travels there)."""
    with database.writer() as db:
        program = make_program(db)
        day = make_day(db, program, date=DAY, emails=["driver.a@example.org", "driver.b@example.org"], stops=[
            [StopSpec("Canary", "Bird", mrn=CANARY, birth_date=CANARY_BIRTH, access_notes="side door"),
             StopSpec("Minh", "Tran")],
            [StopSpec("Wei", "Chen")]])
        other_bank = Organization(name="Westside Food Bank", kind=OrganizationKind.food_bank,
                                  boxes_per_delivery_day=50, delivery_weekday=1)
        db.add(other_bank)
        db.flush()
        other_bank_id = other_bank.id
        auth.create_user(db, email="admin@westside.example.org", display_name="Wes Admin",
                         memberships=[(other_bank.id, Role.admin)]).password_hash = password_hash()
        auth.create_user(db, email="benefits@westside.example.org", display_name="Wes Benefits",
                         memberships=[(other_bank.id, Role.benefits)]).password_hash = password_hash()
        known = {Role.admin: program.admin, Role.coordinator: program.coordinator,
                 Role.clinic_staff: program.clinic1, Role.driver: day.driver_emails[0]}
        for role in Role:  # a role added to the enum later gets a principal of its own here
            if role not in known:
                known[role] = f"{role.value}@example.org"
                auth.create_user(db, email=known[role], display_name=f"A {role.value}",
                                 memberships=[(program.clinic1_id if "clinic" in role.value
                                               else program.food_bank_id, role)])
        people = [Who("anonymous", None)]
        people += [person(db, settings, f"{role.value} (own)", role, email) for role, email in known.items()]
        people += [person(db, settings, "driver B (another route)", Role.driver, day.driver_emails[1], OTHER),
                   person(db, settings, "clinic 2 staff", Role.clinic_staff, program.clinic2, OTHER),
                   person(db, settings, "admin of another program", Role.admin, "admin@westside.example.org",
                          OTHER),
                   person(db, settings, "benefits staff of another program", Role.benefits,
                          "benefits@westside.example.org", OTHER)]
        smart.register_client(db, clinic_id=program.clinic2_id, client_id="clinic2-ehr", scope=SYSTEM_SCOPES,
                              jwks={"keys": [EC_KEY.as_dict(private=False)]})
        clinic1 = db.get(Organization, program.clinic1_id)
        endpoint = endpoints.register(db, clinic1, "https://hooks.example.org/in", allow_loopback=False,
                                      actor=AuditContext.for_command("matrix"), resolve=False)
        canary_referral, canary_stop = day.referral_ids[0][0], day.stop_ids[0][0]
        route_a = day.route_ids[0]
        delivery_token = publishing.raw_delivery_token(
            publishing.delivery_token_for(db, route_a, db.get(Driver, day.driver_ids[0]).user_id),  # type: ignore[arg-type, union-attr]
            settings.secret_key)
        canary = db.get(Stop, canary_stop)
        canary_patient, canary_order = canary.patient_id, canary.order_id  # type: ignore[union-attr]
        db.commit()
    people.append(Who("clinic 2 system token", Role.clinic_staff, OTHER,
                      bearer=system_token(client, "clinic2-ehr")))

    own = {w.role: w for w in people if w.side == OWN and w.role}
    staff1 = {"Authorization": f"Bearer {own[Role.clinic_staff].bearer}"}
    task = client.post("/fhir/Bundle", content=json.dumps(sample_bundle()), headers=staff1 | FHIR_JSON)
    assert task.status_code == 200, task.text
    task_resource = task.json()["entry"][-1]["resource"]
    with database.writer() as db:  # the canary's referral came by FHIR too: its delivery is a Procedure
        sent = db.get(FhirTask, int(task_resource["id"]))
        db.add(FhirTask(referral_id=canary_referral, clinic_id=program.clinic1_id,
                        request_identifier="urn:matrix|canary", service_request=sent.service_request))  # type: ignore[union-attr]
        db.commit()
    other2 = next(w for w in people if w.name == "clinic 2 staff")
    made = client.post("/api/v1/referrals", json=referral_body(patient__mrn="C2-77"),
                       headers={"Authorization": f"Bearer {other2.bearer}"})
    assert made.status_code in (200, 201), made.text
    drt = {"Authorization": f"Bearer {watch(delivery_token)}", "Idempotency-Key": "matrix-1"}
    confirmed = client.post(f"/api/v1/stops/{canary_stop}/confirmations", headers=drt,
                            json={"outcome": "delivered", "occurred_at": MORNING.isoformat()})
    assert confirmed.status_code == 201, confirmed.text
    photo = client.put(f"/api/v1/stops/{canary_stop}/confirmations/photo", content=jpeg_with_gps(),
                       headers={**drt, "Content-Type": "image/jpeg"})
    assert photo.status_code in (200, 201), photo.text
    ids: dict[str, Any] = {
        "referral_id": canary_referral, "plan_id": day.plan_id, "stop_id": canary_stop, "route_id": route_a,
        "driver_id": day.driver_ids[0], "order_id": canary_order,
        "confirmation_id": confirmed.json()["id"], "endpoint_id": endpoint.endpoint.id,
        "food_bank_id": program.food_bank_id, "clinic_id": program.clinic1_id,
        "user_id": own[Role.coordinator].user_id,
        "task_id": int(task_resource["id"]), "request_id": _focus_id(task_resource),
        "service_id": program.food_bank_id, "procedure_id": canary_stop,
        "date": DAY.isoformat(), "name": next(iter(CHARTS)),
        "path": "openapi.yaml", "file_path": "css/app.css",
        "raw": "not-a-link-0000", "token": "not-a-link-0000",
        "client_id": "no-such-client",  # revoking a registered system would cut the matrix's own token
        "other_stop_id": day.stop_ids[1][0], "other_driver_id": day.driver_ids[1],  # driver B's
        "other_food_bank_id": other_bank_id}
    return World(app, client, database, settings, program, people, ids, canary_patient, canary_referral)


def _focus_id(task: dict[str, Any]) -> int:
    match = re.search(r"ServiceRequest/(\d+)", str(task.get("focus") or task.get("basedOn")))
    assert match, task
    return int(match.group(1))

