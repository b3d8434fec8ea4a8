"""The partnership pages and the allocation API through the app: the admin writes and changes the
agreement, each side reads it (clinic staff only their own clinic), the change history shows who
and when, and the referral form and `GET /api/v1/allocation` show what is left this week."""

from __future__ import annotations

import datetime as dt
import html

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import AuditEvent, Organization, Partnership
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, api_token, clock_on, referral_body, sign_in
from tests.test_partnerships import refer

MONDAY = dt.date(2026, 11, 23)
FORM = {"allocation": "2", "unit": "new_patients", "delivery_days": ["1", "3"], "days_to_first_box": "7",
        "food_bank_contact": "Dana Okafor, (510) 555-0150", "clinic_contact": "Sam Staff, (510) 555-0161",
        "starts_on": "2026-11-02", "review_on": "2027-05-01"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Wednesday of a program week, so "this week" never depends on the real date."""
    return msgspec.structs.replace(settings, clock=clock_on(MONDAY + dt.timedelta(days=2)))


def write_agreement(client: TestClient, program: Program, **changes: object) -> str:
    token = sign_in(client, program.admin)
    response = client.post(f"/partnerships/{program.clinic1_id}",
                           data={**FORM, **changes, "csrf_token": token})
    assert response.status_code == 200, response.text
    return response.text


def test_the_admin_writes_the_agreement_and_changes_it_with_a_history(client: TestClient, program: Program,
                                                                      database: Database) -> None:
    """Written, then changed: the page shows the terms and each change with who made it."""
    text = write_agreement(client, program)
    assert "Saved: agreement written: 2 new patients per week, delivered Tuesday, Thursday" in text
    text = write_agreement(client, program, allocation="3", review_on="2027-06-01")
    assert "Saved: allocation per week 2 → 3; review date 2027-05-01 → 2027-06-01." in text
    page = client.get(f"/partnerships/{program.clinic1_id}").text
    assert "3 new patients per week" in page and "Dana Okafor, (510) 555-0150" in page
    history = page[page.index('id="history"'):]
    assert history.index("allocation per week 2 → 3") < history.index("agreement written")
    assert history.count("Ari Admin") == 3
    with database.reader() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.resource == "partnership")).all()
        assert {(r.action, r.resource_id, r.role) for r in rows} == {("U", str(program.clinic1_id), "admin")}


def test_a_bad_form_says_what_to_fix_and_saves_nothing(client: TestClient, program: Program,
                                                       database: Database) -> None:
    token = sign_in(client, program.admin)
    response = client.post(f"/partnerships/{program.clinic1_id}",
                           data={**FORM, "review_on": "2026-10-01", "csrf_token": token})
    assert response.status_code == 422
    assert "The review date must come after the start date." in response.text
    response = client.post(f"/partnerships/{program.clinic1_id}",
                           data={**FORM, "delivery_days": [], "csrf_token": token})
    assert response.status_code == 422 and "Delivery days" in response.text
    with database.reader() as db:
        assert db.scalar(select(Partnership.id)) is None


def test_clinic_staff_read_their_own_agreement_only(client: TestClient, program: Program) -> None:
    """Clinic 1's staff see the terms and the history but no form; clinic 2's agreement is 404; they
    cannot post a change (403)."""
    write_agreement(client, program)
    client.post("/logout", data={"csrf_token": sign_in(client, program.admin)})
    token = sign_in(client, program.clinic1)
    page = client.get(f"/partnerships/{program.clinic1_id}")
    assert page.status_code == 200
    assert "2 new patients per week" in page.text and 'id="history"' in page.text
    assert "Save the agreement" not in page.text
    assert 'action="/partnerships' not in page.text
    assert f'href="/partnerships/{program.clinic1_id}"' in client.get("/clinic").text
    assert client.get(f"/partnerships/{program.clinic2_id}").status_code == 404
    assert client.get("/partnerships").status_code == 403
    denied = client.post(f"/partnerships/{program.clinic1_id}",
                         data={**FORM, "allocation": "9", "csrf_token": token})
    assert denied.status_code == 403


def test_the_coordinator_reads_every_clinic_of_the_program(client: TestClient, program: Program) -> None:
    write_agreement(client, program)
    client.post("/logout", data={"csrf_token": sign_in(client, program.admin)})
    sign_in(client, program.coordinator)
    listing = client.get("/partnerships").text
    assert "Fruitvale Clinic" in listing and "No agreement written yet" in listing
    page = client.get(f"/partnerships/{program.clinic1_id}").text
    assert "2 new patients per week" in page and "Save the agreement" not in page


def test_the_referral_form_and_the_api_show_what_is_left_this_week(client: TestClient, program: Program,
                                                                   database: Database) -> None:
    """Allocation 2: before any referral 2 left; after two referrals through the API, none, and the third
    is waitlisted with the reason though the program has room."""
    write_agreement(client, program)
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        other = api_token(db, program.clinic2)
        db.commit()
    answer = client.get("/api/v1/allocation", headers=headers).json()
    assert answer == {"clinic_id": program.clinic1_id, "week_start": "2026-11-23", "week_end": "2026-11-29",
                      "agreed": True, "unit": "new_patients", "allocation": 2, "used": 0, "remaining": 2,
                      "lent_available": 0}
    assert client.get("/api/v1/allocation", headers=other).json()["agreed"] is False
    outcomes = [client.post("/api/v1/referrals", headers=headers,
                            json=referral_body(patient__mrn=f"M{n}")).json() for n in range(3)]
    assert [o["outcome"] for o in outcomes] == ["home_delivery", "home_delivery", "waitlisted"]
    assert "allocation this week is used" in outcomes[2]["reason"]
    assert "allocation this week is used" in outcomes[2]["timeline"][-2]["text"]
    assert client.get("/api/v1/allocation", headers=headers).json()["remaining"] == 0
    client.post("/logout", data={"csrf_token": sign_in(client, program.admin)})
    sign_in(client, program.clinic1)
    form = client.get("/clinic/referrals/new").text
    assert "This week's allocation is used" in form and "(2 of 2 new patients placed)" in form
    referral = client.get(f"/clinic/referrals/{outcomes[2]['id']}").text
    assert "allocation this week is used" in referral
    client.post("/logout", data={"csrf_token": sign_in(client, program.clinic1)})
    sign_in(client, program.coordinator)
    assert "Its clinic&#39;s allocation this week is used: 2 of 2" in client.get("/coordinator/waitlist").text


def test_lending_is_a_program_choice_on_the_program_page(client: TestClient, program: Program,
                                                          database: Database) -> None:
    token = sign_in(client, program.admin)
    form = {"service_base_s": "180", "service_per_box_s": "30", "service_per_floor_s": "60",
            "link_grace_hours": "6", "waitlist_horizon_weeks": "8", "staff_idle_minutes": "15",
            "driver_idle_minutes": "60", "max_failed_attempts": "2", "require_upstairs": "true",
            "box_types": ["standard"], "lend_allocation": "true", "csrf_token": token}
    response = client.post(f"/coordinator/program/{program.food_bank_id}/choices", data=form)
    assert response.status_code == 200
    assert "lend clinics' unused allocation: no → yes" in html.unescape(response.text)
    with database.reader() as db:
        assert db.get(Organization, program.food_bank_id).lend_allocation is True


def test_a_clinic_far_below_its_allocation_is_flagged_on_the_overview_and_its_page(
        client: TestClient, program: Program, database: Database) -> None:
    """Allocation 10 a week, one referral a week for the last four weeks: the coordinator's overview and
    the partnership page both say so (a conversation to have, nothing is cut)."""
    write_agreement(client, program, allocation="10", starts_on="2026-10-01")
    with database.writer() as db:
        for week in range(1, 5):
            refer(db, program.clinic1_id, f"Q{week}", day=MONDAY - dt.timedelta(weeks=week, days=-1))
        db.commit()
    overview = client.get("/coordinator").text
    assert "Fruitvale Clinic referred far below its allocation for 4 weeks" in overview
    page = client.get(f"/partnerships/{program.clinic1_id}").text
    assert "Referrals far below the allocation for 4 weeks" in page
    assert "Elmhurst Clinic" not in overview[overview.index("far below") - 300:overview.index("far below")]
