"""What else patients need, and benefits enrollment inside the house: every referral channel records
the answers; needs land on the referring clinic's list only; benefits staff see only their worklist
and patients' contact details; each mark is on the timeline and the audit trail; reports count them."""

from __future__ import annotations

import datetime as dt
import re

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.models import (
    AuditEvent,
    BenefitsCase,
    BenefitsStep,
    EventKind,
    Invite,
    Need,
    NeedStatus,
    OutboxMessage,
    Referral,
    Role,
    Screening,
)
from delivery.platform import auth
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.errors import FieldError
from delivery.program import benefits
from delivery.referrals import csv_import, intake, needs
from delivery.referrals.schemas import ReferralIn
from delivery.reports import funder
from delivery.timeline import events as timeline
from delivery.web.security import is_api_path
from tests.builders import Program, api_token, clock_on, csrf_token, password_hash, referral_body, sign_in

TODAY = dt.date(2030, 3, 4)
MORNING = dt.datetime(2030, 3, 4, 10)
NEEDS = {"picks": ["ride", "rent_utilities", "ride"], "words": "  Behind on the\n gas bill  "}
BENEFITS_WORKER = "benefits@example.org"
CLINIC_BENEFITS_WORKER = "benefits2@example.org"


# --- rules ----------------------------------------------------------------------------------


def test_an_answer_keeps_each_pick_once_in_the_forms_order_and_tidy_words() -> None:
    assert needs.answer(["ride", "rent_utilities", "ride"], "  Behind on the\n gas bill ") == (
        ["rent_utilities", "ride"], "Behind on the gas bill")
    assert needs.answer([], "x" * 900) == ([], "x" * 500)


@pytest.mark.parametrize("words", [None, "", "  \n "])
def test_an_answer_naming_nothing_is_no_need(words: str | None) -> None:
    assert needs.answer([], words) is None


@pytest.mark.parametrize(("before", "after", "ok"), [
    ("open", "referred_on", True), ("open", "resolved", True), ("referred_on", "resolved", True),
    ("referred_on", "referred_on", False), ("resolved", "referred_on", False),
    ("resolved", "resolved", False),
    ("open", "open", False), ("open", "closed", False)])
def test_a_need_moves_forward_only(before: str, after: str, ok: bool) -> None:
    """Open → referred on → resolved (or straight to resolved); resolved is the end."""
    if ok:
        assert needs.check_move(before, after) == after
    else:
        with pytest.raises(FieldError):
            needs.check_move(before, after)


@pytest.mark.parametrize(("insecure", "snap", "asked", "dnc", "flag"), [
    (True, "no", False, False, True),
    (True, "unknown", True, False, True),  # asked for help enrolling
    (True, "unknown", False, False, False),
    (True, "yes", True, False, False),  # already enrolled
    (False, "no", True, False, False),  # screens food secure
    (True, "no", False, True, False),  # do not contact
])
def test_who_is_flagged_for_benefits_enrollment(insecure: bool, snap: str, asked: bool, dnc: bool,
                                                flag: bool) -> None:
    assert benefits.should_flag(food_insecure=insecure, snap_enrolled=snap, asked_for_help=asked,
                                do_not_contact=dnc) is flag


@pytest.mark.parametrize(("before", "after", "days_ahead", "error"), [
    ("flagged", "contacted", 0, None), ("flagged", "enrolled", 0, None), ("applied", "declined", 0, None),
    ("contacted", "contacted", 0, "already contacted"), ("applied", "contacted", 0, "already applied"),
    ("enrolled", "declined", 0, "closed"), ("declined", "contacted", 0, "closed"),
    ("flagged", "flagged", 0, "Choose"), ("flagged", "phoned", 0, "Choose"),
    ("flagged", "contacted", 1, "future")])
def test_benefits_steps_go_forward_with_a_date_that_has_come(before: str, after: str, days_ahead: int,
                                                             error: str | None) -> None:
    on = TODAY + dt.timedelta(days=days_ahead)
    if error is None:
        assert benefits.check_step(before, after, on, today=TODAY) == after
    else:
        with pytest.raises(FieldError, match=error):
            benefits.check_step(before, after, on, today=TODAY)


