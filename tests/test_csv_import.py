"""Bulk intake from CSV: all rows valid or nothing imported, the same rules as the API."""

from __future__ import annotations

import csv
import io
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import event, func, select, update

from delivery.cli import main
from delivery.models import (
    EventKind,
    Order,
    Organization,
    OrganizationKind,
    Patient,
    Referral,
    ReferralEvent,
    ReviewItem,
    utcnow,
)
from delivery.platform.clock import Clock
from delivery.platform.db import Database
from delivery.referrals import csv_import
from delivery.referrals.schemas import ReferralIn
from delivery.timeline import events as timeline
from tests.builders import Program, make_program, sign_in

EXAMPLE = Path(__file__).parent / "data" / "referrals_example.csv"
DOCS = Path(__file__).parent.parent / "docs" / "csv-format.md"


@pytest.fixture
def small_program(database: Database) -> Program:
    """A program with room for 2 boxes per delivery day, so the example file fills it."""
    with database.writer() as db:
        built = make_program(db, boxes_per_delivery_day=2)
        db.commit()
    return built


def rows_of(path: Path = EXAMPLE) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def to_csv(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def run_import(database: Database, clinic_id: int | None, text: str | bytes) -> csv_import.ImportReport:
    """What a caller does: check on a reader, import on the writer, commit only when the report is ok."""
    with database.reader() as db:
        checked = csv_import.check_file(db, text, clinic_id=clinic_id)
    with database.writer() as db:
        report = csv_import.import_checked(db, checked, actor_id=None, clock=Clock())
        if report.ok:
            db.commit()
    return report


def count(database: Database, model: type) -> int:
    with database.reader() as db:
        return db.scalar(select(func.count()).select_from(model)) or 0


def problems(report: csv_import.ImportReport) -> set[tuple[int | None, str | None]]:
    return {(p.row, p.column) for p in report.problems}


# --- a valid file ---------------------------------------------------------------------------


def test_example_file_imports_every_row_with_its_outcome(database, small_program) -> None:
    """The example file: two home deliveries, one waitlisted (capacity 2), one pickup, one not eligible."""
    report = run_import(database, small_program.clinic1_id, EXAMPLE.read_bytes())
    assert report.ok, report.text()
    assert report.rows == 5 and report.new_patients == 5 and report.already_referred == 0
    assert report.referred == {"home_delivery": 2, "waitlisted": 1, "pickup": 1, "not_eligible": 1}
    with database.reader() as db:
        outcome = dict(db.execute(select(Patient.mrn, Referral.outcome)
                                  .join(Referral, Referral.patient_id == Patient.id)).all())
        assert outcome == {"A-1001": "home_delivery", "A-1002": "home_delivery", "A-1003": "waitlisted",
                           "A-1004": "pickup", "A-1005": "not_eligible"}
        assert set(db.scalars(select(Referral.source))) == {"csv"}
        minh = db.scalar(select(Patient).where(Patient.mrn == "A-1002"))
        assert minh is not None
        assert minh.phone == "(510) 555-0102" and minh.language == "vi"
        assert minh.dietary == ["low_sodium", "soft_foods"] and minh.geocode_status == "given"
        order = db.scalar(select(Order).where(Order.patient_id == minh.id))
        assert order is not None
        assert (order.boxes, order.box_type, order.cadence, order.weekday, order.priority) == (
            2, "low_sodium", "biweekly", 3, 1)
        assert f"{order.window_start:%H:%M}-{order.window_end:%H:%M}" == "10:00-14:00"
        notes = db.scalars(select(ReferralEvent.data).where(ReferralEvent.kind == "received"))
        assert any("Prefers a call before delivery" in (n["note"] or "") for n in notes)
    assert "5 row(s) imported" in report.text() and "1 waitlisted" in report.text()


def test_excel_bom_crlf_and_spelled_out_values_are_read(database, program) -> None:
    """An Excel 'CSV UTF-8' file: BOM, CRLF, capitalised headers, Yes/TRUE, 'often true', day names."""
    text = ("\ufeffMRN,Given Name,Family Name,Birth Date,Address Line1,City,State,Postal Code,"
            "Hunger Worried,Hunger Ran Out,Transportation Barrier,Mobility Barrier,Weekday,Window Start,"
            "Window End,Dietary\r\n"
            "B-1,José,Núñez,1950-02-03,12 Elm St,Oakland,CA,94601,Often true,Never true,Yes,FALSE,"
            "wed,9:00,11:30,Low sodium; Halal\r\n\r\n,,,,\r\n")
    report = run_import(database, program.clinic1_id, text.encode("utf-8"))
    assert report.ok, report.text()
    assert report.rows == 1 and report.referred["home_delivery"] == 1 and report.to_geocode == 1
    with database.reader() as db:
        patient = db.scalar(select(Patient).where(Patient.mrn == "B-1"))
        order = db.scalar(select(Order))
        assert patient is not None and order is not None
        assert patient.given_name == "José" and patient.dietary == ["low_sodium", "halal"]
        assert order.weekday == 2 and f"{order.window_start:%H:%M}" == "09:00"


def test_documented_columns_mirror_the_json_api() -> None:
    """Every field of ReferralIn (but clinic_id) has a column, every column is in the docs and the
    template's example row is itself a valid referral."""

    def leaves(struct: type, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
        found = set()
        hints = typing.get_type_hints(struct, include_extras=True)
        for field in msgspec.structs.fields(struct):
            inner = next((a for a in (hints[field.name], *typing.get_args(hints[field.name]))
                          if isinstance(a, type) and issubclass(a, msgspec.Struct)), None)
            found |= leaves(inner, (*prefix, field.name)) if inner else {(*prefix, field.name)}
        return found

    assert leaves(ReferralIn) - {("clinic_id",)} == {c.path for c in csv_import.COLUMNS}
    docs = DOCS.read_text()
    assert all(f"`{c.name}`" in docs for c in csv_import.columns_help())
    template = list(csv.DictReader(io.StringIO(csv_import.template_csv())))
    report = csv_import.ImportReport()
    assert csv_import._check_row(template[0], 2, report) is not None, report.text()
    assert set(rows_of()[0]) <= set(csv_import.BY_NAME)


# --- a file with mistakes -------------------------------------------------------------------


def test_bad_cells_import_nothing_and_each_is_named(database, program) -> None:
    """Every bad cell of every row is reported by row (header = 1), column and reason; nothing written."""
    rows = rows_of()
    rows[0] |= {"birth_date": "03/02/1948", "postal_code": "9460"}  # row 2
    rows[2] |= {"elevator": "maybe", "boxes": "9", "dietary": "diabetic;vegan", "lon": ""}  # row 4
    rows[3] |= {"consent_to_share": "no", "hunger_worried": ""}  # row 5
    rows[4] |= {"mrn": "A-1001"}  # row 6: the same patient twice
    report = run_import(database, program.clinic1_id, to_csv(rows))
    assert not report.ok and not report.imported
    assert problems(report) == {(2, "birth_date"), (2, "postal_code"), (4, "elevator"), (4, "boxes"),
                                (4, "dietary"), (4, "lat, lon"), (5, "consent_to_share"),
                                (5, "hunger_worried"), (6, "mrn")}
    reasons = {(p.row, p.column): p.reason for p in report.problems}
    assert "YYYY-MM-DD" in reasons[(2, "birth_date")] and "ZIP" in reasons[(2, "postal_code")]
    assert "yes or no" in reasons[(4, "elevator")] and "between 1 and 6" in reasons[(4, "boxes")]
    assert "vegan" in reasons[(4, "dietary")] and "both lat and lon" in reasons[(4, "lat, lon")]
    assert reasons[(5, "hunger_worried")] == "This is required." and "row 2" in reasons[(6, "mrn")]
    assert count(database, Patient) == count(database, Referral) == count(database, ReferralEvent) == 0
    text = report.text()
    assert "nothing was imported" in text and "03/02/1948" in text


def test_header_errors_are_reported_up_front(database, program) -> None:
    """Unknown columns and missing required columns are named before any row is read."""
    rows = [{**row, "colour": "red"} for row in rows_of()]
    for row in rows:
        del row["postal_code"], row["mobility_barrier"]
    report = run_import(database, program.clinic1_id, to_csv(rows))
    assert problems(report) == {(1, "colour"), (1, "postal_code"), (1, "mobility_barrier")}
    assert count(database, Patient) == 0


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty"),
    (EXAMPLE.read_bytes().splitlines()[0] + b"\r\n", "no referral rows"),
    ("mrn,given_name\nA-1,Zoë\n".encode("cp1252"), "UTF-8"),
    (b"mrn;given_name;family_name\r\n", "save it comma-separated"),
])
def test_unusable_files_are_explained(database, program, content: bytes, reason: str) -> None:
    """An empty file, a header alone, a non-UTF-8 file, a semicolon-separated one: a clear reason."""
    report = run_import(database, program.clinic1_id, content)
    assert not report.ok and reason in report.text()


