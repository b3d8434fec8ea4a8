"""A second factor for staff (R1.2): an admin requires it, a coordinator enrols with the QR code's
secret and a first code (computed here with pyotp at the injected clock), recovery codes work once,
a code never works twice, and with only the password every route of the app but the second-factor
pages answers 401/403, generated from the app's own routes."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import msgspec
import pyotp
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import AuditEvent, RecoveryCode, Role, User
from delivery.platform.clock import FixedClock
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import Program, clock_on, csrf_token, sign_in
from tests.conftest import BASE_URL

DAY = dt.date(2026, 3, 3)


@pytest.fixture
def clock() -> FixedClock:
    return clock_on(DAY)


@pytest.fixture
def mfa_app(settings: Settings, clock: FixedClock, database: Database) -> Litestar:
    return create_app(msgspec.structs.replace(settings, clock=clock, limit_login_account="3 per 15 minutes"),
                      database)


@pytest.fixture
def client(mfa_app: Litestar) -> Iterator[TestClient]:
    with TestClient(app=mfa_app, base_url=BASE_URL) as test_client:
        yield test_client


def require_mfa(client: TestClient, program: Program) -> None:
    csrf = sign_in(client, program.admin)
    saved = client.post("/admin/second-factor", data={"required": "on", "csrf_token": csrf})
    assert saved.status_code == 200 and "authenticator app" in saved.text
    client.post("/logout", headers={"X-CSRF-Token": csrf})
    client.cookies.clear()


def password_only(client: TestClient, email: str) -> str:
    """Sign in with the password; returns the CSRF token of the second-factor page it leads to."""
    response = client.post("/login", data={"email": email, "password": "correct horse battery staple"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/mfa"), response.headers
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    return csrf_token(page.text)


def enrol(client: TestClient, csrf: str, clock: FixedClock) -> tuple[str, list[str]]:
    setup = client.post("/mfa/setup", data={"csrf_token": csrf})
    assert setup.status_code == 200 and "<svg" in setup.text and "<title>QR code" in setup.text
    found = re.search(r'<code id="secret">([A-Z2-7]+)</code>', setup.text)
    assert found, "the page shows the key to type"
    secret = found.group(1)
    done = client.post("/mfa/setup/confirm", data={"csrf_token": csrf_token(setup.text),
                                                   "code": pyotp.TOTP(secret).at(clock.now())})
    assert done.status_code == 200, done.text
    return secret, re.findall(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>", done.text)


@pytest.mark.req("R1.2")
def test_staff_enrol_then_need_the_code_at_each_sign_in_and_a_code_works_once(
        client: TestClient, program: Program, database: Database, clock: FixedClock) -> None:
    require_mfa(client, program)
    csrf = password_only(client, program.coordinator)
    assert client.get("/coordinator").status_code == 403  # the password alone opens nothing
    assert client.get("/", follow_redirects=False).headers["location"] == "/mfa"
    secret, codes = enrol(client, csrf, clock)
    assert len(codes) == 10
    assert client.get("/coordinator").status_code == 200

    with database.reader() as db:  # recovery codes are kept only as hashes
        stored = db.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not set(codes) & set(stored)

    def sign_in_with(code: str) -> int:
        client.cookies.clear()
        csrf = password_only(client, program.coordinator)
        return client.post("/mfa", data={"csrf_token": csrf, "code": code, "next": "/coordinator"},
                           follow_redirects=False).status_code

    same_step = pyotp.TOTP(secret).at(clock.now())
    assert sign_in_with(same_step) == 400  # the enrolment already used this step's code: a replay
    assert client.get("/coordinator").status_code == 403
    clock.advance(dt.timedelta(seconds=30))
    assert sign_in_with(pyotp.TOTP(secret).at(clock.now())) == 303
    assert client.get("/coordinator").status_code == 200
    assert sign_in_with(pyotp.TOTP(secret).at(clock.now())) == 400  # replayed
    assert sign_in_with(codes[0]) == 303  # no phone: a recovery code, once
    assert sign_in_with(codes[0]) == 400  # used up
    clock.advance(dt.timedelta(seconds=30))
    assert sign_in_with(pyotp.TOTP(secret).at(clock.now())) == 429  # three wrong codes lock it for a while
    with database.reader() as db:
        outcomes = db.scalars(select(AuditEvent.outcome).where(AuditEvent.resource == "second_factor",
                                                               AuditEvent.action != "U")).all()
    assert outcomes == ["denied", "ok", "denied", "ok", "denied"]


def _path(path: str) -> str:
    path = "/".join("1" if ":" in part else part for part in path.split("/"))
    return path.replace("{", "").replace("}", "")


@pytest.mark.req("R1.2")
def test_with_only_the_password_every_staff_route_answers_403(
        mfa_app: Litestar, client: TestClient, program: Program, clock: FixedClock) -> None:
    require_mfa(client, program)
    checked = 0
    for role, email in ((Role.admin, program.admin), (Role.coordinator, program.coordinator),
                        (Role.clinic_staff, program.clinic1)):
        client.cookies.clear()
        password_only(client, email)
        for route in mfa_app.routes:
            for handler in getattr(route, "route_handlers", []):
                if role not in handler.opt.get("roles", ()) or handler.opt.get("first_factor"):
                    continue
                for method in set(handler.http_methods) - {"HEAD", "OPTIONS"}:
                    response = client.request(method, _path(route.path), follow_redirects=False)
                    assert response.status_code in (401, 403), (role, method, route.path,
                                                                response.status_code)
                    checked += 1
    assert checked > 100  # the enumeration really walked the app

    # After the second factor the same session reaches its pages.
    client.cookies.clear()
    csrf = password_only(client, program.clinic1)
    enrol(client, csrf, clock)
    assert client.get("/clinic").status_code == 200


def test_a_wrong_first_code_keeps_the_factor_off(client: TestClient, program: Program,
                                                  database: Database) -> None:
    csrf = sign_in(client, program.coordinator)  # not required: anyone on staff may still set it up
    setup = client.post("/mfa/setup", data={"csrf_token": csrf})
    refused = client.post("/mfa/setup/confirm", data={"csrf_token": csrf_token(setup.text), "code": "000000"})
    assert refused.status_code == 422 and "type the current six digits" in refused.text
    with database.reader() as db:
        user = db.scalar(select(User).where(User.email == program.coordinator))
        assert user is not None and user.totp_secret and user.totp_enabled_at is None