# --- the channels ---------------------------------------------------------------------------


def _recorded(db, mrn: str) -> tuple[Referral, Screening, list[Need], BenefitsCase | None]:  # type: ignore[no-untyped-def]
    referral = db.scalar(select(Referral).join(Referral.patient).where(Referral.patient.has(mrn=mrn)))
    assert referral is not None
    return (referral, referral.screening, needs.of_referral(db, referral.id),
            benefits.of_referral(db, referral.id))


def test_the_api_records_the_answers_needs_and_the_benefits_flag(client: TestClient, program: Program,
                                                                 database: Database) -> None:
    """The JSON body's `needs` and `screening.snap_enrolled`; the webhook is told ids, never the words."""
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    body = referral_body(needs=NEEDS, screening__snap_enrolled="no")
    assert client.post("/api/v1/referrals", json=body, headers=headers).status_code == 201
    with database.reader() as db:
        referral, screening, found, case = _recorded(db, "A-1001")
        assert screening.snap_enrolled == "no"
        assert [(n.source, n.kinds, n.words, n.clinic_id, n.status) for n in found] == [
            ("api", ["rent_utilities", "ride"], "Behind on the gas bill", program.clinic1_id, "open")]
        assert case is not None and (case.step, case.clinic_id, case.food_bank_id) == (
            "flagged", program.clinic1_id, program.food_bank_id)
        kinds = [e.kind for e in timeline.history(db, referral.id)]
        assert EventKind.need_raised in kinds and EventKind.benefits_flagged in kinds
        told = db.scalars(select(OutboxMessage.payload).where(OutboxMessage.kind == "need_raised")).all()
        assert len(told) == 1 and "gas" not in msgspec.json.encode(told[0]).decode()
    again = client.post("/api/v1/referrals", json=body, headers=headers)  # re-sent: the same open need
    assert again.status_code == 409
    newer = client.post("/api/v1/referrals", json={**body, "needs": {"picks": ["someone_to_talk_to"]}},
                        headers=headers)  # a repeat that brings a new answer: it joins the open referral
    assert newer.status_code == 409
    with database.reader() as db:
        assert [n.kinds for n in db.scalars(select(Need).order_by(Need.id))] == [
            ["rent_utilities", "ride"], ["someone_to_talk_to"]]


@pytest.mark.parametrize("field", ["needs.picks", "needs.words", "screening.snap_enrolled"])
def test_the_api_refuses_bad_answers_naming_the_field(client: TestClient, program: Program,
                                                      database: Database, field: str) -> None:
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    bad = {"needs.picks": {"needs": {"picks": ["a_pony"]}}, "needs.words": {"needs": {"words": "w" * 501}},
           "screening.snap_enrolled": {"screening": {**referral_body()["screening"],
                                                     "snap_enrolled": "maybe"}}}
    response = client.post("/api/v1/referrals", json={**referral_body(), **bad[field]}, headers=headers)
    assert response.status_code in (400, 422)
    assert field.split(".")[-1] in response.text


def test_the_form_records_the_answers(client: TestClient, program: Program, database: Database) -> None:
    """Quick picks and words in the form; a patient enrolled in SNAP is not flagged."""
    token = sign_in(client, program.clinic1)
    assert "what do you need to be more healthy?" in client.get("/clinic/referrals/new").text
    data = {"patient.given_name": "Rosa", "patient.family_name": "Diaz", "patient.mrn": "F-1",
            "patient.birth_date": "1948-03-02", "patient.address.line1": "1234 98th Ave",
            "patient.address.city": "Oakland", "patient.address.state": "CA",
            "patient.address.postal_code": "94603", "patient.consent_to_share": "true",
            "screening.hunger_worried": "often", "screening.hunger_ran_out": "often",
            "screening.transportation_barrier": "true", "screening.mobility_barrier": "false",
            "screening.snap_enrolled": "yes", "needs.picks": ["fridge_stove", "someone_to_talk_to"],
            "needs.words": "Lonely since her husband died", "csrf_token": token}
    response = client.post("/clinic/referrals", data=data, follow_redirects=True)
    assert response.status_code == 200, response.text
    assert "a working fridge or stove, someone to talk to" in response.text  # on the referral's page
    with database.reader() as db:
        _, screening, found, case = _recorded(db, "F-1")
        assert screening.snap_enrolled == "yes" and case is None
        assert [(n.source, n.kinds, n.words) for n in found] == [
            ("web", ["fridge_stove", "someone_to_talk_to"], "Lonely since her husband died")]


