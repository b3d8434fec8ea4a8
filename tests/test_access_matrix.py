"""Every route the app registers × every principal, generated from the routes' own `opt` policy, so a
route added later is in the matrix the day it is added (R3.1–R3.3), with the PHI canary checked in
every answer that is not its own clinic's or program's staff's (R3.4).

The cells, for a route's policy and a principal:
- public: answers, never a 5xx;
- no credential this path takes (anonymous; a system token on a page): pages send to sign in (303),
  the API answers 401;
- a role the policy does not name: 403 from the guard;
- a role it names, reading (GET) on its own side: 200; from across a boundary (driver B, clinic 2,
  another program) with the own side's ids: 403 or 404, never 200 (object level);
- a role it names, writing: on its own side, pages without the CSRF token stop at the token check
  (403 "security token": the role check passed and nothing ran), the API with ids no row has and a
  body that is not an object stops at the handler (400/404/405/415/422); across a boundary, with the
  real ids and a valid CSRF token, the handler refuses (400/403/404/409/422), never a 2xx or 3xx.

One world per database (tests/access_world.py), built once for the module: the routes are many and
each cell is one request.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import time_machine
from litestar import Litestar
from litestar.params import HeaderParameter
from litestar.testing import TestClient
from sqlalchemy import func, select

from delivery.models import AuditEvent, Base, OutboxMessage, Role, Stop
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from delivery.web.driver import DriverStop, driver_stop
from delivery.web.security import is_api_path
from tests.access_world import MORNING, OTHER, OWN, Who, World, build
from tests.builders import referral_body
from tests.conftest import BASE_URL, BOTH_DATABASES, SECRET_KEY, empty_database
from tests.fhir_checks import FHIR_JSON, sample_bundle
from tests.plan_builders import CANARIES

STAFF_WHO_MAY_SEE_PHI = (Role.admin, Role.coordinator, Role.clinic_staff)  # their own side's patients
SAFE = ("GET", "HEAD")
# Routes whose object every principal holding the role shares, so no side is "other" for it.
SHARED = {"/fhir/HealthcareService/{service_id:int}": "the program's service: every clinic refers to it"}
# Routes that answer 404 to everyone allowed, by design.
ALWAYS_404 = {"/schema/{path:str}": "Litestar's catch-all for schema paths that do not exist"}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    opt: dict[str, Any]

    @property
    def has_ids(self) -> bool:
        """A record id in the path: an object one side owns (a date or a report's name is not)."""
        return ":int}" in self.path and self.path not in SHARED

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def cases(app: Litestar) -> list[Case]:
    """Every (method, path) the app answers, with its handler's policy (Litestar's automatic
    OPTIONS answers carry no data and no policy)."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(getattr(handler, "http_methods", ())):
                if method != "OPTIONS":
                    found.append(Case(method, route.path, dict(handler.opt)))
    return found


def _app_for_listing() -> Litestar:
    settings = Settings(database_url="sqlite://", secret_key=SECRET_KEY, base_url=BASE_URL, geocoder="none")
    return create_app(settings, Database(settings.database_url))


CASES = cases(_app_for_listing())


@pytest.fixture(scope="module", params=BOTH_DATABASES)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          sqlite_template: Path) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("matrix")
    url = empty_database(request, directory, sqlite_template)
    # Sign-in limits raised as for the whole suite: every principal calls every route from one client
    # here (tests/test_throttle.py checks the limits themselves).
    settings = Settings(database_url=url, secret_key=SECRET_KEY, base_url=BASE_URL, geocoder="none",
                        secure_cookies=True, photo_dir=str(directory / "photos"),
                        limit_login_client="1000 per minute")
    database = Database(url)
    app = create_app(settings, database)
    with time_machine.travel(MORNING, tick=False), TestClient(app=app, base_url=BASE_URL) as client:
        yield build(app, client, database, settings)
    database.dispose()


def expected(case: Case, who: Who) -> tuple[set[int], str]:
    """The statuses the policy allows for this cell, and why."""
    api = is_api_path(case.path)
    if case.opt.get("public"):
        return set(range(100, 500)), "public"
    if not who.credentials(case.path):
        return ({401}, "no bearer token") if api else ({303}, "not signed in")
    if who.role not in case.opt["roles"]:
        return {403}, "role not in the policy"
    if case.method in SAFE:
        if case.path in ALWAYS_404:
            return {404}, ALWAYS_404[case.path]
        if who.side == OWN or not case.has_ids:
            return {200}, "allowed"
        return {403, 404}, "another side's object"
    if who.side == OWN or not case.has_ids:  # no object to protect: like the own side
        if api:
            return {400, 404, 405, 415, 422}, "allowed; no such row"
        return {403}, "allowed; no CSRF token"
    return {400, 403, 404, 409, 422}, "another side's object, written"


def call(world: World, case: Case, who: Who):  # type: ignore[no-untyped-def]
    allowed_write = (case.method not in SAFE and not case.opt.get("public")
                     and who.credentials(case.path) and who.role in case.opt["roles"])
    across = allowed_write and who.side == OTHER and case.has_ids
    path = world.path(case.path, nowhere=allowed_write and not across, writing=case.method not in SAFE)
    if not allowed_write:
        return world.call(case.method, path, who)
    if is_api_path(case.path):
        return world.call(case.method, path, who, json={} if across else [])
    return world.call(case.method, path, who, with_csrf=across)


@pytest.mark.req("R3.2")
@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_route_answers_every_principal_as_its_policy_says(world: World, case: Case) -> None:
    wrong, leaked = [], []
    for who in world.people:
        response = call(world, case, who)
        statuses, why = expected(case, who)
        if response.status_code not in statuses:
            wrong.append(f"{who.name}: {response.status_code}, expected {sorted(statuses)[:6]} ({why}): "
                         f"{response.text[:160]!r}")
        elif why == "allowed; no CSRF token" and "security token" not in response.text:
            wrong.append(f"{who.name}: refused for another reason than the CSRF token: "
                         f"{response.text[:160]!r}")
        elif why == "not signed in" and not response.headers.get("location", "").startswith("/login"):
            wrong.append(f"{who.name}: 303 to {response.headers.get('location')!r}, not to sign in")
        may_see = who.side == OWN and who.role in STAFF_WHO_MAY_SEE_PHI
        if not may_see and any(c in response.text for c in CANARIES):
            leaked.append(f"{who.name}: {response.status_code}")
    assert not leaked, f"the PHI canary reached: {leaked}"
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("case", [c for c in CASES if c.has_ids and not c.opt.get("public")], ids=str)
def test_every_route_with_an_id_is_called_from_across_a_boundary(world: World, case: Case) -> None:
    """The object-level cells above are not vacuous: for each route with an id in its path, some
    principal on the other side holds a role the policy names."""
    assert any(w.side == OTHER and w.role in case.opt["roles"] for w in world.people), str(case)


def test_the_matrix_covers_every_role(world: World) -> None:
    held = {w.role for w in world.people if w.side == OWN}
    assert set(Role) <= held
    print(f"\naccess matrix: {len(CASES)} routes x {len(world.people)} principals = "
          f"{len(CASES) * len(world.people)} cells")


# --- R10.1: PHI reads are audited, one row per record shown; refusals leave one "fail" row -------

PHI_READS = [c for c in CASES if c.opt.get("phi") and c.method in SAFE]
ONE_RECORD = ("referral_id", "stop_id", "confirmation_id", "task_id", "request_id", "procedure_id")
CANARY_NAME = "Canary"  # the canary patient's given name: what any page about them shows


def first_own(world: World, case: Case) -> Who:
    return next(w for w in world.people if w.side == OWN and w.role in case.opt["roles"])


def rows_of(world: World, response) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    with world.database.reader() as db:
        return list(db.scalars(select(AuditEvent).where(
            AuditEvent.request_id == response.headers["x-request-id"]).order_by(AuditEvent.id)))


@pytest.mark.parametrize("case", [c for c in CASES if c.method == "GET" and not c.opt.get("public")
                                  and not c.opt.get("phi")], ids=str)
def test_a_route_that_shows_a_patient_declares_it(world: World, case: Case) -> None:
    """The PHI classification cannot fall behind: a page or answer that shows the canary patient
    to its own staff must carry `opt["phi"]` (and so be audited, below)."""
    for who in (w for w in world.people if w.side == OWN and w.role in case.opt["roles"]):
        response = world.call(case.method, world.path(case.path), who)
        assert CANARY_NAME not in response.text and CANARIES[0] not in response.text, (
            f"{case} shows the canary patient to {who.name} but declares no opt['phi']")


@pytest.mark.parametrize("case", PHI_READS, ids=str)
def test_every_phi_read_leaves_one_audit_row_per_record(world: World, case: Case) -> None:
    who = first_own(world, case)
    response = world.call(case.method, world.path(case.path), who, headers={"User-Agent": "matrix/1"})
    assert response.status_code == 200, response.text[:200]
    rows = rows_of(world, response)
    action, resource = case.opt["phi"]
    assert rows, f"{case}: no audit row"
    for row in rows:
        assert (row.action, row.resource, row.outcome) == (action, resource, "ok")
        assert (row.user_id, row.role, row.ip, row.user_agent) == (
            who.user_id, who.role, "testclient", "matrix/1")
        assert row.patient_id is not None and row.resource_id is not None
    records = [(row.resource_id, row.patient_id) for row in rows]
    assert len(records) == len(set(records)), f"{case}: a record audited twice: {records}"
    ids = re.findall(r"\{(\w+):int\}", case.path)
    if ids and ids[-1] in ONE_RECORD:
        last = ids[-1]
        assert records == [(str(world.ids[last]), records[0][1])], records


@pytest.mark.parametrize("case", PHI_READS, ids=str)
def test_every_refused_phi_read_leaves_one_fail_row(world: World, case: Case) -> None:
    refused = [w for w in world.people if not w.credentials(case.path)][:1]
    refused += [w for w in world.people if w.credentials(case.path) and w.role not in case.opt["roles"]][:1]
    if case.has_ids:  # across a boundary: another side's record
        refused += [w for w in world.people if w.side == OTHER and w.role in case.opt["roles"]][:1]
    for who in refused:
        response = world.call(case.method, world.path(case.path), who)
        assert response.status_code in (303, 401, 403, 404), (who.name, response.status_code)
        rows = rows_of(world, response)
        wanted = [(*case.opt["phi"], "fail", who.user_id)]
        assert [(r.action, r.resource, r.outcome, r.user_id) for r in rows] == wanted, (
            who.name, [(r.action, r.resource, r.outcome) for r in rows])
        assert rows[0].detail[:3] in ("401", "403", "404")


# --- R3.4: what a driver sees of a stop is an allowlist; the canary reaches no driver, no webhook --

DRIVER_STOP_FIELDS = {"stop_id", "seq", "eta", "window", "display_name", "language", "greeting", "address",
                      "floor", "elevator", "access_notes", "phone", "boxes", "box_type", "dietary",
                      "navigate_url", "status", "outcome", "confirmation_id", "undo_until"}


def test_the_drivers_stop_payload_is_exactly_the_allowlist(world: World) -> None:
    """Compared as a set: a field added to what drivers get fails here until it is agreed. The
    canary's payload carries none of its MRN, birth date or family name."""
    assert {f.name for f in dataclasses.fields(DriverStop)} == DRIVER_STOP_FIELDS
    with world.database.reader() as db:
        payload = dataclasses.asdict(driver_stop(db.get(Stop, world.ids["stop_id"])))  # type: ignore[arg-type]
    assert set(payload) == DRIVER_STOP_FIELDS
    text = json.dumps(payload, default=str)
    assert payload["display_name"] == "Canary B."
    assert not [c for c in (*CANARIES, "Bird", "1931") if c in text], text


def test_no_webhook_payload_carries_the_canary(world: World) -> None:
    """Every outbox row the world's referrals, deliveries and FHIR Tasks wrote: ids and statuses
    only (R9.5), never the canary's MRN, birth date or name."""
    with world.database.reader() as db:
        bodies = [json.dumps(p) for p in db.scalars(select(OutboxMessage.payload))]
    assert len(bodies) >= 3  # the canary's delivery, the FHIR referral, clinic 2's referral
    for body in bodies:
        assert not [c for c in (*CANARIES, CANARY_NAME, "Bird") if c in body], body


# --- R3.6: drivers have no list-all, search, bulk or export routes -------------------------------

DRIVER_QUERY_PARAMS = {"notice", "reason_for"}  # a page's own notices, never a search


def driver_cases() -> list[Case]:
    return [c for c in CASES if Role.driver in c.opt.get("roles", ())]


@pytest.mark.req("R3.6")
def test_drivers_have_no_list_all_search_or_export_routes(world: World) -> None:
    """Generated from the routes a driver may call: none is an export or search by its name or
    answer type, none takes a free query, and the ones without an id answer only the driver's own
    things (driver B's list does not show driver A's route). The staff's lists and exports answer
    a driver 403 (the matrix above)."""
    for case in driver_cases():
        words = set(re.split(r"[/{}.:_-]+", case.path.lower()))
        assert not words & {"export", "search", "all", "bulk", "csv", "pdf", "list"}, str(case)
        handler = handler_of(world, case)
        queries = {name for name, p in handler.parsed_fn_signature.parameters.items()
                   if name not in ("request", "db", "settings", "audit", "data", "body")
                   and f"{{{name}:" not in case.path and not isinstance(p.kwarg_definition, HeaderParameter)}
        assert queries <= DRIVER_QUERY_PARAMS, (str(case), queries)
    driver_b = next(w for w in world.people if w.name.startswith("driver B"))
    for case in driver_cases():
        if case.method == "GET" and not case.has_ids:
            page = world.call("GET", case.path, driver_b).text
            assert f"/driver/routes/{world.ids['route_id']}" not in page, str(case)
            assert CANARY_NAME not in page, str(case)
    for staff_list in ("/coordinator/referrals", "/coordinator/plans", "/api/v1/referrals",
                       f"/coordinator/plans/{world.ids['plan_id']}/export.csv", "/reports/pdf", "/fhir/Task"):
        driver_a = next(w for w in world.people if w.role == Role.driver and w.side == OWN)
        assert world.call("GET", staff_list, driver_a).status_code == 403, staff_list


# --- R3.7: no mass assignment through any JSON body ---------------------------------------------

EXTRAS = ("organization_id", "status", "id", "driver_id", "clinic_id", "stop_id", "patient_id", "user_id",
          "food_bank_id")
# Writes whose body the app reads only a named part of, so nothing else in it can land anywhere.
READS_ONLY_PART = {("PUT", "/fhir/Task/{task_id:int}"): "only status and statusReason (a cancellation)",
                   ("PATCH", "/fhir/Task/{task_id:int}"): "only the JSON Patch replacing /status",
                   ("POST", "/fhir/auth/token"): "an OAuth form: grant, scope and the signed assertion",
                   ("PUT", "/api/v1/stops/{stop_id:int}/confirmations/photo"): "an image, not JSON"}


def valid_bodies(world: World) -> dict[tuple[str, str], tuple[Any, dict[str, str]]]:
    """A body each JSON write would accept, with the headers it needs."""
    occurred = {"outcome": "delivered", "occurred_at": MORNING.isoformat()}
    return {("POST", "/api/v1/referrals"): (referral_body(patient__mrn="MASS-1"), {}),
            ("POST", "/api/v1/referrals/{referral_id:int}/receipt"): ({"received": True}, {}),
            ("POST", "/api/v1/plans"): ({"date": MORNING.date().isoformat(), "time_limit_s": 1}, {}),
            ("POST", "/api/v1/stops/{stop_id:int}/confirmations"): (occurred, {"Idempotency-Key": "mass-1"}),
            ("POST", "/fhir/Bundle"): (sample_bundle(), FHIR_JSON),
            ("POST", "/fhir"): (sample_bundle(), FHIR_JSON)}


def row_counts(world: World) -> dict[str, int]:
    with world.database.reader() as db:
        return {t.name: db.scalar(select(func.count()).select_from(t)) or 0
                for t in Base.metadata.sorted_tables
                if t.name not in ("audit_events", "user_sessions", "api_tokens")}


@pytest.mark.req("R3.7")
def test_no_json_write_takes_a_field_it_does_not_declare(world: World) -> None:
    """Every API write that takes a body (found from the handlers' signatures) refuses each of
    organization_id, status, id, driver_id, clinic_id, stop_id, patient_id, user_id, food_bank_id
    added to a body it would otherwise accept: 4xx naming the field, or, where the field is its
    own (a referral's clinic_id), refused as another clinic's; no row anywhere changes."""
    bodies = valid_bodies(world)
    others = {"clinic_id": world.program.clinic2_id, "organization_id": world.program.clinic2_id,
              "stop_id": world.ids["other_stop_id"], "driver_id": world.ids["other_driver_id"],
              "food_bank_id": world.ids["other_food_bank_id"]}
    writes = [c for c in CASES if c.method not in SAFE and is_api_path(c.path) and not c.opt.get("public")
              and {"data", "body"} & set(handler_of(world, c).parsed_fn_signature.parameters)]
    assert {(c.method, c.path) for c in writes} <= set(bodies) | set(READS_ONLY_PART), (
        "a JSON write without a valid body here: add it to valid_bodies")
    checked = 0
    for case in writes:
        if (case.method, case.path) in READS_ONLY_PART:
            continue
        body, headers = bodies[(case.method, case.path)]
        who = first_own(world, case)
        before = row_counts(world)
        for key in EXTRAS:  # another side's ids where there is one: clinic 2, driver B's stop
            sent = {**body, key: "amended" if key == "status" else others.get(key, 1)}
            response = world.call(case.method, world.path(case.path), who, content=json.dumps(sent).encode(),
                                  headers={"content-type": "application/json",
                                           **{k.lower(): v for k, v in headers.items()}})
            assert 400 <= response.status_code < 500, (str(case), key, response.status_code,
                                                       response.text[:200])
            assert key in response.text or response.status_code in (403, 404), (str(case), key, response.text)
            checked += 1
        assert row_counts(world) == before, str(case)
    assert checked >= 5 * len(EXTRAS)


def handler_of(world: World, case: Case):  # type: ignore[no-untyped-def]
    return next(h for r in world.app.routes for h in getattr(r, "route_handlers", [])
                if r.path == case.path and case.method in h.http_methods)