# --- importing again ------------------------------------------------------------------------


def test_reimporting_the_file_adds_no_patient_and_keeps_open_referrals(database, small_program) -> None:
    """The same file twice: no new patient, no new order; every row is 'already referred'."""
    first = run_import(database, small_program.clinic1_id, EXAMPLE.read_bytes())
    assert first.ok
    with database.reader() as db:
        open_before = db.scalars(select(Referral.id).where(Referral.status.in_(("active", "waitlisted"))))
        open_before = set(open_before)
    orders = count(database, Order)
    second = run_import(database, small_program.clinic1_id, EXAMPLE.read_bytes())
    assert second.ok, second.text()
    assert second.new_patients == 0 and second.updated_patients == 0 and second.already_referred == 5
    assert count(database, Patient) == 5 and count(database, Order) == orders
    with database.reader() as db:
        open_after = set(db.scalars(select(Referral.id).where(Referral.status.in_(("active", "waitlisted")))))
    assert open_after == open_before
    assert "already referred, unchanged: 5" in second.text()


def test_reimporting_the_file_creates_no_new_referrals(database, small_program) -> None:
    """The same file twice creates no referral at all, also for the pickup and not-eligible rows."""
    assert run_import(database, small_program.clinic1_id, EXAMPLE.read_bytes()).ok
    referrals = count(database, Referral)
    assert run_import(database, small_program.clinic1_id, EXAMPLE.read_bytes()).ok
    assert count(database, Referral) == referrals


