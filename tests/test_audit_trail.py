"""The audit trail is append-only on both databases (R10.3), an admin reviews and exports it by
patient, person and day (R10.5's review part), and no secret or PHI reaches a log line (the
handler of tests/log_guard.py, on for every test)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import uuid

import pytest
import sqlalchemy as sa
import time_machine
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import AuditEvent, User
from delivery.platform import audit
from delivery.platform.db import Database
from tests.builders import PASSWORD, Program, sign_in
from tests.log_guard import LeakCatcher, watch
from tests.plan_builders import CANARY

ALL_DAY = dt.timedelta(hours=10)


def one_row(database: Database) -> int:
    with database.writer() as db:
        row = audit.record(db, audit.AuditContext.for_command("test"), "R", "patient", 1, patient_id=1)
        db.commit()
        return row.id


@pytest.mark.req("R10.3")
def test_audit_rows_cannot_be_changed_or_deleted(database: Database, database_url: str) -> None:
    """The database itself refuses: raw SQL, the ORM, a bulk statement; adding rows still works.
    On PostgreSQL the app's role, set up with `app_role_grants`, is refused by its privileges too."""
    row_id = one_row(database)
    statements = [sa.update(AuditEvent).where(AuditEvent.id == row_id).values(outcome="ok, honest"),
                  sa.delete(AuditEvent).where(AuditEvent.id == row_id),
                  sa.delete(AuditEvent)]
    for statement in statements:
        with database.writer() as db, pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.execute(statement)
    with database.writer() as db:
        db.delete(db.get(AuditEvent, row_id))
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.flush()
    one_row(database)
    with database.reader() as db:
        assert db.scalars(select(AuditEvent.outcome).order_by(AuditEvent.id)).all() == ["ok", "ok"]
    if database_url.startswith("postgresql"):
        app_role_is_refused(database_url)


def app_role_is_refused(url: str) -> None:
    """A role granted what `app_role_grants` says adds and reads audit rows, and its privileges
    refuse UPDATE, DELETE and TRUNCATE (before the trigger, which refuses the owner too)."""
    engine = sa.create_engine(url)
    role = f"delivery_app_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE ROLE "{role}" NOLOGIN'))
            for statement in audit.app_role_grants(role):
                conn.execute(sa.text(statement))
        with engine.connect() as conn:
            conn.execute(sa.text(f'SET ROLE "{role}"'))
            conn.execute(sa.text("INSERT INTO audit_events (at, action, resource, outcome) "
                                 "VALUES (now(), 'R', 'patient', 'ok')"))
            assert conn.scalar(sa.text("SELECT count(*) FROM audit_events")) >= 1
            for statement in ("UPDATE audit_events SET outcome = 'x'", "DELETE FROM audit_events",
                              "TRUNCATE audit_events"):
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), conn.begin_nested():
                    conn.execute(sa.text(statement))
            conn.rollback()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        engine.dispose()


def rows_on(database: Database, program: Program, when: dt.datetime, email: str, patient_id: int | None,
            *, count: int = 1, detail: str | None = None, agent: str | None = None) -> None:
    with database.writer() as db, time_machine.travel(when, tick=False):
        user = db.scalar(select(User).where(User.email == email))
        ctx = audit.AuditContext(user_id=user.id, role="coordinator", organization_id=program.food_bank_id,
                                 ip="10.0.0.7", user_agent=agent, request_id=uuid.uuid4().hex)
        for _ in range(count):
            audit.record(db, ctx, "R", "referral", 5, patient_id=patient_id, detail=detail)
        db.commit()


def shown(page: str) -> int:
    return page.count("<tr>") - 1  # the header row


def test_an_admin_reviews_and_exports_the_trail_by_patient_person_and_day(
        client: TestClient, database: Database, program: Program) -> None:
    day = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)
    rows_on(database, program, day, program.coordinator, 701, count=3)
    rows_on(database, program, day + dt.timedelta(days=1), program.clinic1, 702,
            detail="=HYPERLINK(\"http://evil.example\")", agent="+cmd|' /C calc'!A0")
    rows_on(database, program, day + dt.timedelta(days=2), program.coordinator, 703, count=55)
    with database.writer() as db:  # another program's row never shows
        audit.record(db, audit.AuditContext(user_id=None, client_id="elsewhere", organization_id=10**6),
                     "R", "referral", 9, patient_id=10**6)
        db.commit()
    sign_in(client, program.admin)

    assert shown(client.get("/admin/audit?patient=701").text) == 3
    by_person = client.get("/admin/audit", params={"user": program.clinic1.upper()})
    assert shown(by_person.text) == 1 and "702" in by_person.text
    days = client.get("/admin/audit?since=2026-11-02&until=2026-11-03")
    assert shown(days.text) == 4 and "4 rows" in days.text
    newest = client.get("/admin/audit?patient=703")
    assert "55 rows, page 1 of 2" in newest.text and shown(newest.text) == 50
    older = client.get("/admin/audit?patient=703&page=2")
    assert shown(older.text) == 5 and "Newer" in older.text
    assert "elsewhere" not in client.get("/admin/audit?page=2").text + client.get("/admin/audit").text
    unknown = client.get("/admin/audit?user=nobody@example.org")
    assert "No account has the email nobody@example.org" in unknown.text and shown(unknown.text) == -1
    assert client.get("/admin/audit?patient=-1").status_code == 400

    export = client.get("/admin/audit.csv?since=2026-11-03&until=2026-11-03")
    assert export.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(export.text)))
    assert table[0] == list(audit.EXPORT_COLUMNS) and len(table) == 2
    row = dict(zip(table[0], table[1], strict=True))
    assert row["detail"] == "'=HYPERLINK(\"http://evil.example\")"  # formula-safe
    assert row["user_agent"].startswith("'+cmd") and row["patient_id"] == "702"
    assert row["at_utc"] == "2026-11-03T08:00:00.000000+00:00" and row["ip"] == "10.0.0.7"

    with database.reader() as db:
        admin_id = db.scalar(select(User.id).where(User.email == program.admin))
        reviews = db.scalars(select(AuditEvent).where(AuditEvent.resource == "audit_events")).all()
    assert [r.action for r in reviews] == ["R"] * 8 + ["E"]  # the 400 reached no handler
    assert {r.user_id for r in reviews} == {admin_id}
    assert "since=2026-11-03" in reviews[-1].detail


def test_staff_other_than_admins_cannot_read_the_trail(client: TestClient, program: Program) -> None:
    for email in (program.coordinator, program.clinic1):
        sign_in(client, email)
        assert client.get("/admin/audit").status_code == 403
        assert client.get("/admin/audit.csv").status_code == 403


def test_the_log_guard_catches_phi_and_secrets(no_secrets_in_logs: LeakCatcher) -> None:
    """The handler every test runs with really fails on the canary, the password, a bearer header
    and a token the test was given, at any level, in the message or its arguments."""
    log = logging.getLogger("delivery.anything")
    token = watch("tok_" + uuid.uuid4().hex)
    log.warning("patient %s", CANARY)
    log.error("login with %r", PASSWORD)
    log.warning("headers: Authorization: Bearer abcdefghijklmnopqrstuvwxyz")
    log.warning("issued %s", token)
    logging.getLogger("litestar").error("an exception naming %s", CANARY)
    log.warning("patient 17 (no PHI here)")
    caught, no_secrets_in_logs.caught[:] = list(no_secrets_in_logs.caught), []
    assert len(caught) == 5
