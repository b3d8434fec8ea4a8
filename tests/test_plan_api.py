"""The plan contract over HTTP for coordinators' systems: plan a day (a worker solves it), read it,
publish it; refused for clinic tokens, other programs' plans, and a second solve while one runs."""

from __future__ import annotations

import time

import pytest
from litestar.testing import TestClient

from delivery.models import Organization, OrganizationKind, Plan
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from delivery.platform.settings import Settings
from tests.builders import Program, api_token
from tests.day_builders import DAY, make_day
from tests.plan_checks import stored_check


def wait_done(client: TestClient, headers: dict[str, str], plan_id: int, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/plans/{plan_id}", headers=headers).json()
        if body["job_status"] not in ("queued", "running"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"plan {plan_id} still running after {timeout} s")


@pytest.fixture
def coordinator(database: Database, program: Program) -> dict[str, str]:
    with database.writer() as db:
        make_day(db, program, stops=12, drivers=2, capacity=8)
        headers = api_token(db, program.coordinator)
        db.commit()
    return headers


def test_a_coordinator_plans_a_day_over_the_api_and_publishes_it(
        client: TestClient, coordinator: dict[str, str], database: Database, settings: Settings,
        worker: Runner) -> None:
    ask = {"date": DAY.isoformat(), "time_limit_s": 1}
    queued = client.post("/api/v1/plans", json=ask, headers=coordinator)
    assert queued.status_code == 202, queued.text
    plan_id = queued.json()["id"]

    again = client.post("/api/v1/plans", json=ask, headers=coordinator)
    assert again.status_code == 409
    assert "already being planned" in again.json()["detail"]

    body = wait_done(client, coordinator, plan_id)
    assert body["job_status"] == "done", body
    assert body["status"] == "planned"
    routed = [s for r in body["routes"] for s in r["stops"]]
    assert len(routed) + len(body["unassigned"]) == 12
    assert all(u["reason"] for u in body["unassigned"])
    assert all(s["status"] == "pending" and len(s["eta"]) == 5 for s in routed)
    assert {r["driver"]["email"] for r in body["routes"]} <= {"driver1@example.org", "driver2@example.org"}
    with database.reader() as db:
        violations, _ = stored_check(db, db.get(Plan, plan_id), settings)
    assert violations == []

    published = client.post(f"/api/v1/plans/{plan_id}/publish", headers=coordinator)
    assert published.status_code == 200, published.text
    links = [r["link"] for r in published.json()["routes"]]
    assert links and all(link.startswith(f"{settings.base_url}/r/") for link in links)
    assert client.get(f"/api/v1/plans/{plan_id}", headers=coordinator).json()["status"] == "published"


def test_clinic_tokens_and_other_programs_are_refused(
        client: TestClient, coordinator: dict[str, str], database: Database, program: Program) -> None:
    with database.writer() as db:
        clinic = api_token(db, program.clinic1)
        other = Organization(name="Other Food Bank", kind=OrganizationKind.food_bank, delivery_weekday=1)
        db.add(other)
        db.flush()
        foreign = Plan(food_bank_id=other.id, date=DAY)
        db.add(foreign)
        db.commit()
        foreign_id = foreign.id
    assert client.post("/api/v1/plans", json={"date": DAY.isoformat()}, headers=clinic).status_code == 403
    assert client.get(f"/api/v1/plans/{foreign_id}", headers=clinic).status_code == 403
    assert client.get(f"/api/v1/plans/{foreign_id}", headers=coordinator).status_code == 404
    assert client.post(f"/api/v1/plans/{foreign_id}/publish", headers=coordinator).status_code == 404
    assert client.post("/api/v1/plans", json={"date": DAY.isoformat(), "time_limit_s": 9999},
                       headers=coordinator).status_code == 400
    assert client.get(f"/api/v1/plans/{foreign_id}").status_code == 401


def test_publishing_a_day_never_planned_is_a_conflict(client: TestClient, coordinator: dict[str, str],
                                                      database: Database, program: Program) -> None:
    with database.writer() as db:
        plan = Plan(food_bank_id=program.food_bank_id, date=DAY)
        db.add(plan)
        db.commit()
    answer = client.post(f"/api/v1/plans/{plan.id}/publish", headers=coordinator)
    assert answer.status_code == 409
    assert "Plan the day" in answer.json()["detail"]
