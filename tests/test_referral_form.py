"""Clinic staff refer a patient through the web form and see the outcome in plain words."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from delivery.models import Patient, Referral
from tests.builders import sign_in

HTMX = {"HX-Request": "true"}


def form(**changes: str) -> dict[str, str | list[str]]:
    """What a clinic's staff member types for Rosa Diaz (field names are the form's)."""
    fields: dict[str, str | list[str]] = {
        "patient.given_name": "Rosa", "patient.family_name": "Diaz", "patient.mrn": "A-1001",
        "patient.birth_date": "1948-03-02", "patient.phone": "+1 510 555 0101", "patient.language": "es",
        "patient.address.line1": "1234 98th Ave", "patient.address.unit": "3B",
        "patient.address.city": "Oakland", "patient.address.state": "CA",
        "patient.address.postal_code": "94603", "patient.floor": "3",
        "patient.access_notes": "gate code 1234", "patient.dietary": ["diabetic", "low_sodium"],
        "patient.consent_to_share": "true",
        "screening.hunger_worried": "often", "screening.hunger_ran_out": "sometimes",
        "screening.transportation_barrier": "false", "screening.mobility_barrier": "true",
        "order.boxes": "1", "order.box_type": "diabetic", "order.cadence": "weekly",
        "order.window_start": "10:00", "order.window_end": "13:00", "priority": "0",
    }
    fields.update(changes)
    return fields


def test_staff_member_refers_a_patient_and_sees_home_delivery(client, program, database) -> None:
    """The form creates the referral and its Order; the page says home delivery and why."""
    token = sign_in(client, program.clinic1)
    page = client.get("/clinic/referrals/new")
    assert "Open for referrals" in page.text
    response = client.post("/clinic/referrals", data=form(), headers={**HTMX, "X-CSRF-Token": token})
    assert response.status_code == 200
    target = response.headers["hx-redirect"]
    detail = client.get(target)
    assert "home delivery" in detail.text
    assert "difficulty carrying groceries or climbing stairs" in detail.text
    assert "10:00–13:00" in detail.text
    with database.reader() as db:
        patient = db.scalar(select(Patient))
        assert patient.dietary == ["diabetic", "low_sodium"]
        assert patient.floor == 3
        assert patient.elevator is False
        assert patient.consent_to_share is True
        assert patient.text_consent is False  # texts need their own tick


def test_consent_to_texts_is_its_own_tick(client, program, database) -> None:
    """Ticking "agreed to texts" is stored on the patient (texts go only to those who agreed)."""
    token = sign_in(client, program.clinic1)
    response = client.post("/clinic/referrals", data=form(**{"patient.consent_to_text": "true"}),
                           headers={**HTMX, "X-CSRF-Token": token})
    assert response.status_code == 200 and response.headers["hx-redirect"]
    with database.reader() as db:
        assert db.scalar(select(Patient.text_consent)) is True


def test_every_bad_field_gets_its_own_message_and_nothing_is_saved(client, program, database) -> None:
    """Several mistakes are all reported next to their fields, the values are kept, nothing written."""
    token = sign_in(client, program.clinic1)
    bad = form(**{"patient.address.postal_code": "9460", "patient.birth_date": "", "order.boxes": "40"})
    del bad["screening.hunger_worried"]
    response = client.post("/clinic/referrals", data=bad, headers={**HTMX, "X-CSRF-Token": token})
    assert response.status_code == 422
    html = response.text
    assert html.startswith("<form")  # only the form fragment is swapped
    for field in ("patient.address.postal_code", "patient.birth_date", "order.boxes",
                  "screening.hunger_worried"):
        assert re.search(rf'id="{re.escape(field)}-error"', html), field
    assert 'value="1234 98th Ave"' in html  # what was typed is kept
    with database.reader() as db:
        assert db.scalar(select(func.count(Referral.id))) == 0


def test_consent_is_required(client, program, database) -> None:
    """Without the patient's consent to share, the referral is not sent."""
    token = sign_in(client, program.clinic1)
    data = form()
    del data["patient.consent_to_share"]
    response = client.post("/clinic/referrals", data=data, headers={**HTMX, "X-CSRF-Token": token})
    assert response.status_code == 422
    assert "Ask the patient first" in response.text