def test_a_csv_import_records_the_answers(program: Program, database: Database) -> None:
    header = ("mrn,given_name,family_name,birth_date,address_line1,city,state,postal_code,lat,lon,"
              "hunger_worried,hunger_ran_out,transportation_barrier,mobility_barrier,snap_enrolled,needs,"
              "needs_words,do_not_contact")
    rows = ["C-1,Ana,Lopez,1950-01-01,1 A St,Oakland,CA,94603,37.75,-122.17,often,never,yes,no,no,"
            "food_benefits;ride,,no",
            "C-2,Ben,Ortiz,1950-01-01,2 B St,Oakland,CA,94603,37.75,-122.17,often,never,yes,no,no,,,yes"]
    with database.reader() as db:
        checked = csv_import.check_file(db, "\n".join([header, *rows]), clinic_id=program.clinic2_id)
    with database.writer() as db:
        report = csv_import.import_checked(db, checked, actor_id=None, clock=clock_on(TODAY))
        assert report.ok, report.text()
        db.commit()
    with database.reader() as db:
        _, screening, found, case = _recorded(db, "C-1")
        assert screening.snap_enrolled == "no" and case is not None
        assert [(n.source, n.kinds, n.clinic_id) for n in found] == [
            ("csv", ["ride", "food_benefits"], program.clinic2_id)]
        _, _, found, case = _recorded(db, "C-2")
        assert found == [] and case is None  # do not contact: never flagged


def test_a_bad_csv_cell_names_its_column(program: Program, database: Database) -> None:
    header = "mrn,given_name,family_name,birth_date,address_line1,city,state,postal_code,hunger_worried," \
             "hunger_ran_out,transportation_barrier,mobility_barrier,snap_enrolled,needs"
    row = "C-1,Ana,Lopez,1950-01-01,1 A St,Oakland,CA,94603,often,never,yes,no,perhaps,a pony"
    with database.reader() as db:
        report = csv_import.check_file(db, f"{header}\n{row}", clinic_id=program.clinic1_id).report
    assert {p.column for p in report.problems} == {"snap_enrolled", "needs"}


# --- the clinic's needs list ------------------------------------------------------------------


def _refer(database: Database, program: Program, mrn: str, *, clinic_id: int, when: dt.datetime,
           snap: str = "no", picks: list[str] | None = None) -> int:
    body = referral_body(patient__mrn=mrn, screening__snap_enrolled=snap,
                         needs={"picks": picks or ["rent_utilities"], "words": f"words of {mrn}"})
    with database.writer() as db:
        result = intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=clinic_id, actor_id=None,
                              source="api", clock=clock_on(when.date(), when.hour))
        db.commit()
        return result.referral.id