def test_changed_details_update_the_patient(database, program) -> None:
    """A later file with a new phone number updates that patient (counted as updated, not new)."""
    assert run_import(database, program.clinic1_id, EXAMPLE.read_bytes()).ok
    rows = rows_of()
    rows[0]["phone"] = "+15105559999"
    report = run_import(database, program.clinic1_id, to_csv(rows))
    assert report.ok and report.updated_patients == 1 and report.new_patients == 0
    with database.reader() as db:
        assert db.scalar(select(Patient.phone).where(Patient.mrn == "A-1001")) == "+15105559999"


def test_blank_cells_keep_what_is_stored_and_changes_are_reported(database, program) -> None:
    """A later file with blank phone, language, floor, notes and diet blanks none of them; its one
    changed cell is reported with before and after, in the report and on the timeline."""
    assert run_import(database, program.clinic1_id, EXAMPLE.read_bytes()).ok
    with database.reader() as db:
        before = db.scalar(select(Patient).where(Patient.mrn == "A-1002"))
        known = (before.phone, before.language, before.floor, before.access_notes, before.dietary)
    row = rows_of()[1]
    for column in ("phone", "language", "floor", "elevator", "access_notes", "dietary", "unit"):
        row[column] = ""
    row["given_name"] = "Minh Anh"
    report = run_import(database, program.clinic1_id, to_csv([row]))
    assert report.ok, report.text()
    assert [(c.row, c.mrn) for c in report.changes] == [(2, "A-1002")]
    assert "given name Minh → Minh Anh" in report.changes[0].changes
    assert "given name Minh → Minh Anh" in report.text()
    with database.reader() as db:
        after = db.scalar(select(Patient).where(Patient.mrn == "A-1002"))
        assert (after.phone, after.language, after.floor, after.access_notes, after.dietary) == known
        referral_id = db.scalar(select(Referral.id).where(Referral.patient_id == after.id))
        corrected = [e for e in timeline.history(db, referral_id) if e.kind == EventKind.patient_corrected]
        assert [c.after for c in corrected[-1].data.changes if c.field == "given_name"] == ["Minh Anh"]
        assert "given name Minh → Minh Anh" in corrected[-1].text


