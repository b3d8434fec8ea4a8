"""The funder report as a program manager uses it, on the demo with its past weeks: the coordinator
opens last month's report, sees boxes delivered and the charts, and downloads a table as CSV and the
whole report as PDF. A screenshot is kept as a test artefact; the CSP stays clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import WATCH_CSP, LiveServer

pytestmark = pytest.mark.browser


def test_last_months_report_with_its_csv_and_pdf(  # type: ignore[no-untyped-def]
        running_program: LiveServer, browser, artifacts: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.goto(f"{running_program.url}/login")
    page.get_by_label("Email").fill("coordinator@demo.test")
    page.get_by_label("Password").fill(running_program.password)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    page.wait_for_load_state()

    page.goto(f"{running_program.url}/reports")
    page.get_by_role("link", name="Last month").click()
    expect(page.locator("h1")).to_have_text("Funder report")
    delivered = page.get_by_text(re.compile(r"\b[1-9]\d* box(es)? delivered"))
    expect(delivered.first).to_be_visible()  # the past weeks' deliveries, counted from the events
    charts = page.locator("img[src^='/reports/charts/']")
    expect(charts.first).to_be_visible()
    page.wait_for_load_state("networkidle")
    drawn = page.evaluate("[...document.querySelectorAll(\"img[src^='/reports/charts/']\")]"
                          ".map(img => img.complete && img.naturalWidth > 0)")
    assert drawn and all(drawn), drawn  # every chart is an SVG the browser could draw
    page.screenshot(path=str(artifacts / "funder_report.png"), full_page=True)

    with page.expect_download() as pdf_download:
        page.get_by_role("link", name="Download the report (PDF)").click()
    pdf = Path(pdf_download.value.path())
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000
    with page.expect_download() as csv_download:
        page.locator(".report-downloads a[href^='/reports/tables/']").first.click()
    table = Path(csv_download.value.path()).read_text()
    assert table.count("\n") >= 2 and "," in table.splitlines()[0]
    assert page.evaluate("window.__csp") == []
    context.close()
