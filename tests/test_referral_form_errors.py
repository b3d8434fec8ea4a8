"""The referral form's errors: each at its field, a summary that links to every one, plain words;
names of only spaces, NUL bytes and unknown languages are refused by the schema on every channel."""

from __future__ import annotations

import re

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from delivery.models import Patient
from delivery.platform.db import Database
from delivery.referrals import csv_import
from tests.builders import Program, api_token, referral_body, sign_in
from tests.test_referral_form import form

HTMX = {"HX-Request": "true"}


def summary_links(html: str) -> dict[str, str]:
    """The error summary's links: target id → text."""
    summary = html.split('id="form-errors"', 1)[1].split("</div>", 1)[0]
    return dict(re.findall(r'<a href="#([^"]+)">([^<]+)</a>', summary))


def field_error(html: str, name: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(name)}-error">([^<]+)</p>', html)
    assert match, f"no error shown at {name}"
    return match[1]


def test_unanswered_screening_is_marked_at_each_question(client: TestClient, program: Program) -> None:
    token = sign_in(client, program.clinic1)
    data = {k: v for k, v in form().items() if not k.startswith("screening.")}
    page = client.post("/clinic/referrals", data=data, headers={**HTMX, "X-CSRF-Token": token})
    assert page.status_code == 422
    questions = ["screening.hunger_worried", "screening.hunger_ran_out",
                 "screening.transportation_barrier", "screening.mobility_barrier"]
    links = summary_links(page.text)
    assert list(links) == questions and "Please fix 4 things" in page.text
    for name in questions:
        assert f'id="{name}"' in page.text  # the link's target exists
        assert field_error(page.text, name) == links[name]
    assert links["screening.transportation_barrier"] == "The transportation question is required."


@pytest.mark.parametrize(("name", "value", "message"), [
    ("patient.floor", "300", "Floor must be between -5 and 200."),
    ("patient.given_name", "Ro\x00sa", "First name contains a control character (such as a NUL byte or a "
                                       "line break): remove it."),
    ("patient.language", "xx", "Preferred language: use a known language code such as en, es, yue or "
                               "zh-Hant."),
    ("patient.address.postal_code", "9460", "ZIP code: enter 5 digits, or ZIP+4 such as 94603-1234."),
    ("order.boxes", "many", "Boxes must be a whole number."),
])
def test_a_bad_field_says_what_to_fix_in_plain_words(client: TestClient, program: Program, database: Database,
                                                      name: str, value: str, message: str) -> None:
    token = sign_in(client, program.clinic1)
    page = client.post("/clinic/referrals", data=form(**{name: value}), headers={"X-CSRF-Token": token})
    assert page.status_code == 422
    assert field_error(page.text, name) == message and summary_links(page.text) == {name: message}
    assert "Expected" not in page.text  # never the library's words
    assert 'autofocus' in page.text.split('id="form-errors"', 1)[1].split(">", 1)[0]
    with database.reader() as db:
        assert db.scalar(select(func.count(Patient.id))) == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"patient__given_name": "   "}, "given_name"),
    ({"patient__family_name": "Di\x00az"}, "family_name"),
    ({"patient__language": "klingon"}, "language"),
])
def test_the_api_refuses_the_same_values(client: TestClient, program: Program, database: Database,
                                         change: dict[str, str], field: str) -> None:
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    answer = client.post("/api/v1/referrals", json=referral_body(**change), headers=headers)
    assert answer.status_code == 400
    assert answer.json()["extra"][0]["key"] == f"patient.{field}"


def test_the_csv_import_refuses_the_same_values(database: Database, program: Program) -> None:
    rows = ("mrn,given_name,family_name,birth_date,address_line1,city,state,postal_code,language,"
            "hunger_worried,hunger_ran_out,transportation_barrier,mobility_barrier\n"
            "A-1,   ,Diaz,1948-03-02,1234 98th Ave,Oakland,CA,94603,xx,often,often,yes,no\n")
    with database.reader() as db:
        report = csv_import.check_file(db, rows.encode(), clinic_id=program.clinic1_id,
                                       source_name="t.csv").report
    reasons = {(p.row, p.column): p.reason for p in report.problems}
    assert reasons[(2, "language")] == ("language: use a known language code such as en, es, yue or "
                                        "zh-Hant.")
    assert (2, "given_name") in reasons
