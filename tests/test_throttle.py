"""Brute force and abuse (R1.4, R6.1–R6.4): sign-in, reset, link and token requests limited per
account and per client, the API per principal, each limiter on its own store, the limits held in the
database so two app processes share them, and a report PDF once at a time per person."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator

import msgspec
import pytest
from limits import parse
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.loop.fhir import smart
from delivery.models import AuditEvent, RateLimitCounter, User
from delivery.platform import resets, throttle
from delivery.platform.audit import AuditContext
from delivery.platform.clock import FixedClock
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import PASSWORD, Program, api_token, clock_on, sign_in
from tests.conftest import BASE_URL

DAY = dt.date(2026, 3, 3)
WRONG = "not the password at all"


def limited(settings: Settings, clock: FixedClock, **limits: object) -> Settings:
    return msgspec.structs.replace(settings, clock=clock, **limits)


@pytest.fixture
def clock() -> FixedClock:
    return clock_on(DAY)


def _client(settings: Settings, database: Database) -> TestClient:
    return TestClient(app=create_app(settings, database), base_url=BASE_URL)


@pytest.fixture
def strict(settings: Settings, clock: FixedClock, database: Database,
           program: Program) -> Iterator[TestClient]:
    """Three failed sign-ins per account, eight attempts per client, three API calls per principal."""
    limits = limited(settings, clock, limit_login_account="3 per 15 minutes",
                     limit_login_client="8 per 15 minutes", limit_api="3 per minute")
    with _client(limits, database) as client:
        yield client


def login(client: TestClient, email: str, password: str, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/login", data={"email": email, "password": password}, headers=headers,
                       follow_redirects=False)


def assert_refused(response, window_s: int) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429, response.text
    assert 0 < int(response.headers["Retry-After"]) <= window_s
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Limit"]) > 0


@pytest.mark.req("R1.4")
def test_an_account_locks_after_its_failed_sign_ins_and_the_reset_link_lets_its_owner_back(
        strict: TestClient, program: Program, database: Database, clock: FixedClock) -> None:
    for _ in range(3):
        assert login(strict, program.coordinator, WRONG).status_code == 400
    # The right password is not even checked now, and another account is not affected.
    locked = login(strict, program.coordinator, PASSWORD)
    assert_refused(locked, 15 * 60)
    assert "Too many failed sign-ins for this account" in locked.text
    assert login(strict, program.clinic1, PASSWORD).status_code == 303

    # The documented recovery path: a reset link (mailed to the owner) sets a new password, which
    # lifts the lock at once.
    with database.writer() as db:
        link = resets.request_reset(db, AuditContext(), program.coordinator, clock.now())
        db.commit()
    assert link is not None
    new_password = "a brand new passphrase for casey"
    reset = strict.post(f"/reset/{link.raw}", data={"password": new_password}, follow_redirects=False)
    assert reset.status_code == 303
    assert login(strict, program.coordinator, new_password).status_code == 303
    # The client's own allowance is eight attempts of any kind, whatever the account.
    assert login(strict, program.clinic2, PASSWORD).status_code == 303
    assert_refused(login(strict, program.admin, PASSWORD), 15 * 60)

    with database.reader() as db:  # every attempt left an audit row, the refused ones too
        user_id = db.scalar(select(User.id).where(User.email == program.coordinator))
        rows = db.scalars(select(AuditEvent).where(AuditEvent.user_id == user_id,
                                                   AuditEvent.resource == "session")).all()
        refused = db.scalars(select(AuditEvent.detail).where(AuditEvent.detail.like("rate limited%"))).all()
    assert [(r.action, r.outcome) for r in rows] == [("fail", "denied")] * 4 + [("login", "ok")]
    assert rows[3].detail == "too many failed sign-ins"
    assert refused == ["rate limited: too many attempts from this address (login)"]


@pytest.mark.req("R6.1")
def test_sign_ins_from_one_client_are_limited_and_allowed_again_after_the_window(
        strict: TestClient, program: Program, clock: FixedClock, database: Database) -> None:
    emails = [program.coordinator, program.clinic1, program.clinic2, program.admin,
              *(f"nobody{n}@example.org" for n in range(4))]
    for email in emails:  # eight accounts, one wrong password each: under every per-account limit
        assert login(strict, email, WRONG).status_code == 400
    assert_refused(login(strict, program.admin, PASSWORD), 15 * 60)
    # X-Forwarded-For from the client itself does not pick another bucket (R6.2).
    assert_refused(login(strict, program.admin, PASSWORD, **{"X-Forwarded-For": "203.0.113.9"}), 15 * 60)
    assert strict.post("/forgot", data={"email": program.admin}).status_code == 429  # reset requests too

    with database.reader() as db:  # each refused attempt is on the audit trail too (R1.4)
        refused = db.scalars(select(AuditEvent.detail).where(AuditEvent.detail.like("rate limited%"))).all()
    assert refused == ["rate limited: too many attempts from this address (login)"] * 2 + [
        "rate limited: too many attempts from this address (forgot)"]

    clock.advance(dt.timedelta(minutes=15, seconds=1))
    assert login(strict, program.admin, PASSWORD).status_code == 303


@pytest.mark.req("R6.1")
def test_a_route_link_and_the_token_endpoint_are_limited(strict: TestClient) -> None:
    link = "x" * 43  # unknown: each open is a guess
    for _ in range(3):
        assert strict.get(f"/r/{link}").status_code == 404
    assert_refused(strict.get(f"/r/{link}"), 15 * 60)  # per link
    assert strict.get(f"/r/{'y' * 43}").status_code == 404  # another link, same client: still under its limit
    for _ in range(3):  # the client's eight attempts are up after these
        assert strict.post("/fhir/auth/token", data={"grant_type": "client_credentials"}).status_code == 400
    assert_refused(strict.post("/fhir/auth/token", data={"grant_type": "client_credentials"}), 15 * 60)


def test_failed_token_requests_count_against_the_client_they_name(
        settings: Settings, clock: FixedClock, database: Database, program: Program) -> None:
    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    def assertion(client_id: str) -> dict[str, str]:  # names the client; its signature is junk
        claims = part({"iss": client_id, "sub": client_id})
        return {"grant_type": "client_credentials", "client_assertion_type": smart.ASSERTION_TYPE,
                "client_assertion": f"{part({'alg': 'RS384'})}.{claims}.eA"}

    limits = limited(settings, clock, limit_login_account="2 per 15 minutes")
    with _client(limits, database) as client:
        for _ in range(2):
            failed = client.post("/fhir/auth/token", data=assertion("clinic-a"))
            assert failed.json()["error"] == "invalid_client"
        assert_refused(client.post("/fhir/auth/token", data=assertion("clinic-a")), 15 * 60)
        assert client.post("/fhir/auth/token", data=assertion("clinic-b")).status_code == 400  # its own count


@pytest.mark.req("R6.2")
def test_api_limits_are_keyed_on_the_principal(strict: TestClient, program: Program,
                                               database: Database) -> None:
    with database.writer() as db:
        first, second = api_token(db, program.clinic1), api_token(db, program.clinic2)
        db.commit()
    for _ in range(3):
        assert strict.get("/api/v1/referrals", headers=first).status_code == 200
    assert_refused(strict.get("/api/v1/referrals", headers=first), 60)
    # The same client with another principal's token has its own allowance.
    assert strict.get("/api/v1/referrals", headers=second).status_code == 200
    # Without a token the client's address is the key (and the policy still answers 401 after it).
    for _ in range(3):
        assert strict.get("/api/v1/referrals").status_code == 401
    assert strict.get("/api/v1/referrals").status_code == 429
    # A client naming another address in X-Forwarded-For stays in its own bucket.
    assert strict.get("/api/v1/referrals", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 429


@pytest.mark.req("R6.3")
def test_login_and_api_limits_use_separate_stores_shared_by_two_app_processes(
        settings: Settings, clock: FixedClock, database_url: str, program: Program) -> None:
    """Two apps, each with its own Database (its own pools, as two server processes have), on one
    database: the limits hold across both, and the login store never touches the API store."""
    strict = limited(settings, clock, limit_login_account="3 per 15 minutes",
                     limit_login_client="100 per 15 minutes", limit_api="4 per minute")
    one, two = Database(database_url), Database(database_url)
    try:
        with one.writer() as db:
            token = api_token(db, program.clinic1)
            db.commit()
        with _client(strict, one) as first, _client(strict, two) as second:
            assert login(first, program.coordinator, WRONG).status_code == 400
            assert login(second, program.coordinator, WRONG).status_code == 400
            assert login(first, program.coordinator, WRONG).status_code == 400
            assert_refused(login(second, program.coordinator, PASSWORD), 15 * 60)

            calls = [c.get("/api/v1/referrals", headers=token).status_code for c in (first, second) * 2]
            assert calls == [200] * 4
            assert_refused(second.get("/api/v1/referrals", headers=token), 60)
            assert login(first, program.clinic1, PASSWORD).status_code == 303  # API calls did not count here
        with one.reader() as db:
            assert set(db.scalars(select(RateLimitCounter.store).distinct())) == {"login", "api"}
    finally:
        one.dispose()
        two.dispose()


def test_a_report_pdf_runs_once_at_a_time_per_person_and_a_dead_holder_frees_its_slot(
        settings: Settings, clock: FixedClock, database: Database, database_url: str,
        program: Program) -> None:
    limits = limited(settings, clock, expensive_time_limit_s=60)
    with _client(limits, database) as client:
        sign_in(client, program.coordinator)
        with database.reader() as db:
            user_id = db.scalar(select(User.id).where(User.email == program.coordinator))
        # Another process is making this person's PDF: its slot is in the shared table.
        other = Database(database_url)
        try:
            busy = throttle.Limiter(other, clock, "busy")
            with throttle.one_at_a_time(busy, "A report PDF", str(user_id), time_limit_s=60):
                refused = client.get("/reports/pdf", headers={"Accept": "application/json"})
                assert refused.status_code == 409, refused.text
                assert refused.json()["extra"]["code"] == "busy"
            done = client.get("/reports/pdf")
            assert done.status_code == 200 and done.content.startswith(b"%PDF")

            # A process killed while holding the slot never gives it back: it runs out by itself.
            item_key = parse("1 per 60 seconds").key_for("A report PDF", str(user_id))
            assert busy.storage.incr(item_key, 60) == 1
            assert client.get("/reports/pdf", headers={"Accept": "application/json"}).status_code == 409
            clock.advance(dt.timedelta(seconds=61))
            assert client.get("/reports/pdf").status_code == 200
        finally:
            other.dispose()


def test_the_storage_counts_per_window_and_forgets_windows_that_are_over(
        database: Database, clock: FixedClock) -> None:
    storage = throttle.DatabaseStorage(database, clock, "login")
    assert [storage.incr("k", 10) for _ in range(3)] == [1, 2, 3]
    assert storage.incr("other", 5) == 1
    assert storage.get("k") == 3
    assert storage.get_expiry("k") == clock.now().timestamp() + 10
    clock.advance(dt.timedelta(seconds=10))
    assert storage.get("k") == 0
    assert storage.incr("k", 10) == 1  # a new window, and "other", over too, is gone
    with database.reader() as db:
        assert db.scalars(select(RateLimitCounter.key)).all() == ["k"]
