"""Hostile input (R4.2, R4.4), generated from the app itself so a route added later is covered: the
OpenAPI request schemas are closed and bounded, and every route that reads a body refuses a wrong
Content-Type with 415 and a body over its limit with 413."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from delivery.models import Role
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.web.app import MAX_BODY_BYTES
from delivery.web.bodies import accepted_types
from delivery.web.security import is_api_path
from tests.builders import Program, api_token, password_hash, sign_in

BOUNDED_FORMATS = {"date", "date-time", "time", "uuid"}  # a fixed shape is a bound


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def problems(doc: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]) -> list[str]:
    """What makes this request schema open or unbounded, walking every nested schema once."""
    ref = schema.get("$ref")
    if ref:
        if ref in seen:
            return []
        seen.add(ref)
        return problems(doc, _resolve(doc, schema), ref.rsplit("/", 1)[-1], seen)
    found = []
    for key in ("oneOf", "anyOf", "allOf"):
        for n, part in enumerate(schema.get(key, [])):
            # A bound written beside oneOf (Litestar's Optional) holds for its string branch.
            merged = {**{k: v for k, v in schema.items() if k not in ("oneOf", "anyOf", "allOf")}, **part}
            found += problems(doc, merged, f"{where}.{key}[{n}]", seen)
    kind = schema.get("type")
    if kind == "object":
        if schema.get("additionalProperties") is not False:
            found.append(f"{where}: additionalProperties is not false")
        for name, sub in schema.get("properties", {}).items():
            found += problems(doc, sub, f"{where}.{name}", seen)
    elif kind == "array":
        if "maxItems" not in schema:
            found.append(f"{where}: array without maxItems")
        found += problems(doc, schema.get("items", {}), f"{where}[]", seen)
    elif kind == "string" and "enum" not in schema and "const" not in schema:
        if "maxLength" not in schema and schema.get("format") not in BOUNDED_FORMATS:
            found.append(f"{where}: string without maxLength")
    elif kind == "integer" and ("minimum" not in schema or "maximum" not in schema):
        found.append(f"{where}: integer without minimum and maximum")
    return found


@pytest.fixture
def openapi(app: Litestar) -> dict[str, Any]:
    return app.openapi_schema.to_schema()


@pytest.mark.req("R4.2")
def test_every_request_schema_is_closed_and_bounded(openapi: dict[str, Any]) -> None:
    found, bodies, parameters = [], 0, 0
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                parameters += 1
                found += problems(openapi, parameter["schema"], f"{method} {path} {parameter['name']}", set())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                bodies += 1
                found += problems(openapi, media["schema"], f"{method} {path} body", set())
    assert bodies >= 4 and parameters >= 10  # the walk really saw the API
    assert found == []


def test_the_closed_schemas_are_exactly_the_structs_that_forbid_unknown_fields(
        openapi: dict[str, Any]) -> None:
    """The patch for litestar#4575 says no more and no less than msgspec enforces."""
    def structs(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in structs(sub))]

    by_name = {cls.__name__: cls for cls in structs(msgspec.Struct) if cls.__module__.startswith("delivery.")}
    for name, schema in openapi["components"]["schemas"].items():
        if schema.get("type") != "object" or name not in by_name:
            continue
        forbids = msgspec.inspect.type_info(by_name[name]).forbid_unknown_fields  # type: ignore[attr-defined]
        assert (schema.get("additionalProperties") is False) == forbids, name


@pytest.fixture
def callers(client: TestClient, database: Database, program: Program) -> dict[str, dict[str, dict[str, str]]]:
    """For each role: headers for the API (a bearer token) and for pages (a session and its CSRF token)."""
    with database.writer() as db:
        auth.create_user(db, email="driver@example.org", display_name="Dana Driver",
                         memberships=[(program.food_bank_id, Role.driver)]).password_hash = password_hash()
        db.commit()
        emails = {Role.admin: program.admin, Role.coordinator: program.coordinator,
                  Role.clinic_staff: program.clinic1, Role.driver: "driver@example.org"}
        tokens = {role: api_token(db, email) for role, email in emails.items()}
        db.commit()
    return {"api": tokens, "emails": emails}  # type: ignore[dict-item]


def _path(path: str) -> str:
    path = "/".join("1" if ":" in part else part for part in path.split("/"))
    return path.replace("{", "").replace("}", "")


@pytest.mark.req("R4.4")
def test_every_route_that_reads_a_body_refuses_a_wrong_type_with_415_and_too_much_with_413(
        app: Litestar, client: TestClient, callers: dict[str, Any]) -> None:
    checked: list[str] = []
    signed_in_as = None
    csrf = ""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            accepted = accepted_types(handler)
            role = next((r for r in handler.opt.get("roles", ()) if r in callers["emails"]), None)
            if accepted is None or (role is None and not handler.opt.get("public")):
                continue
            path = _path(route.path)
            if is_api_path(route.path):
                headers = dict(callers["api"][role]) if role else {}
            else:
                if role and signed_in_as != role:
                    client.cookies.clear()
                    csrf, signed_in_as = sign_in(client, callers["emails"][role]), role
                headers = {"X-CSRF-Token": csrf} if role else {}
            limit = handler.resolve_request_max_body_size() or MAX_BODY_BYTES
            for method in set(handler.http_methods) - {"GET", "HEAD", "OPTIONS"}:
                wrong = client.request(method, path, content=b"x=1", follow_redirects=False,
                                       headers={**headers, "Content-Type": "text/plain"})
                assert wrong.status_code == 415, (method, route.path, wrong.status_code, wrong.text[:200])
                big = client.request(method, path, content=b"x" * (limit + 1), follow_redirects=False,
                                     headers={**headers, "Content-Type": accepted[0]})
                assert big.status_code == 413, (method, route.path, big.status_code, big.text[:200])
                checked.append(f"{method} {route.path}")
    assert len(checked) > 30, checked
    assert "POST /api/v1/stops/{stop_id:int}/confirmations" in checked
    limits = {f"{m} {r.path}": h.resolve_request_max_body_size() for r in app.routes
              for h in getattr(r, "route_handlers", []) for m in h.http_methods}
    assert limits["POST /api/v1/stops/{stop_id:int}/confirmations"] <= 64 * 1024
    assert 0 < limits["PUT /api/v1/stops/{stop_id:int}/confirmations/photo"] <= 5 * 1024 * 1024
