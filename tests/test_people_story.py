"""A real program from nothing, through the app: first run → invite → accept → sign in as that role →
the right pages; invite and reset links single-use and expiring; no account enumeration; deactivation."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import ExitStack

import msgspec
import pytest
import time_machine
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import AuditEvent, Driver, Invite, User
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import csrf_token
from tests.conftest import BASE_URL
from tests.mailbox import Mailbox

ADMIN, ADMIN_PASSWORD = "ada@northside.example", "an admin's long passphrase"
CASEY_PASSWORD = "plan the routes well"
FIRST_RUN = {"food_bank": "Northside Pantry", "timezone": "America/Chicago", "delivery_weekday": "2",
             "boxes_per_delivery_day": "40", "box_types": ["standard", "diabetic"], "depot_name": "Warehouse",
             "depot_address": "100 Lake St, Chicago", "depot_lat": "41.8853", "depot_lon": "-87.6229",
             "depot_opens": "08:00", "depot_closes": "16:00", "clinics": "Lakeview Clinic\r\nPilsen Health",
             "admin_name": "Ada Admin", "admin_email": ADMIN, "admin_password": ADMIN_PASSWORD}


@pytest.fixture
def mailing_app(settings: Settings, database: Database, mailbox: Mailbox) -> Litestar:
    """The app with a real (loopback) SMTP server configured."""
    return create_app(msgspec.structs.replace(settings, smtp_url=mailbox.url), database)


def browser(app: Litestar) -> TestClient:
    """Another person's browser, on an app of its own (one app serves one test client at a time)
    over the same settings and database, as a second app process would."""
    return TestClient(app=create_app(app.state.settings, app.state.database), base_url=BASE_URL)


@pytest.fixture
def others() -> Iterator[ExitStack]:
    """Browsers of the people who join, each closed at the end of the test."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def admin(mailing_app: Litestar) -> Iterator[TestClient]:
    """The first admin, signed in by the first-run page that started the program."""
    with browser(mailing_app) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/setup"
        assert client.get("/login", follow_redirects=False).headers["location"] == "/setup"
        response = client.post("/setup", data=FIRST_RUN, follow_redirects=True)
        assert response.status_code == 200, response.text
        assert "Your program is ready" in response.text
        yield client


def invite(admin: TestClient, email: str, role: str, clinic: str = "") -> str:
    page = admin.get("/admin").text
    clinic_id = re.search(rf'<option value="(\d+)"\s*>{clinic}</option>', page).group(1) if clinic else ""
    response = admin.post("/admin/invites", data={"email": email, "role": role, "clinic_id": clinic_id,
                                                  "csrf_token": csrf_token(page)})
    assert response.status_code == 200, response.text
    assert f"The invite link was mailed to {email}" in response.text
    return response.text