def test_corrected_address_is_kept_and_the_new_one_proposed(database, program) -> None:
    """A coordinator corrected the address: a later import proposes its address, never overwrites."""
    assert run_import(database, program.clinic1_id, EXAMPLE.read_bytes()).ok
    with database.writer() as db:
        db.execute(update(Patient).where(Patient.mrn == "A-1001").values(
            address_line1="1236 98th Ave", address_corrected_at=utcnow()))
        db.commit()
    rows = rows_of()
    rows[0] |= {"address_line1": "77 New St", "unit": "", "lat": "37.75", "lon": "-122.17"}
    report = run_import(database, program.clinic1_id, to_csv(rows))
    assert report.ok, report.text()
    assert [(r.row, r.mrn, r.kind) for r in report.reviews] == [(2, "A-1001", "address_change")]
    with database.reader() as db:
        patient = db.scalar(select(Patient).where(Patient.mrn == "A-1001"))
        item = db.scalar(select(ReviewItem))
        assert patient is not None and item is not None
        assert patient.address_line1 == "1236 98th Ave" and patient.lat == pytest.approx(37.7491)
        assert item.kind == "address_change" and item.details["proposed"]["address_line1"] == "77 New St"
    assert "address change" in report.text()


def test_same_name_and_birth_date_under_a_new_mrn_is_flagged(database, program) -> None:
    """A new MRN for a known name and birth date is a new patient flagged possible_duplicate."""
    assert run_import(database, program.clinic1_id, EXAMPLE.read_bytes()).ok
    rows = [rows_of()[0] | {"mrn": "Z-9001"}]
    report = run_import(database, program.clinic1_id, to_csv(rows))
    assert report.ok and report.new_patients == 1
    assert [(r.row, r.mrn, r.kind) for r in report.reviews] == [(2, "Z-9001", "possible_duplicate")]
    with database.reader() as db:
        item = db.scalar(select(ReviewItem))
        assert item is not None and item.details["other_mrn"] == "A-1001"
    assert count(database, Patient) == 6


# --- which clinic ---------------------------------------------------------------------------


def test_clinic_column_names_each_rows_clinic(database, program) -> None:
    """Without a clinic chosen, a clinic column (name or id) decides; unknown names are cell errors."""
    rows = rows_of()[:3]
    rows[0]["clinic"] = "fruitvale clinic"
    rows[1]["clinic"] = str(program.clinic2_id)
    rows[2]["clinic"] = "Nowhere Clinic"
    report = run_import(database, None, to_csv(rows))
    assert problems(report) == {(4, "clinic")}
    rows[2]["clinic"] = "Elmhurst Clinic"
    assert run_import(database, None, to_csv(rows)).ok
    with database.reader() as db:
        clinics = dict(db.execute(select(Patient.mrn, Patient.clinic_id)).all())
    assert clinics == {"A-1001": program.clinic1_id, "A-1002": program.clinic2_id,
                       "A-1003": program.clinic2_id}


def test_a_row_naming_another_clinic_is_refused(database, program) -> None:
    """Importing for one clinic, a row that names another is an error, not a silent move."""
    rows = [row | {"clinic": "Elmhurst Clinic"} for row in rows_of()[:1]]
    report = run_import(database, program.clinic1_id, to_csv(rows))
    assert problems(report) == {(2, "clinic")} and "another clinic" in report.problems[0].reason


def test_a_clinic_without_a_program_imports_nothing(database, program) -> None:
    """A clinic not linked to a food bank: the reason, and no rows written."""
    with database.writer() as db:
        lone = Organization(name="Lone Clinic", kind=OrganizationKind.clinic)
        db.add(lone)
        db.commit()
    report = run_import(database, lone.id, EXAMPLE.read_bytes())
    assert not report.ok and "food bank" in report.text() and count(database, Patient) == 0


@pytest.mark.parametrize(("clinic", "reason"), [
    ("Nowhere", "No clinic has the name or id 'Nowhere'"),
    (None, "Name the clinic"),
])
def test_import_file_needs_a_known_clinic(database, program, clinic, reason) -> None:
    """Two clinics, no --clinic and no clinic column (or an unknown one): a clear error, nothing written."""
    report = csv_import.import_file(database, EXAMPLE, clinic=clinic, clock=Clock())
    assert not report.ok and reason in report.text() and count(database, Patient) == 0


