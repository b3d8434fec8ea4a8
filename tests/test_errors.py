"""No dead ends: bad addresses and bodies get a 4xx that says what is wrong, people get pages with
their navigation, API clients get JSON, and a 500 shows a request id, never a trace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from delivery.models import Plan, Role
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import Program, api_token, password_hash, referral_body, sign_in
from tests.conftest import BASE_URL

HUGE = "1" + "0" * 22  # a 23-digit id: overflowed the database driver before ids were bounded
DRIVER = "driver@example.org"
BENEFITS = "benefits@example.org"


def _int_routes(app: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path with every int parameter set to HUGE, roles allowed) for each handler."""
    found = []
    for route in app.routes:
        if ":int}" not in route.path:
            continue
        path = re.sub(r"\{\w+:int\}", HUGE, route.path)
        path = re.sub(r"\{\w+:str\}", "x", path)
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(set(handler.http_methods) - {"OPTIONS", "HEAD"}):
                found.append((method, path, tuple(handler.opt.get("roles", ()))))
    return found


@pytest.fixture
def people(database: Database, program: Program) -> dict[str, str]:
    """Who to ask as, per role: the API by bearer token, pages by signing in."""
    with database.writer() as db:
        driver = auth.create_user(db, email=DRIVER, display_name="Dee Driver",
                                  memberships=[(program.food_bank_id, Role.driver)])
        driver.password_hash = password_hash()
        auth.create_user(db, email=BENEFITS, display_name="Bea Benefits", password_hash=password_hash(),
                         memberships=[(program.food_bank_id, Role.benefits)])
        tokens = {"coordinator": api_token(db, program.coordinator)["Authorization"],
                  "clinic_staff": api_token(db, program.clinic1)["Authorization"],
                  "driver": api_token(db, DRIVER)["Authorization"]}  # the confirmation API
        db.commit()
    return tokens


def test_every_int_path_parameter_is_bounded_like_body_ids(app, program: Program,
                                                            people: dict[str, str]) -> None:
    """Each route with an int in its path answers a 23-digit id with a 400 naming the parameter."""
    routes = _int_routes(app)
    assert len(routes) > 20  # the enumeration really found the app's routes
    emails = {Role.coordinator: program.coordinator, Role.admin: program.admin,
              Role.clinic_staff: program.clinic1, Role.driver: DRIVER, Role.benefits: BENEFITS}
    for method, path, roles in routes:
        role = roles[0]
        with TestClient(app=app, base_url=BASE_URL) as client:
            if path.startswith(("/api/", "/fhir/")):
                # the ids are the question here, not the confirmation API's key
                headers = {"Authorization": people[role], "Idempotency-Key": "k-1"}
            else:
                headers = {"X-CSRF-Token": sign_in(client, emails[role])}
            answer = client.request(method, path, headers=headers, follow_redirects=False)
        assert answer.status_code == 400, (method, path, answer.status_code)
        if path.startswith("/api/"):
            assert answer.json()["extra"][0]["source"] == "path", (method, path)
        elif path.startswith("/fhir/"):  # FHIR's own error shape, naming the parameter too
            assert "path parameter" in answer.json()["issue"][0]["diagnostics"], (method, path)
        else:
            assert "cannot exist" in answer.text and "<nav" in answer.text, (method, path)


def test_json_nested_100000_levels_is_refused_with_a_reason(client: TestClient,
                                                             people: dict[str, str]) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    headers = {"Authorization": people["clinic_staff"], "Content-Type": "application/json"}
    answer = client.post("/api/v1/referrals", content=deep, headers=headers)
    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["detail"]


@pytest.mark.parametrize("date", ["0001-01-01", "1800-01-01", "9999-12-31"])
def test_a_day_far_from_today_is_a_404_page_and_writes_nothing(client: TestClient, program: Program,
                                                                database: Database, date: str) -> None:
    sign_in(client, program.coordinator)
    answer = client.get(f"/coordinator/plans/{date}")
    assert answer.status_code == 404
    assert "within a year of today" in answer.text and 'href="/coordinator/plans"' in answer.text
    with database.reader() as db:
        assert db.scalar(select(func.count(Plan.id))) == 0


def test_a_day_far_from_today_is_refused_over_the_api(client: TestClient, people: dict[str, str]) -> None:
    answer = client.post("/api/v1/plans", json={"date": "0001-01-01"},
                         headers={"Authorization": people["coordinator"]})
    assert answer.status_code == 422
    assert answer.json()["extra"] == {"field": "date", "code": "outside_window"}


