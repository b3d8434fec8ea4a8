"""`delivery report` in its three formats over the known March: the JSON contract of DESIGN.md, a
CSV a spreadsheet opens safely, and a PDF whose text carries the same figures."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import update

from delivery.cli import main
from delivery.models import Organization
from delivery.platform.db import Database
from tests.test_reports import KnownMonth, act_out_march

PERIOD = ["--from", "2030-03-01", "--to", "2030-03-31"]
CONTRACT = {"patients_served", "boxes_delivered", "deliveries_attempted", "deliveries_succeeded",
            "days_to_first_box", "receipts_confirmed", "cost_per_box", "by_clinic"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("DELIVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("DELIVERY_SECRET_KEY", "test-secret")
    return database_url


@pytest.fixture
def march(database: Database) -> KnownMonth:
    return act_out_march(database)


def test_json_has_the_contracts_figures_overall_and_per_clinic(env, march: KnownMonth, capsys) -> None:
    """The DESIGN.md keys at the top and under each clinic, with the known month's values."""
    assert main(["report", *PERIOD]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= CONTRACT and report["from"] == "2030-03-01" and report["to"] == "2030-03-31"
    assert {k: report[k] for k in CONTRACT - {"by_clinic", "days_to_first_box"}} == {
        "patients_served": 5, "boxes_delivered": 12, "deliveries_attempted": 12, "deliveries_succeeded": 10,
        "receipts_confirmed": 2, "cost_per_box": 26.75}
    assert report["days_to_first_box"] == {"median": 4.5, "p90": 13.0, "patients": 4}
    assert set(report["by_clinic"]) == {"Fruitvale Clinic", "Elmhurst Clinic"}
    for figures in report["by_clinic"].values():
        assert set(figures) >= CONTRACT - {"by_clinic"}
    assert report["by_clinic"]["Elmhurst Clinic"]["cost_per_box"] == 27.33


def test_json_for_one_clinic(env, march: KnownMonth, tmp_path: Path) -> None:
    out = tmp_path / "elmhurst.json"
    assert main(["report", *PERIOD, "--clinic", "Elmhurst Clinic", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["clinic"], report["patients_served"], list(report["by_clinic"])) == (
        "Elmhurst Clinic", 2, ["Elmhurst Clinic"])


def test_csv_holds_every_table_and_is_formula_safe(env, march: KnownMonth, database: Database,
                                                   tmp_path: Path) -> None:
    """A clinic whose name a spreadsheet would run as a formula gets a leading quote."""
    with database.writer() as db:
        db.execute(update(Organization).where(Organization.id == march.program.clinic2_id)
                   .values(name="=HYPERLINK(\"x\")"))
        db.commit()
    out = tmp_path / "march.csv"
    assert main(["report", *PERIOD, "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["table", "Figure", "All clinics", "'=HYPERLINK(\"x\")", "Fruitvale Clinic"]
    by_label = {(r[0], r[1]): r[2:] for r in rows[1:]}
    assert by_label[("figures", "Boxes delivered")] == ["12", "3", "9"]
    assert by_label[("figures", "Cost per delivered box ($)")] == ["26.75", "27.33", "26.56"]
    assert by_label[("failed_attempts", "No answer")] == ["1", "0", "1"]
    assert by_label[("referrals", "Waitlisted")] == ["2", "2", "0"]
    assert by_label[("weeks", "2030-03-18")] == ["5", "2", "3"]


def test_pdf_is_a_pdf_that_carries_the_figures(env, march: KnownMonth, tmp_path: Path) -> None:
    out = tmp_path / "march.pdf"
    assert main(["report", *PERIOD, "--format", "pdf", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Eastside Food Bank: 1 March 2030 to 31 March 2030" in text
    assert "5 patients served, 12 boxes delivered in 10 of 12 delivery attempts" in text
    assert "$26.75" in text
    assert "Deliveries by week" in text  # the chart's own text, drawn into the PDF


def test_a_bad_period_or_clinic_says_what_to_fix(env, march: KnownMonth, capsys) -> None:
    assert main(["report", "--from", "2030-03-31", "--to", "2030-03-01"]) == 2
    assert "swap the dates" in capsys.readouterr().err
    assert main(["report", *PERIOD, "--clinic", "Nowhere"]) == 2
    assert "its clinics: Elmhurst Clinic, Fruitvale Clinic" in capsys.readouterr().err
