"""One audit writer: every row names its actor, role, organization, where from and which request."""

from __future__ import annotations

from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import AuditEvent, Role, User
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from tests.builders import PASSWORD, Program, api_token


def test_every_response_carries_a_fresh_request_id(client: TestClient) -> None:
    first, second = client.get("/login"), client.get("/login", headers={"X-Request-ID": "mine"})
    assert len(first.headers["X-Request-ID"]) == 32
    assert second.headers["X-Request-ID"] not in (first.headers["X-Request-ID"], "mine")


def test_a_sign_in_is_audited_with_role_organization_and_request(client: TestClient, program: Program,
                                                                 database: Database) -> None:
    ok = client.post("/login", data={"email": program.clinic1, "password": PASSWORD},
                     headers={"User-Agent": "phone/1.0"}, follow_redirects=False)
    refused = client.post("/login", data={"email": program.clinic1, "password": "wrong password"},
                          follow_redirects=False)
    with database.reader() as db:
        staff = db.scalar(select(User).where(User.email == program.clinic1))
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(r.action, r.outcome, r.user_id, r.role, r.organization_id, r.resource) for r in rows] == [
        ("login", "ok", staff.id, Role.clinic_staff, program.clinic1_id, "session"),
        ("fail", "denied", staff.id, Role.clinic_staff, program.clinic1_id, "session")]
    assert [r.request_id for r in rows] == [ok.headers["X-Request-ID"], refused.headers["X-Request-ID"]]
    assert rows[0].user_agent == "phone/1.0" and rows[0].ip


def test_publishing_over_the_api_is_audited_under_the_coordinator(client: TestClient, program: Program,
                                                                  database: Database, worker: Runner) -> None:
    from tests.day_builders import DAY, make_day
    from tests.test_plan_api import wait_done

    with database.writer() as db:
        make_day(db, program, stops=4, drivers=1, capacity=8)
        headers = api_token(db, program.coordinator)
        db.commit()
    plan_id = client.post("/api/v1/plans", json={"date": DAY.isoformat(), "time_limit_s": 1},
                          headers=headers).json()["id"]
    wait_done(client, headers, plan_id)
    published = client.post(f"/api/v1/plans/{plan_id}/publish", headers=headers)
    assert published.status_code == 200
    with database.reader() as db:
        coordinator = db.scalar(select(User).where(User.email == program.coordinator))
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == "publish")).all()
    assert len(rows) == 1
    assert (rows[0].user_id, rows[0].client_id, rows[0].role, rows[0].organization_id) == (
        coordinator.id, None, Role.coordinator, program.food_bank_id)
    assert rows[0].request_id == published.headers["X-Request-ID"]