def test_the_openapi_document_declares_every_error_and_its_security_scheme(client: TestClient,
                                                                            program: Program) -> None:
    sign_in(client, program.coordinator)
    document = client.get("/schema/openapi.json").json()
    assert document["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API token from `delivery token create --user EMAIL`."}
    expected = {("post", "/api/v1/referrals"): {"409", "422"}, ("get", "/api/v1/referrals"): {"422"},
                ("post", "/api/v1/referrals/{referral_id}/receipt"): {"404", "422"},
                ("get", "/api/v1/referrals/{referral_id}"): {"404"},
                ("post", "/api/v1/plans"): {"404", "409", "422"},
                ("get", "/api/v1/plans/{plan_id}"): {"404"},
                ("post", "/api/v1/plans/{plan_id}/publish"): {"404", "409"},
                ("post", "/api/v1/plans/{plan_id}/cancel"): {"404"},
                ("post", "/api/v1/stops/{stop_id}/confirmations"): {"404", "409", "410", "422"},
                ("put", "/api/v1/stops/{stop_id}/confirmations/photo"): {"404", "413", "415"},
                ("get", "/api/v1/allocation"): {"404", "422"}}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            assert {"400", "401", "403", "500"} <= declared, (method, path, declared)
            assert expected.pop((method, path)) <= declared, (method, path, declared)
            assert operation["security"] == [{"BearerToken": []}]
    assert expected == {}  # every operation named above exists


# --- error pages for people, JSON for systems -----------------------------------------------------


def test_a_persons_404_and_403_are_pages_with_their_navigation(client: TestClient, program: Program) -> None:
    sign_in(client, program.clinic1)
    missing = client.get("/clinic/referrals/999999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "No referral 999999." in missing.text
    assert 'href="/clinic/referrals/new"' in missing.text  # the clinic's navigation
    forbidden = client.get("/coordinator/plans")
    assert forbidden.status_code == 403 and forbidden.headers["content-type"].startswith("text/html")
    assert "does not allow" in forbidden.text and 'href="/clinic"' in forbidden.text


def test_api_clients_keep_json_errors(client: TestClient, people: dict[str, str]) -> None:
    answer = client.get("/api/v1/referrals/999999", headers={"Authorization": people["clinic_staff"]})
    assert answer.status_code == 404
    assert answer.json() == {"status_code": 404, "detail": "No referral 999999.", "extra": None,
                             "request_id": answer.headers["X-Request-ID"]}


def test_a_refusal_a_person_can_fix_says_field_and_code_over_the_api(client: TestClient,
                                                                       people: dict[str, str]) -> None:
    """A service's FieldError reaches the client as 422 with its field and code (one mapping)."""
    answer = client.post("/api/v1/referrals", json=referral_body(clinic_id=999),
                         headers={"Authorization": people["clinic_staff"]})
    assert answer.status_code == 422
    assert answer.json()["extra"] == {"field": "clinic_id", "code": "refused"}
    assert answer.json()["detail"] == "You do not refer for clinic 999."


@pytest.fixture
def broken_app(tmp_path: Path, settings: Settings):  # type: ignore[no-untyped-def]
    """The app on a database file that has no tables: every query fails, as on a broken disk."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    database = Database(url)
    yield create_app(msgspec.structs.replace(settings, database_url=url), database)
    database.dispose()


def test_a_500_shows_a_request_id_and_never_a_trace(broken_app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app=broken_app, base_url=BASE_URL) as client:
        client.cookies.set("__Host-session", "whatever")
        person = client.get("/clinic", headers={"Accept": "text/html"}, follow_redirects=False)
        system = client.get("/api/v1/referrals/1", headers={"Authorization": "Bearer abc"})
    assert person.status_code == 500 and person.headers["content-type"].startswith("text/html")
    request_id = person.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id) and request_id in person.text
    assert "Something went wrong on our side" in person.text
    for answer in (person, system):
        assert "Traceback" not in answer.text and "OperationalError" not in answer.text
        assert "no such table" not in answer.text
    assert system.status_code == 500
    assert system.json()["request_id"] == system.headers["X-Request-ID"] != request_id


def test_a_persons_409_is_a_page_and_a_systems_is_json(app) -> None:  # type: ignore[no-untyped-def]
    """The one mapping: a conflict a service refuses becomes a page for a person, JSON for a system."""
    from litestar import Request
    from litestar.response import Template

    from delivery.platform.auth import Principal
    from delivery.platform.errors import ConflictError
    from delivery.web.errors import field_error

    def request(path: str, headers: list[tuple[bytes, bytes]]) -> Request:
        me = Principal(user_id=1, email="c@example.org", display_name="C", roles={1: Role.coordinator})
        return Request({"type": "http", "method": "POST", "path": path, "headers": headers,  # type: ignore[typeddict-item]
                        "query_string": b"", "app": app, "user": me, "state": {"request_id": "r1"},
                        "server": ("testserver", 443), "scheme": "https", "root_path": ""})

    refused = ConflictError("The planner is working on this day right now.", "version", code="plan_busy")
    page = field_error(request("/coordinator/plans/1/publish", [(b"accept", b"text/html")]), refused)
    assert isinstance(page, Template) and page.status_code == 409 and page.template_name == "error.html"
    assert page.context["sentence"] == "The planner is working on this day right now."
    assert page.context["nav"] == "coordinator/_nav.html" and page.context["request_id"] == ""
    system = field_error(request("/api/v1/plans/1/publish", []), refused)
    assert system.status_code == 409 and system.headers["X-Request-ID"] == "r1"
    assert system.content.extra == {"field": "version", "code": "plan_busy"}  # type: ignore[attr-defined]