def test_needs_are_the_referring_clinics_alone(client: TestClient, program: Program,
                                               database: Database) -> None:
    """Clinic 1's staff see and mark their patient's need; clinic 2's staff neither see nor reach
    it (404), and the food bank's coordinator has no needs list (403)."""
    referral_id = _refer(database, program, "N-1", clinic_id=program.clinic1_id, when=MORNING)
    with database.reader() as db:
        need = needs.of_referral(db, referral_id)[0]
    sign_in(client, program.clinic2)
    assert "Rosa" not in client.get("/clinic/needs").text
    html = client.get("/clinic/needs?show=all").text
    assert "words of N-1" not in html
    refused = client.post(f"/clinic/needs/{need.id}",
                          data={"status": "resolved", "csrf_token": csrf_token(html)})
    assert refused.status_code == 404
    client.cookies.clear()
    sign_in(client, program.coordinator)
    assert client.get("/clinic/needs", follow_redirects=False).status_code == 403
    coordinators_view = client.get(f"/coordinator/referrals/{referral_id}").text
    assert "Referred by" in coordinators_view and "named a need" not in coordinators_view
    client.cookies.clear()

    token = sign_in(client, program.clinic1)
    page = client.get("/clinic/needs").text
    assert "words of N-1" in page and "rent or utilities" in page and "clinic system (API)" in page
    moved = client.post(f"/clinic/needs/{need.id}", data={"status": "referred_on", "note": "Housing desk",
                                                          "csrf_token": token})
    assert moved.status_code == 200  # followed to the list
    bad = client.post(f"/clinic/needs/{need.id}", data={"status": "referred_on", "csrf_token": token})
    assert bad.status_code == 422 and "already referred on" in bad.text
    client.post(f"/clinic/needs/{need.id}", data={"status": "resolved", "note": "Rent paid by the county",
                                                  "csrf_token": token})
    assert "words of N-1" not in client.get("/clinic/needs").text  # resolved: off the open list
    detail = client.get(f"/clinic/referrals/{referral_id}").text
    assert f"Need #{need.id} referred on (Housing desk)." in detail
    assert f"Need #{need.id} resolved (Rent paid by the county)." in detail
    assert "The patient named a need besides food (api): rent or utilities." in detail
    with database.reader() as db:
        row = db.get(Need, need.id)
        assert row is not None and row.status == NeedStatus.resolved and row.note == "Rent paid by the county"
        audited = db.scalars(select(AuditEvent).where(AuditEvent.resource == "need")).all()
        assert {a.action for a in audited} == {"R", "U"}
        assert all(a.patient_id == row.patient_id for a in audited)


# --- the benefits worklist -------------------------------------------------------------------


@pytest.fixture
def workers(program: Program, database: Database) -> None:
    """A benefits worker at the food bank (the whole program) and one at clinic 2 (its patients)."""
    with database.writer() as db:
        for email, organization_id in ((BENEFITS_WORKER, program.food_bank_id),
                                       (CLINIC_BENEFITS_WORKER, program.clinic2_id)):
            user = auth.create_user(db, email=email, display_name="Bea Benefits",
                                    memberships=[(organization_id, Role.benefits)])
            user.password_hash = password_hash()
        db.commit()


def _get_paths(app) -> list[str]:  # type: ignore[no-untyped-def]
    paths = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if handler.opt.get("public") or "GET" not in getattr(handler, "http_methods", ()):
                continue
            path = route.path.replace("{", "").replace("}", "")
            paths.append("/".join("1" if ":" in part else part for part in path.split("/")))
    return paths


def test_benefits_staff_open_only_their_worklist(app, client: TestClient, program: Program,  # type: ignore[no-untyped-def]
                                                 database: Database, workers: None) -> None:
    """Every other route holding patient data refuses the role; the worklist shows contact details
    (name, phone, language, address) and no screening answers, needs or deliveries."""
    _refer(database, program, "B-1", clinic_id=program.clinic1_id, when=MORNING)
    with database.writer() as db:
        bearer = api_token(db, BENEFITS_WORKER)
        db.commit()
    sign_in(client, BENEFITS_WORKER)
    allowed = []
    for path in _get_paths(app):
        # Systems' routes take bearer tokens only (never the cookie): try the worker's token there.
        headers = bearer if is_api_path(path) else {}
        response = client.get(path, headers=headers, follow_redirects=False)
        if response.status_code != 403:
            allowed.append((path, response.status_code))
    assert allowed == [("/benefits", 200)]
    page = client.get("/benefits").text
    assert all(said in page for said in ("Rosa Diaz", "+15105550101", "Spanish", "1234 98th Ave 3B"))
    assert all(said not in page for said in ("often", "words of B-1", "rent or utilities", "gate code",
                                             "diabetic", "A-1001", "B-1"))


