"""Security basics from RELIABILITY.md that the foundation must meet from the start."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import AuditEvent, Role, User, UserSession
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.security import is_api_path, mask_csrf, unmask_csrf
from tests.builders import (
    PASSWORD,
    Program,
    api_token,
    csrf_token,
    password_hash,
    referral_body,
    sign_in,
)

SESSION = "__Host-session"


# --- R3.1 deny by default ------------------------------------------------------------------------


@pytest.mark.req("R3.1")
def test_every_route_declares_who_may_call_it(app) -> None:
    """A route without a policy would be refused at run time; this catches it before it ships."""
    undecided = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            opt = handler.opt
            if set(getattr(handler, "http_methods", ())) == {"OPTIONS"}:
                continue  # Litestar's automatic OPTIONS answers carry no data
            if not (opt.get("public") or opt.get("roles")):
                undecided.append((route.path, sorted(getattr(handler, "http_methods", []))))
    assert undecided == []


@pytest.mark.req("R3.1")
def test_anonymous_callers_are_turned_away_from_every_non_public_route(app, client, program) -> None:
    """Every non-public GET sends strangers to sign in (pages) or answers 401 (API)."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.opt.get("public") or "GET" not in getattr(handler, "http_methods", ()):
                continue
            path = route.path.replace("{", "").replace("}", "")
            path = "/".join("1" if ":" in part else part for part in path.split("/"))
            response = client.get(path, follow_redirects=False)
            assert response.status_code in (303, 401), (path, response.status_code)


# --- R1.1 / R1.5 accounts and passwords -----------------------------------------------------------


@pytest.mark.req("R1.1")
def test_a_second_account_with_the_same_email_is_refused(database: Database, program: Program) -> None:
    """Logins are unique, case-insensitively."""
    with database.writer() as db, pytest.raises(auth.AccountError, match="already exists"):
        auth.create_user(db, email=program.clinic1.upper(), display_name="Dup", memberships=[],
                         password_hash=password_hash())


@pytest.mark.req("R1.5")
@pytest.mark.parametrize(("password", "ok"), [("short7!", False), ("password123", False),
                                              ("iloveyou", False), ("x" * 64, True),
                                              ("Tr4ctor-Mango-Violet", True)])
def test_password_rules(password: str, ok: bool) -> None:
    """Under 8 characters or a very common password is refused; 64 characters is fine."""
    assert (auth.password_problems(password) == []) is ok


@pytest.mark.req("R1.5")
def test_passwords_are_argon2id_and_compared_exactly(database: Database, program: Program, client) -> None:
    """Hashes are argon2id; a password differing only in case or a trailing space does not sign in."""
    with database.reader() as db:
        user = db.scalar(select(User).where(User.email == program.clinic1))
    assert user.password_hash.startswith("$argon2id$")
    for wrong in (PASSWORD.upper(), PASSWORD + " ", PASSWORD[:-1]):
        response = client.post("/login", data={"email": program.clinic1, "password": wrong})
        assert response.status_code == 400


def test_the_hash_parameters_come_from_the_settings(settings: Settings) -> None:
    """A new hash uses the Settings' argon2id parameters: the production defaults unless a
    deployment (or a test, as here) chooses others; a hash made with either verifies with both."""
    light = auth.hash_password("Tr4ctor-Mango-Violet", settings)
    strong = auth.hash_password("Tr4ctor-Mango-Violet", Settings())
    assert light.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    assert strong.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert auth.verify_password(strong, "Tr4ctor-Mango-Violet", settings)
    assert auth.verify_password(light, "Tr4ctor-Mango-Violet", Settings())
    assert not auth.verify_password(None, "Tr4ctor-Mango-Violet", settings)


def test_every_sign_in_attempt_is_audited(database: Database, program: Program, client) -> None:
    """A failure and a success each leave an audit row naming the account (R1.4's audit part only:
    no lockout exists yet, so the test does not claim R1.4)."""
    client.post("/login", data={"email": program.clinic1, "password": "not it at all"})
    sign_in(client, program.clinic1)
    with database.reader() as db:
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [row.action for row in rows] == ["fail", "login"]
    assert all(row.user_id is not None for row in rows)


# --- R2 sessions and cookies ----------------------------------------------------------------------


