"""The funder report through the app: coordinators see their program by clinic, clinic staff only
their own clinic, drivers nothing; the charts, each table's CSV and the PDF are the same figures;
the coordinator's overview shows this week's early wins."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from delivery.models import Organization
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import clock_on, sign_in
from tests.conftest import BASE_URL
from tests.test_reports import KnownMonth, act_out_march

MARCH = "start=2030-03-01&end=2030-03-31"


def words(html: str) -> str:
    """The page with its whitespace collapsed, as a reader sees the sentences."""
    return " ".join(html.split())


@pytest.fixture
def march(database: Database) -> KnownMonth:
    return act_out_march(database)


@pytest.fixture
def web(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The app on 20 March 2030, a Wednesday of the known month."""
    on_the_20th = Settings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__},
                              "clock": clock_on(dt.date(2030, 3, 20))})
    with TestClient(app=create_app(on_the_20th, database), base_url=BASE_URL) as client:
        yield client


def test_coordinator_sees_the_program_by_clinic(web: TestClient, march: KnownMonth) -> None:
    sign_in(web, march.program.coordinator)
    html = words(web.get(f"/reports?{MARCH}").text)
    assert "Eastside Food Bank: 1 March 2030 to 31 March 2030" in html
    assert "5 patients served, 12 boxes delivered in 10 of 12 delivery attempts" in html
    assert "<th scope=\"col\">Elmhurst Clinic</th><th scope=\"col\">Fruitvale Clinic</th>" in html
    assert 'src="/reports/charts/weekly?start=2030-03-01&amp;end=2030-03-31"' in html and "style=" not in html
    one = words(web.get(f"/reports?{MARCH}&clinic={march.program.clinic1_id}").text)
    assert "Fruitvale Clinic: 1 March 2030" in one and "3 patients served, 9 boxes" in one


def test_charts_tables_and_pdf_carry_the_same_figures(web: TestClient, march: KnownMonth) -> None:
    sign_in(web, march.program.coordinator)
    chart = web.get(f"/reports/charts/weekly?{MARCH}")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in chart.content and b"Deliveries by week" in chart.content
    assert web.get(f"/reports/charts/nonsense?{MARCH}").status_code == 404

    table = web.get(f"/reports/tables/figures?{MARCH}")
    assert table.headers["content-disposition"] == (
        'attachment; filename="report-figures-2030-03-01-2030-03-31.csv"')
    rows = {r[0]: r[1:] for r in csv.reader(io.StringIO(table.text))}
    assert rows["Figure"] == ["All clinics", "Elmhurst Clinic", "Fruitvale Clinic"]
    assert rows["Patients served"] == ["5", "2", "3"]
    assert rows["Days from referral to first box, 90th percentile"] == ["13.0", "13.0", "8.0"]

    pdf = web.get(f"/reports/pdf?{MARCH}")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_clinic_staff_see_only_their_clinic(web: TestClient, march: KnownMonth) -> None:
    sign_in(web, march.program.clinic2)
    html = words(web.get(f"/reports?{MARCH}").text)
    assert "Elmhurst Clinic: 1 March 2030" in html and "2 patients served, 3 boxes" in html
    assert "Fruitvale" not in html and 'action="/reports/costs"' not in html
    assert web.get(f"/reports?{MARCH}&clinic={march.program.clinic1_id}").status_code == 404
    assert web.get(f"/reports/tables/figures?{MARCH}&clinic={march.program.clinic1_id}").status_code == 404
    rows = list(csv.reader(io.StringIO(web.get(f"/reports/tables/figures?{MARCH}").text)))
    assert rows[0] == ["Figure", "Elmhurst Clinic"]
    assert web.post("/reports/costs", data={"box_cost": "1", "mileage_rate": "1"}).status_code == 403


def test_drivers_get_no_report(web: TestClient, march: KnownMonth) -> None:
    sign_in(web, "driver1@example.org")
    for url in (f"/reports?{MARCH}", f"/reports/pdf?{MARCH}", f"/reports/tables/figures?{MARCH}"):
        assert web.get(url).status_code == 403


def test_coordinator_sets_the_costs_the_report_uses(web: TestClient, march: KnownMonth,
                                                    database: Database) -> None:
    """$20 a box and $0.14 a mile: (12 × 20 + 30 × 0.14) / 12 = $20.35 a delivered box."""
    csrf = sign_in(web, march.program.coordinator)
    answer = web.post("/reports/costs", follow_redirects=False,
                      data={"box_cost": "20.00", "mileage_rate": "0.14", "csrf_token": csrf})
    assert answer.status_code in (302, 303), answer.text
    with database.reader() as db:
        food_bank = db.get(Organization, march.program.food_bank_id)
        assert (food_bank.box_cost_cents, food_bank.mileage_rate_cents) == (2000, 14)  # type: ignore[union-attr]
    assert "Cost per delivered box: $20.35" in words(web.get(f"/reports?{MARCH}").text)
    refused = web.post("/reports/costs", data={"box_cost": "-1", "mileage_rate": "0.14", "csrf_token": csrf})
    assert refused.status_code == 400


def test_overview_shows_this_weeks_early_wins(web: TestClient, march: KnownMonth) -> None:
    """The week of 18 March: four deliveries on the 19th, Dee's first box, Cal's receipt on the 20th."""
    sign_in(web, march.program.coordinator)
    html = words(web.get("/coordinator").text)
    wins = html[html.index('id="early-wins-'):]  # one list per program
    assert "<strong>4</strong> deliveries made" in wins
    assert "<strong>1</strong> new patient with their first box" in wins
    assert "<strong>1</strong> receipt confirmed by clinics" in wins