def test_benefits_steps_are_dated_audited_and_on_the_timeline(client: TestClient, program: Program,
                                                              database: Database, workers: None) -> None:
    referral_id = _refer(database, program, "B-1", clinic_id=program.clinic1_id, when=MORNING)
    with database.reader() as db:
        case = benefits.of_referral(db, referral_id)
        assert case is not None
    sign_in(client, CLINIC_BENEFITS_WORKER)  # clinic 2's worker: not their patient
    html = client.get("/benefits").text
    assert "Rosa Diaz" not in html
    assert client.post(f"/benefits/{case.id}", data={"step": "contacted", "on": "2020-01-01",
                                                    "csrf_token": csrf_token(html)}).status_code == 404
    client.cookies.clear()

    token = sign_in(client, BENEFITS_WORKER)
    forged = client.post(f"/benefits/{case.id}", data={"step": "contacted", "on": "2020-01-01"})
    assert forged.status_code == 403 and "security token" in forged.text  # the CSRF guard covers it
    future = client.post(f"/benefits/{case.id}", data={"step": "contacted", "on": "2999-01-01",
                                                       "csrf_token": token})
    assert future.status_code == 422 and "in the future" in future.text
    no_date = client.post(f"/benefits/{case.id}", data={"step": "contacted", "on": "", "csrf_token": token})
    assert no_date.status_code == 422 and "date of this step" in no_date.text
    for step, on in (("contacted", "2020-01-02"), ("enrolled", "2020-01-09")):
        assert client.post(f"/benefits/{case.id}", data={"step": step, "on": on, "note": "Called in Spanish",
                                                        "csrf_token": token}).status_code == 200
    assert "Rosa Diaz" not in client.get("/benefits").text  # enrolled: closed
    assert "Rosa Diaz" in client.get("/benefits?show=all").text
    with database.reader() as db:
        row = db.get(BenefitsCase, case.id)
        assert row is not None and (row.step, row.contacted_on, row.enrolled_on, row.note) == (
            BenefitsStep.enrolled, dt.date(2020, 1, 2), dt.date(2020, 1, 9), "Called in Spanish")
        texts = [e.text for e in timeline.history(db, referral_id)]
        assert "SNAP/CalFresh enrollment: patient contacted on Thu 02 Jan 2020." in texts
        assert "SNAP/CalFresh enrollment: enrolled on Thu 09 Jan 2020." in texts
        audited = db.scalars(select(AuditEvent.detail).where(AuditEvent.resource == "benefits_case",
                                                             AuditEvent.action == "U")).all()
        assert audited == ["flagged -> contacted on 2020-01-02", "contacted -> enrolled on 2020-01-09"]


def test_clinic_staff_flag_a_patient_who_asks_for_help_enrolling(client: TestClient, program: Program,
                                                                  database: Database) -> None:
    """A patient whose SNAP answer was unknown asks for help: staff put them on the worklist once;
    a food-secure patient is refused with the reason; another clinic cannot reach the referral."""
    asked = _refer(database, program, "K-1", clinic_id=program.clinic1_id, when=MORNING, snap="unknown")
    body = referral_body(patient__mrn="K-2", screening__hunger_worried="never",
                         screening__hunger_ran_out="never")
    with database.writer() as db:
        secure = intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=program.clinic1_id,
                              actor_id=None, source="api", clock=clock_on(TODAY)).referral.id
        db.commit()
        assert benefits.of_referral(db, asked) is None
    token = sign_in(client, program.clinic2)
    assert client.post(f"/clinic/referrals/{asked}/benefits", data={"csrf_token": token}).status_code == 404
    client.cookies.clear()
    token = sign_in(client, program.clinic1)
    assert "wants help enrolling in SNAP/CalFresh" in client.get(f"/clinic/referrals/{asked}").text
    done = client.post(f"/clinic/referrals/{asked}/benefits", data={"csrf_token": token})
    assert done.status_code == 200 and "on the benefits-enrollment worklist (flagged)" in done.text
    again = client.post(f"/clinic/referrals/{asked}/benefits", data={"csrf_token": token})
    assert again.status_code == 422 and "worklist already" in again.text
    refused = client.post(f"/clinic/referrals/{secure}/benefits", data={"csrf_token": token})
    assert refused.status_code == 422 and "did not screen food insecure" in refused.text
    with database.reader() as db:
        case = benefits.of_referral(db, asked)
        assert case is not None and case.step == "flagged" and benefits.of_referral(db, secure) is None
        assert [e.kind for e in timeline.history(db, asked)].count(EventKind.benefits_flagged) == 1