@pytest.mark.req("R4.6")
def test_what_staff_type_is_shown_as_text_never_run(client, program) -> None:
    """A note with a script tag renders escaped on the referral page."""
    token = sign_in(client, program.clinic1)
    data = form(**{"patient.given_name": "<script>alert(1)</script>"})
    response = client.post("/clinic/referrals", data=data, headers={"X-CSRF-Token": token},
                           follow_redirects=True)
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_without_javascript_the_form_still_works(client, program) -> None:
    """A plain form post redirects to the referral page (no htmx needed)."""
    token = sign_in(client, program.clinic1)
    response = client.post("/clinic/referrals", data={**form(), "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get(response.headers["location"]).status_code == 200


def test_clinic_staff_see_only_their_clinics_referrals(client, program) -> None:
    """Clinic 2 cannot open clinic 1's referral page, nor see it in its list."""
    token = sign_in(client, program.clinic1)
    created = client.post("/clinic/referrals", data={**form(), "csrf_token": token}, follow_redirects=False)
    target = created.headers["location"]
    sign_in(client, program.clinic2)
    assert client.get(target).status_code == 404
    assert "Rosa" not in client.get("/clinic").text


REQUIRED_ONLY = ("patient.given_name", "patient.family_name", "patient.mrn", "patient.birth_date",
                 "patient.address.line1", "patient.address.city", "patient.address.state",
                 "patient.address.postal_code", "patient.consent_to_share", "screening.hunger_worried",
                 "screening.hunger_ran_out", "screening.transportation_barrier",
                 "screening.mobility_barrier")


def test_referring_again_with_only_the_required_fields_keeps_what_is_known(client, program,
                                                                          database) -> None:
    """A re-sent referral with blank phone, language, floor, notes and diet blanks none of them."""
    token = sign_in(client, program.clinic1)
    headers = {**HTMX, "X-CSRF-Token": token}
    assert client.post("/clinic/referrals", data=form(), headers=headers).status_code == 200
    bare = {name: value for name, value in form().items() if name in REQUIRED_ONLY}
    again = client.post("/clinic/referrals", data=bare, headers=headers)
    assert "already=1" in again.headers["hx-redirect"]
    assert "changed" not in again.headers["hx-redirect"]
    with database.reader() as db:
        patient = db.scalar(select(Patient))
        assert (patient.phone, patient.language, patient.floor, patient.unit) == ("+1 510 555 0101", "es",
                                                                                 3, "3B")
        assert patient.access_notes == "gate code 1234"
        assert patient.dietary == ["diabetic", "low_sodium"]


def test_a_changed_detail_is_corrected_with_before_and_after_and_staff_are_told(client, program,
                                                                               database) -> None:
    """A new phone and floor in a re-sent form are stored, the timeline has before and after, and
    the page says what differed."""
    token = sign_in(client, program.clinic1)
    headers = {**HTMX, "X-CSRF-Token": token}
    client.post("/clinic/referrals", data=form(), headers=headers)
    again = client.post("/clinic/referrals", headers=headers,
                        data=form(**{"patient.phone": "+1 510 555 0199", "patient.floor": "4"}))
    detail = client.get(again.headers["hx-redirect"]).text
    assert "What you sent differed from what was stored" in detail
    assert re.search(r"<li>phone: updated", detail) and re.search(r"<li>floor: updated", detail)
    assert "phone +1 510 555 0101 → +1 510 555 0199; floor 3 → 4" in detail  # the timeline
    with database.reader() as db:
        patient = db.scalar(select(Patient))
        assert (patient.phone, patient.floor) == ("+1 510 555 0199", 4)


def test_an_address_without_a_point_reaches_the_review_queue_at_once(client, program, database) -> None:
    """Geocoding off (as in the demo): the form's address is never left "being located"; the
    clinic sees a coordinator is checking it and the coordinator's queue says why."""
    token = sign_in(client, program.clinic1)
    response = client.post("/clinic/referrals", data=form(), headers={**HTMX, "X-CSRF-Token": token})
    detail = client.get(response.headers["hx-redirect"]).text
    assert "A coordinator is checking this address" in detail
    assert "Being located on the map" not in detail
    client.post("/logout", headers={"X-CSRF-Token": token})
    sign_in(client, program.coordinator)
    queue = client.get("/coordinator/reviews").text
    assert "Geocoding is off on this server" in queue and "1234 98th Ave" in queue