def accept(others: ExitStack, app: Litestar, link: str, name: str, password: str) -> TestClient:
    client = others.enter_context(browser(app))
    path = link.removeprefix(BASE_URL)
    assert client.get(path).status_code == 200
    response = client.post(path, data={"display_name": name, "password": password}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def join(others: ExitStack, app: Litestar, mailbox: Mailbox, email: str, name: str,
         password: str) -> TestClient:
    """Accept the invite that arrived for `email`."""
    return accept(others, app, mailbox.link(email, "/invite/"), name, password)


def test_first_run_to_clinic_staff_referring(
        admin: TestClient, others: ExitStack, mailing_app: Litestar, mailbox: Mailbox,
                                            database: Database) -> None:
    """The admin invites a clinic's staff member; the mail arrives; the link sets a password and lands on
    the clinic's pages; the person can refer but not plan; the link works only once."""
    invite(admin, "sam@lakeview.example", "clinic_staff", "Lakeview Clinic")
    link = mailbox.link("sam@lakeview.example", "/invite/")
    sam = accept(others, mailing_app, link, "Sam Staff", "lakeview carrots every week")
    assert sam.get("/", follow_redirects=False).headers["location"] == "/clinic"
    assert sam.get("/clinic/referrals/new").status_code == 200
    assert sam.get("/coordinator").status_code == 403
    assert sam.get(link.removeprefix(BASE_URL)).status_code == 410
    again = others.enter_context(browser(mailing_app))
    assert again.post(link.removeprefix(BASE_URL), data={"display_name": "Eve", "password": "x" * 20}
                      ).status_code == 410
    with database.reader() as db:
        user = db.scalar(select(User).where(User.email == "sam@lakeview.example"))
        assert user is not None and user.display_name == "Sam Staff"
        assert [m.organization.name for m in user.memberships] == ["Lakeview Clinic"]


def test_a_coordinator_and_a_driver_join_with_their_roles(
        admin: TestClient, others: ExitStack, mailing_app: Litestar,
                                                         mailbox: Mailbox, database: Database) -> None:
    """A coordinator lands on the coordinator's pages; an invited driver joins the roster."""
    invite(admin, "casey@northside.example", "coordinator")
    casey = join(others, mailing_app, mailbox, "casey@northside.example", "Casey", CASEY_PASSWORD)
    assert casey.get("/coordinator").status_code == 200
    assert casey.get("/admin").status_code == 403
    invite(admin, "dee@northside.example", "driver")
    dee = join(others, mailing_app, mailbox, "dee@northside.example", "Dee", "driving on tuesdays")
    assert dee.get("/driver").status_code == 200
    with database.reader() as db:
        driver = db.scalar(select(Driver).join(User).where(User.email == "dee@northside.example"))
        assert driver is not None and driver.is_active


def test_an_invite_expires_after_72_hours_and_can_be_sent_again(admin: TestClient, mailing_app: Litestar,
                                                               mailbox: Mailbox, database: Database) -> None:
    """At 72 h the link is dead; "send again" mails a new one and the old one stays dead."""
    invite(admin, "late@northside.example", "coordinator")
    old = mailbox.link("late@northside.example", "/invite/").removeprefix(BASE_URL)
    with database.reader() as db:
        row = db.scalar(select(Invite))
        assert row is not None
        expires, invite_id = row.expires_at, row.id
    assert expires - row.created_at == dt.timedelta(hours=72)
    with browser(mailing_app) as late:
        with time_machine.travel(expires - dt.timedelta(seconds=1), tick=False):
            assert late.get(old).status_code == 200
        with time_machine.travel(expires + dt.timedelta(seconds=1), tick=False):
            assert late.get(old).status_code == 410
    page = admin.get("/admin").text
    resent = admin.post(f"/admin/invites/{invite_id}/resend", data={"csrf_token": csrf_token(page)})
    assert resent.status_code == 200
    new = mailbox.link("late@northside.example", "/invite/").removeprefix(BASE_URL)
    with browser(mailing_app) as late:
        assert new != old and late.get(old).status_code == 410 and late.get(new).status_code == 200


def test_a_revoked_invite_opens_nothing(admin: TestClient, mailing_app: Litestar, mailbox: Mailbox,
                                        database: Database) -> None:
    invite(admin, "gone@northside.example", "driver")
    link = mailbox.link("gone@northside.example", "/invite/").removeprefix(BASE_URL)
    with database.reader() as db:
        invite_id = db.scalar(select(Invite.id))
    page = admin.get("/admin").text
    revoked = admin.post(f"/admin/invites/{invite_id}/revoke", data={"csrf_token": csrf_token(page)})
    assert revoked.status_code == 200
    with browser(mailing_app) as gone:
        assert gone.get(link).status_code == 410


def test_forgot_password_reveals_nothing_and_the_reset_ends_other_sessions(
        admin: TestClient, mailing_app: Litestar, mailbox: Mailbox) -> None:
    """The same answer for a known and an unknown address; only the account gets mail; the reset link
    works once, and the sessions the account had are over."""
    with browser(mailing_app) as stranger:
        known = stranger.post("/forgot", data={"email": ADMIN})
        unknown = stranger.post("/forgot", data={"email": "nobody@northside.example"})
    assert known.status_code == unknown.status_code == 200
    def same(text: str, email: str) -> str:
        return re.sub(r'nonce="[^"]+"', "", text.replace(email, "X"))

    assert same(known.text, ADMIN) == same(unknown.text, "nobody@northside.example")
    assert mailbox.to("nobody@northside.example") == []
    link = mailbox.link(ADMIN, "/reset/").removeprefix(BASE_URL)
    with browser(mailing_app) as me:
        response = me.post(link, data={"password": "a brand new passphrase"}, follow_redirects=True)
        assert "Password changed" in response.text
        assert me.get(link).status_code == 410
        assert admin.get("/admin", follow_redirects=False).status_code == 303  # the old session is over
        signed_in = me.post("/login", data={"email": ADMIN, "password": "a brand new passphrase"},
                            follow_redirects=False)
        assert signed_in.status_code == 303


def test_a_reset_link_expires_within_the_hour(admin: TestClient, mailing_app: Litestar,
                                              mailbox: Mailbox) -> None:
    with browser(mailing_app) as me:
        me.post("/forgot", data={"email": ADMIN})
        link = mailbox.link(ADMIN, "/reset/").removeprefix(BASE_URL)
        with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=61), tick=False):
            assert me.get(link).status_code == 410
            assert me.post(link, data={"password": "a brand new passphrase"}).status_code == 410