def test_the_admin_can_invite_benefits_staff(client: TestClient, program: Program,
                                             database: Database) -> None:
    """The invite form offers the role; without a clinic it belongs to the food bank (the program)."""
    token = sign_in(client, program.admin)
    people = client.get("/admin").text
    assert re.search(r'<option value="benefits"[^>]*>benefits enrollment</option>', people)
    client.post("/admin/invites", data={"email": "new@example.org", "role": "benefits",
                                               "clinic_id": "", "csrf_token": token})
    with database.reader() as db:
        invite = db.scalar(select(Invite).where(Invite.email == "new@example.org"))
        assert invite is not None
        assert (invite.role, invite.organization_id) == ("benefits", program.food_bank_id)


# --- the funder report ------------------------------------------------------------------------


def test_the_report_counts_needs_and_benefits_in_the_period(program: Program, database: Database) -> None:
    """Two needs raised in March (one resolved in March, one in April), one in February; three flags
    in March of which one enrolled in March; per clinic and overall."""
    march = dt.datetime(2030, 3, 10, 10)
    _refer(database, program, "R-0", clinic_id=program.clinic1_id, when=dt.datetime(2030, 2, 20, 10))
    first = _refer(database, program, "R-1", clinic_id=program.clinic1_id, when=march)
    second = _refer(database, program, "R-2", clinic_id=program.clinic2_id, when=march)
    third = _refer(database, program, "R-3", clinic_id=program.clinic2_id, when=march, picks=["ride"])
    ctx = AuditContext.for_command("test")
    with database.writer() as db:
        one, two = needs.of_referral(db, first)[0], needs.of_referral(db, second)[0]
        needs.mark(db, ctx, one, status="resolved", note="", now=clock_on(dt.date(2030, 3, 20)).now())
        needs.mark(db, ctx, two, status="resolved", note="", now=clock_on(dt.date(2030, 4, 2)).now())
        case = benefits.of_referral(db, third)
        assert case is not None
        benefits.record_step(db, ctx, case, step="enrolled", on=dt.date(2030, 3, 25), note="",
                             today=dt.date(2030, 3, 25), now=clock_on(dt.date(2030, 3, 25)).now())
        db.commit()
    with database.reader() as db:
        food_bank = db.get(funder.Organization, program.food_bank_id)
        report = funder.build(db, food_bank, dt.date(2030, 3, 1), dt.date(2030, 3, 31))
    assert (report.needs_raised, report.needs_resolved, report.benefits_flagged,
            report.benefits_enrollments) == (3, 1, 3, 1)
    fruitvale, elmhurst = report.by_clinic["Fruitvale Clinic"], report.by_clinic["Elmhurst Clinic"]
    assert (fruitvale.needs_raised, fruitvale.needs_resolved, fruitvale.benefits_enrollments) == (1, 1, 0)
    assert (elmhurst.needs_raised, elmhurst.needs_resolved, elmhurst.benefits_enrollments) == (2, 0, 1)
    as_json = msgspec.json.decode(msgspec.json.encode(report))
    assert {"needs_raised", "needs_resolved", "benefits_flagged", "benefits_enrollments"} <= set(as_json)
