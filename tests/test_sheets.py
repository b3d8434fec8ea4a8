"""Printed route sheets, box labels and the day's CSV export, for the coordinator."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from litestar.testing import TestClient
from sqlalchemy import event

from delivery.platform.db import Database
from tests.builders import Program, sign_in
from tests.plan_builders import DEFAULT_STOPS, StopSpec, make_day

DAY = dt.date(2026, 12, 1)


@pytest.fixture
def day(program: Program, database: Database):  # type: ignore[no-untyped-def]
    stops = [[*DEFAULT_STOPS[0], StopSpec("Eve", "Formula", access_notes="=HYPERLINK(\"http://x\")",
                                          box_type="family", boxes=1, phone="+44 20 7946 0958")],
             DEFAULT_STOPS[1]]
    with database.writer() as db:
        built = make_day(db, program, date=DAY, stops=stops)
        db.commit()
    return built


def test_route_sheet_lists_stops_in_order_and_packs_last_stop_first(client: TestClient, program: Program,
                                                                    day) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, program.coordinator)
    sheet = client.get(f"/coordinator/plans/{day.plan_id}/routes/{day.route_ids[0]}/sheet")
    assert sheet.status_code == 200
    html = sheet.text
    row = r'<tr class="sheet-stop">\s*<td class="seq">(\d+)</td>\s*<td>[^<]*</td>\s*<td>([^<]+)</td>'
    names = re.findall(row, html)
    assert names == [("1", "Rosa D."), ("2", "Minh T."), ("3", "Ana L."), ("4", "Eve F.")]
    assert "gate code 1234" in html and "ring twice" in html
    loading = html.split('class="loading-order"')[1].split("</ol>")[0]
    assert [int(n) for n in re.findall(r"Stop (\d+)", loading)] == [4, 3, 2, 1]
    totals = html.split('class="packing-totals"')[1].split("</ul>")[0]
    assert "<strong>2</strong> × diabetic" in totals and "<strong>1</strong> × family" in totals
    assert "Wei" not in html  # the other route is not on this sheet


def test_all_sheets_break_pages_between_routes(client: TestClient, program: Program, day) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, program.coordinator)
    html = client.get(f"/coordinator/plans/{day.plan_id}/sheets").text
    assert html.count('class="route-sheet"') == 2
    assert "Route 1 · Driver1 Volunteer" in html and "Route 2 · Driver2 Volunteer" in html


def test_labels_carry_first_name_stop_box_type_and_diet(client: TestClient, program: Program, day) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, program.coordinator)
    html = client.get(f"/coordinator/plans/{day.plan_id}/labels").text
    labels = re.findall(r'<div class="box-label">(.*?)</div>', html, flags=re.S)
    assert len(labels) == 2 + 1 + 1 + 1 + 1 + 2  # one per box
    rosa = [label for label in labels if "Rosa" in label]
    assert len(rosa) == 2
    assert "Route 1 · Stop 1" in rosa[0] and "diabetic · 1/2" in rosa[0]
    assert '<span class="diet">diabetic' in rosa[0]
    assert "Diaz" not in html


def test_csv_export_one_row_per_stop_and_no_formulas(client: TestClient, program: Program, day) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, program.coordinator)
    response = client.get(f"/coordinator/plans/{day.plan_id}/export.csv")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="delivery-2026-12-01.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 6
    assert [(r["route"], r["seq"]) for r in rows][:2] == [("1", "1"), ("1", "2")]
    eve = next(r for r in rows if r["first_name"] == "Eve")
    assert eve["access_notes"] == "'=HYPERLINK(\"http://x\")"
    # Phones as people dial them, usable as is: no "+" that needs the formula-guarding quote.
    assert {r["phone"] for r in rows if r["first_name"] != "Eve"} == {"(510) 555-0100"}
    assert eve["phone"] == "011 44 20 7946 0958"
    assert "mrn" not in rows[0] and "birth_date" not in rows[0]


def test_sheet_queries_do_not_grow_with_stops(client: TestClient, program: Program,
                                              database: Database) -> None:
    with database.writer() as db:
        small = make_day(db, program, date=DAY, stops=[[StopSpec("A", "B")]])
        big = make_day(db, program, date=DAY + dt.timedelta(days=7),
                       stops=[[StopSpec(f"P{i}", "Q") for i in range(12)], [StopSpec("R", "S")] * 1])
        db.commit()
    sign_in(client, program.coordinator)
    statements: list[str] = []

    def count(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        statements.append(args[2])

    counts = []
    for plan_id in (small.plan_id, big.plan_id):
        statements.clear()
        event.listen(database.read_engine, "before_cursor_execute", count)
        try:
            assert client.get(f"/coordinator/plans/{plan_id}/sheets").status_code == 200
        finally:
            event.remove(database.read_engine, "before_cursor_execute", count)
        counts.append(len(statements))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("suffix", ["routes/{route}/sheet", "sheets", "labels", "export.csv", "board"])
def test_clinic_staff_get_403(client: TestClient, program: Program, day, suffix: str) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, program.clinic1)
    url = f"/coordinator/plans/{day.plan_id}/" + suffix.format(route=day.route_ids[0])
    assert client.get(url).status_code == 403