@pytest.mark.req("R2.5")
def test_session_cookie_is_host_prefixed_secure_httponly_lax(client, program) -> None:
    """The session cookie cannot be read by scripts, sent cross-site, or set by a sibling domain."""
    response = client.post("/login", data={"email": program.clinic1, "password": PASSWORD},
                           follow_redirects=False)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION}=")
    for attribute in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "domain=" not in cookie.lower()


@pytest.mark.req("R2.4")
def test_sign_in_rotates_the_session(app, program, database) -> None:
    """Signing in again gives a new session id, and the old one no longer works."""
    with TestClient(app=app, base_url="https://testserver.local") as client:
        sign_in(client, program.clinic1)
        first = client.cookies[SESSION]
        sign_in(client, program.clinic1)
        second = client.cookies[SESSION]
    assert first != second
    assert len(second) >= 40  # 32 random bytes, url-safe
    with TestClient(app=app, base_url="https://testserver.local") as stranger:
        stranger.cookies.set(SESSION, first)
        assert stranger.get("/clinic", follow_redirects=False).status_code == 303


@pytest.mark.req("R2.3")
def test_logout_ends_the_server_side_session(client, program) -> None:
    """After sign-out the old cookie is worthless and the browser is told to clear its data."""
    token = sign_in(client, program.clinic1)
    cookie = client.cookies[SESSION]
    response = client.post("/logout", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    client.cookies.set(SESSION, cookie)
    assert client.get("/clinic", follow_redirects=False).status_code == 303


@pytest.mark.req("R2.1")
def test_staff_are_signed_out_after_fifteen_idle_minutes(client, program) -> None:
    """At idle - 1 s the page still loads; at idle + 1 s it sends the person to sign in."""
    with time_machine.travel(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC), tick=False) as clock:
        sign_in(client, program.clinic1)
        clock.shift(dt.timedelta(minutes=15) - dt.timedelta(seconds=1))
        assert client.get("/clinic", follow_redirects=False).status_code == 200
        clock.shift(dt.timedelta(minutes=15) + dt.timedelta(seconds=1))
        response = client.get("/clinic", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")


@pytest.mark.req("R2.2")
def test_staff_sessions_end_after_twelve_hours_however_active(client, program) -> None:
    """Activity every ten minutes keeps a session alive up to 12 h − 1 s, and not one second past 12 h."""
    signed_in = dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)
    absolute = signed_in + dt.timedelta(hours=12)
    with time_machine.travel(signed_in, tick=False) as clock:
        sign_in(client, program.clinic1)
        while dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10) < absolute:
            clock.shift(dt.timedelta(minutes=10))
            response = client.get("/clinic", follow_redirects=False)
            assert response.status_code == 200, f"signed out early, at {dt.datetime.now(dt.UTC):%H:%M}"
        clock.move_to(absolute - dt.timedelta(seconds=1))
        assert client.get("/clinic", follow_redirects=False).status_code == 200
        clock.move_to(absolute + dt.timedelta(seconds=1))
        response = client.get("/clinic", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")


@pytest.mark.req("R2.6")
def test_disabling_a_user_ends_their_sessions_and_tokens(client, program, database) -> None:
    """A disabled account's cookie and bearer token stop working on the next request."""
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    sign_in(client, program.clinic1)
    with database.writer() as db:
        db.scalar(select(User).where(User.email == program.clinic1)).is_active = False
        db.commit()
    assert client.get("/clinic", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/referrals/1", headers=headers).status_code == 401


# --- R5 CSRF, origin, headers, cookies never on the API ---------------------------------------------


@pytest.mark.req("R5.1")
def test_cookie_posts_need_this_sessions_csrf_token(client, program) -> None:
    """No token, a wrong one or another session's token → 403; the right one is accepted."""
    other_token = sign_in(client, program.clinic2)
    token = sign_in(client, program.clinic1)
    form = {"patient.given_name": "Ana"}  # invalid on purpose: a 422 proves the CSRF check passed
    assert client.post("/clinic/referrals", data=form).status_code == 403
    assert client.post("/clinic/referrals", data={**form, "csrf_token": "nope"}).status_code == 403
    assert client.post("/clinic/referrals", data={**form, "csrf_token": other_token}).status_code == 403
    assert client.post("/clinic/referrals", data={**form, "csrf_token": token}).status_code == 422
    assert client.post("/clinic/referrals", data=form, headers={"X-CSRF-Token": token}).status_code == 422


def test_the_csrf_token_is_masked_afresh_in_every_page(client, database, program) -> None:
    """Pages are gzip-compressed and echo what people typed, so the session's CSRF token must never
    appear as the same bytes twice (BREACH): each page carries it XOR a fresh random pad. Any page's
    masked value is accepted; a value that does not unmask to this session's token is refused."""
    first = sign_in(client, program.clinic1)
    page = client.get("/clinic/referrals/new", headers={"Accept-Encoding": "gzip"})
    second = csrf_token(page.text)
    assert page.headers["content-encoding"] == "gzip" and first != second
    with database.reader() as db:
        user_id = db.scalar(select(User.id).where(User.email == program.clinic1))
        raw = db.scalar(select(UserSession.csrf_token).where(UserSession.user_id == user_id,
                                                            UserSession.ended_at.is_(None)))
    assert raw and raw not in page.text and unmask_csrf(first) == unmask_csrf(second) == raw

    form = {"patient.given_name": "Ana"}  # invalid on purpose: a 422 proves the CSRF check passed
    assert client.post("/clinic/referrals", data={**form, "csrf_token": first}).status_code == 422
    assert client.post("/clinic/referrals", data=form, headers={"X-CSRF-Token": second}).status_code == 422
    tampered = second[:10] + ("A" if second[10] != "A" else "B") + second[11:]
    for wrong in (tampered, raw, mask_csrf(raw[::-1]), "", "%%%"):
        assert client.post("/clinic/referrals", data={**form, "csrf_token": wrong}).status_code == 403


@pytest.mark.req("R5.2")
def test_cross_site_origin_is_refused_even_with_a_valid_token(client, program) -> None:
    """A state-changing request from another site is refused though its token is right."""
    token = sign_in(client, program.clinic1)
    response = client.post("/clinic/referrals", data={"csrf_token": token},
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


@pytest.mark.req("R5.1")
def test_the_api_never_accepts_cookies(client, program) -> None:
    """A signed-in browser cannot ride its cookie into the JSON API."""
    token = sign_in(client, program.clinic1)
    response = client.post("/api/v1/referrals", json=referral_body(), headers={"X-CSRF-Token": token})
    assert response.status_code == 401


@pytest.mark.req("R5.3")
def test_security_headers_on_every_response(client, program) -> None:
    """HSTS, a CSP with nonces and no objects/framing, nosniff, no referrer; PHI pages not cached."""
    sign_in(client, program.clinic1)
    for path in ("/login", "/clinic", "/static/css/app.css"):
        response = client.get(path)
        headers = response.headers
        assert "strict-transport-security" in headers, (path, response.status_code, dict(headers))
        assert "max-age=31536000; includeSubDomains" in headers["strict-transport-security"]
        csp = headers["content-security-policy"]
        for part in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "'nonce-"):
            assert part in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert client.get("/clinic").headers["cache-control"] == "no-store"


def test_every_state_changing_page_route_needs_the_csrf_token(app, client, program) -> None:
    """Every non-GET route a signed-in person can call refuses a request without the form's token."""
    who = {Role.coordinator: program.coordinator, Role.admin: program.admin,
           Role.clinic_staff: program.clinic1}
    checked = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            methods = set(getattr(handler, "http_methods", ())) - {"GET", "HEAD", "OPTIONS"}
            roles = [r for r in handler.opt.get("roles", ()) if r in who]
            if not methods or not roles or is_api_path(route.path):  # bearer tokens only, never cookies
                continue
            sign_in(client, who[roles[0]])
            path = "/".join("1" if ":" in part else part for part in route.path.split("/"))
            path = path.replace("{", "").replace("}", "")
            for method in methods:
                response = client.request(method, path, data={"x": "1"}, follow_redirects=False)
                assert response.status_code == 403, (method, path, response.status_code)
                assert "security token" in response.text, (method, path)
                checked.append((method, path))
    assert len(checked) > 10  # the enumeration really found the app's forms


def test_sessions_are_stored_only_as_hashes(client, program, database) -> None:
    """The cookie value never appears in the database, only its hash."""
    sign_in(client, program.clinic1)
    raw = client.cookies[SESSION]
    with database.reader() as db:
        stored = db.scalars(select(UserSession.token_hash)).all()
    assert raw not in stored
    assert auth.token_hash(raw) in stored


def test_sign_in_link_fills_in_the_email_as_text(client, program) -> None:
    """`/login?email=` pre-fills the form (the demo's per-role links), escaped like any input."""
    page = client.get('/login?email=clinic1@demo.test"><script>x()</script>')
    assert 'value="clinic1@demo.test&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"' in page.text