@pytest.mark.req("R2.6")
def test_deactivating_a_person_ends_their_session_at_once(
        admin: TestClient, others: ExitStack, mailing_app: Litestar,
                                                          mailbox: Mailbox, database: Database) -> None:
    """Deactivated: the next request of their open session is sent to sign in; the change is audited."""
    invite(admin, "casey@northside.example", "coordinator")
    casey = join(others, mailing_app, mailbox, "casey@northside.example", "Casey", CASEY_PASSWORD)
    assert casey.get("/coordinator").status_code == 200
    with database.reader() as db:
        casey_id = db.scalar(select(User.id).where(User.email == "casey@northside.example"))
    page = admin.get("/admin").text
    assert admin.post(f"/admin/people/{casey_id}/deactivate", data={"csrf_token": csrf_token(page)}
                      ).status_code == 200
    assert casey.get("/coordinator", follow_redirects=False).status_code == 303
    assert casey.post("/login", data={"email": "casey@northside.example", "password": CASEY_PASSWORD}
                      ).status_code == 400
    with database.reader() as db:
        details = db.scalars(select(AuditEvent.detail).where(AuditEvent.resource == "user")).all()
    assert any("deactivated" in (d or "") for d in details)


def test_changing_a_role_changes_the_pages_and_is_audited(
        admin: TestClient, others: ExitStack, mailing_app: Litestar,
                                                          mailbox: Mailbox, database: Database) -> None:
    invite(admin, "casey@northside.example", "coordinator")
    casey = join(others, mailing_app, mailbox, "casey@northside.example", "Casey", CASEY_PASSWORD)
    with database.reader() as db:
        casey_id = db.scalar(select(User.id).where(User.email == "casey@northside.example"))
        admin_id = db.scalar(select(User.id).where(User.email == ADMIN))
    page = admin.get("/admin").text
    changed = admin.post(f"/admin/people/{casey_id}/role",
                         data={"role": "admin", "clinic_id": "", "csrf_token": csrf_token(page)})
    assert changed.status_code == 200
    assert casey.get("/admin").status_code == 200
    with database.reader() as db:
        event = db.scalar(select(AuditEvent).where(AuditEvent.resource == "user",
                                                   AuditEvent.resource_id == str(casey_id)))
        assert event is not None and event.user_id == admin_id
        assert "coordinator at Northside Pantry → admin" in (event.detail or "")


def test_the_first_run_page_is_gone_once_a_program_exists(admin: TestClient, mailing_app: Litestar,
                                                          database: Database) -> None:
    """A second first run is refused: the page sends people to sign in, and a post creates nothing."""
    with browser(mailing_app) as other:
        assert other.get("/setup", follow_redirects=False).headers["location"] == "/login"
        other.post("/setup", data={**FIRST_RUN, "food_bank": "Take over", "admin_email": "evil@x.example"})
    with database.reader() as db:
        assert db.scalar(select(User.id).where(User.email == "evil@x.example")) is None


def test_the_first_run_page_says_what_to_fix(client: TestClient, database: Database) -> None:
    """A weak password and a missing point come back with their messages; nothing is created."""
    response = client.post("/setup", data={**FIRST_RUN, "admin_password": "password", "depot_lat": ""})
    assert response.status_code == 422
    assert "Enter the depot&#39;s latitude and longitude" in response.text or "most common" in response.text
    response = client.post("/setup", data={**FIRST_RUN, "admin_password": "password"})
    assert response.status_code == 422 and "most common" in response.text
    with database.reader() as db:
        assert db.scalar(select(User.id)) is None


def test_without_smtp_the_admin_sees_the_link(client: TestClient) -> None:
    """No email server: the page shows the single-use link and says nothing was sent."""
    client.post("/setup", data=FIRST_RUN)
    page = client.get("/admin").text
    response = client.post("/admin/invites", data={"email": "sam@x.example", "role": "coordinator",
                                                   "csrf_token": csrf_token(page)})
    assert "nothing was sent" in response.text
    link = re.search(r'id="shown-link">([^<]+)<', response.text).group(1)
    with browser(client.app) as sam:
        assert sam.get(link.removeprefix(BASE_URL)).status_code == 200