def test_import_file_uses_the_only_clinic(database) -> None:
    """With one clinic only, --clinic is not needed."""
    with database.writer() as db:
        bank = Organization(name="Bank", kind=OrganizationKind.food_bank, boxes_per_delivery_day=None)
        db.add(bank)
        db.flush()
        db.add(Organization(name="Only Clinic", kind=OrganizationKind.clinic, food_bank_id=bank.id))
        db.commit()
    report = csv_import.import_file(database, EXAMPLE, clinic=None, clock=Clock())
    assert report.ok, report.text()
    assert count(database, Patient) == 5


# --- the command ----------------------------------------------------------------------------


def test_cli_imports_and_prints_the_report(database_url, database, program, monkeypatch,
                                           capsys, tmp_path) -> None:
    """`delivery import referrals FILE --clinic NAME`: exit 0 and counts; a bad file: exit 1, rows named."""
    monkeypatch.setenv("DELIVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("DELIVERY_SECRET_KEY", "test-secret")
    assert main(["import", "referrals", str(EXAMPLE), "--clinic", "Fruitvale Clinic"]) == 0
    out = capsys.readouterr().out
    assert "5 row(s) imported" in out and "3 home delivery" in out
    bad = tmp_path / "bad.csv"
    rows = rows_of()
    rows[1]["birth_date"] = "yesterday"
    bad.write_text(to_csv(rows))
    assert main(["import", "referrals", str(bad), "--clinic", str(program.clinic1_id)]) == 1
    out = capsys.readouterr().out
    assert "nothing was imported" in out and "birth_date" in out and "    3  " in out
    assert main(["import", "referrals", str(tmp_path / "missing.csv"), "--clinic", "1"]) == 1
    assert "Cannot read" in capsys.readouterr().out
    assert count(database, Patient) == 5


# --- the upload page ------------------------------------------------------------------------


def test_upload_page_imports_for_the_staff_members_clinic(client, database, program) -> None:
    """Clinic staff upload the example: the page shows the counts; the patients are their clinic's."""
    token = sign_in(client, program.clinic1)
    form = client.get("/clinic/referrals/import")
    assert form.status_code == 200
    assert 'type="file"' in form.text and "/clinic/referrals/import/template.csv" in form.text
    assert "hunger_worried" in form.text
    response = client.post("/clinic/referrals/import", data={"csrf_token": token},
                           files={"file": ("referrals.csv", EXAMPLE.read_bytes(), "text/csv")})
    assert response.status_code == 200, response.text
    assert "5 rows imported" in response.text and "Home delivery" in response.text
    with database.reader() as db:
        assert set(db.scalars(select(Patient.clinic_id))) == {program.clinic1_id}
    again = client.post("/clinic/referrals/import", data={"csrf_token": token},
                        files={"file": ("referrals.csv", EXAMPLE.read_bytes(), "text/csv")})
    assert "Already referred" in again.text and count(database, Patient) == 5


def test_upload_page_lists_each_problem_and_imports_nothing(client, database, program) -> None:
    """A bad upload: 422, a table of row, column and reason; nothing written."""
    token = sign_in(client, program.clinic2)
    rows = rows_of()
    rows[2]["postal_code"] = "ABCDE"
    response = client.post("/clinic/referrals/import", data={"csrf_token": token},
                           files={"file": ("bad.csv", to_csv(rows).encode(), "text/csv")})
    assert response.status_code == 422
    assert "<table" in response.text and "postal_code" in response.text and ">4<" in response.text
    assert "Nothing was imported" in response.text and count(database, Patient) == 0


def test_upload_without_a_file_asks_for_one(client, database, program) -> None:
    """Submitting the form with no file chosen says so (422), nothing else happens."""
    token = sign_in(client, program.clinic1)
    response = client.post("/clinic/referrals/import", files={"csrf_token": (None, token)})
    assert response.status_code == 422 and "Choose a CSV file" in response.text


def test_upload_needs_the_csrf_token_and_the_template_downloads(client, database, program) -> None:
    """A post without the form's token is refused; the template CSV has the documented header."""
    sign_in(client, program.clinic1)
    # A real file upload without the token: refused, and the guard closes the uploaded file
    # (pytest would report a ResourceWarning otherwise).
    refused = client.post("/clinic/referrals/import",
                          files={"file": ("referrals.csv", EXAMPLE.read_bytes(), "text/csv")})
    assert refused.status_code == 403 and count(database, Patient) == 0
    template = client.get("/clinic/referrals/import/template.csv")
    assert template.status_code == 200 and template.headers["content-type"].startswith("text/csv")
    assert template.text.splitlines()[0] == ",".join(c.name for c in csv_import.COLUMNS)


def test_upload_page_is_for_clinic_staff_only(client, program) -> None:
    """A coordinator (not clinic staff) cannot use the clinic's import page."""
    sign_in(client, program.coordinator)
    assert client.get("/clinic/referrals/import", follow_redirects=False).status_code == 403


# --- SQLite's single writer is held for the write only ----------------------------------------


def many_rows(n: int) -> list[dict[str, str]]:
    """`n` valid rows: the example's first patient under new MRNs and names."""
    first = rows_of()[0]
    return [first | {"mrn": f"M-{i:05d}", "given_name": f"Rosa{i}", "phone": ""} for i in range(n)]


@contextmanager
def writer_checkouts(database: Database) -> Iterator[list[object]]:
    """Every time the single writer's connection is taken (SQLAlchemy's pool event)."""
    taken: list[object] = []

    def on_checkout(dbapi_connection: object, *_: object) -> None:
        taken.append(dbapi_connection)

    event.listen(database.write_engine, "checkout", on_checkout)
    try:
        yield taken
    finally:
        event.remove(database.write_engine, "checkout", on_checkout)


def test_an_upload_is_checked_without_the_writer(client, database, program) -> None:
    """A big upload with a bad last row is answered (422, the row named) without the writer ever
    being taken; a good upload takes it once, for the reads that decide the write and the write."""
    if not database.is_sqlite:
        pytest.skip("PostgreSQL has no single writer: both doors are one engine")
    token = sign_in(client, program.clinic1)
    rows = many_rows(400)
    rows[-1]["postal_code"] = "ABCDE"
    with writer_checkouts(database) as taken:
        response = client.post("/clinic/referrals/import", data={"csrf_token": token},
                               files={"file": ("big.csv", to_csv(rows).encode(), "text/csv")})
    assert response.status_code == 422 and "postal_code" in response.text and ">401<" in response.text
    assert taken == []
    with writer_checkouts(database) as taken:
        response = client.post("/clinic/referrals/import", data={"csrf_token": token},
                               files={"file": ("referrals.csv", EXAMPLE.read_bytes(), "text/csv")})
    assert response.status_code == 200 and "5 rows imported" in response.text
    assert len(taken) == 1 and count(database, Patient) == 5


def test_another_writer_commits_while_a_file_is_checked(database, program, tmp_path) -> None:
    """`delivery import referrals`: while the rows are being checked nobody holds the writer, so a
    driver's confirmation (here: any write) commits at once; the import then writes every row."""
    if not database.is_sqlite:
        pytest.skip("PostgreSQL has no single writer: both doors are one engine")
    path = tmp_path / "big.csv"
    path.write_text(to_csv(many_rows(300)))
    checked_while_free: list[int] = []

    def check_and_write_meanwhile(cells: dict[str, str], number: int,
                                  report: csv_import.ImportReport) -> ReferralIn | None:
        if number == 150:  # half-way through the file
            assert database.write_engine.pool.checkedout() == 0  # (else the write below would wait)
            with database.writer() as other:
                other.add(Organization(name="Night Clinic", kind=OrganizationKind.clinic,
                                       food_bank_id=program.food_bank_id))
                other.commit()
        if database.write_engine.pool.checkedout() == 0:
            checked_while_free.append(number)
        return csv_import._check_row(cells, number, report)

    report = csv_import.import_file(database, path, clinic="Fruitvale Clinic", clock=Clock(),
                                    check_row=check_and_write_meanwhile)
    assert report.ok, report.text()
    assert checked_while_free == list(range(2, 302))
    assert count(database, Patient) == 300
    with database.reader() as db:
        assert db.scalar(select(Organization.id).where(Organization.name == "Night Clinic"))
