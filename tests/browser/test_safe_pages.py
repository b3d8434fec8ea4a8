"""The coordinator's pages in a real browser: no Content-Security-Policy violation anywhere (the
console stays clean), text from clinics shows as text on the map, and the API docs page and the
favicon are served from here."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from delivery.models import Patient
from tests.browser.conftest import LiveServer, coordinator_page

pytestmark = pytest.mark.browser

MARKUP = '<img src="x" id="injected"><b>Bold</b> '


def test_coordinator_pages_break_no_csp_rule_and_show_markup_as_text(  # type: ignore[no-untyped-def]
        live_server: LiveServer, browser) -> None:
    """A clinic's `<img>`/`<b>` in an address is plain text in the map's tooltip; no page of the
    coordinator's (day, sheets, board, reviews, waitlist, API docs) logs a CSP violation."""
    from playwright.sync_api import expect

    with live_server.database.writer() as db:  # a clinic typed markup into every address
        for patient in db.scalars(select(Patient)):
            patient.address_line1 = MARKUP + patient.address_line1
        db.commit()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, console = coordinator_page(context, live_server)
    violations: list[str] = []

    def visit(url: str) -> None:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        violations.extend(page.evaluate("window.__csp"))

    visit(f"{live_server.url}/coordinator")
    page.get_by_role("link", name="Plan a day").click()
    page.get_by_role("button", name="Open the day").click()
    expect(page.locator("h1")).to_contain_text("Delivery day")
    page.get_by_role("button", name="Build the day's stops").click()  # opening a day writes nothing
    expect(page.locator("#map")).to_have_attribute("data-drawn", re.compile(r"\d+"))
    day_url = page.url
    violations.extend(page.evaluate("window.__csp"))

    # Before planning every stop is "not on a route": hover one to open its tooltip.
    markers = page.locator("#map path.leaflet-interactive")
    tooltip = page.locator(".leaflet-tooltip", has_text="Not on a route")
    for index in range(markers.count()):
        markers.nth(index).hover(force=True)
        if tooltip.count():
            break
    else:
        pytest.fail("no tooltip showed a stop's address")
    assert '<img src="x" id="injected"><b>Bold</b>' in tooltip.first.inner_text()
    assert page.locator("#injected").count() == 0 and tooltip.locator("b").count() == 0

    links = {name: page.get_by_role("link", name=name, exact=True).get_attribute("href")
             for name in ("Plan", "Sheets", "Labels", "Board", "Export")}  # the day page links them all
    assert page.request.get(f"{live_server.url}{links['Export']}").ok
    for name in ("Sheets", "Labels", "Board"):
        visit(f"{live_server.url}{links[name]}")
    visit(day_url)
    for path in ("/coordinator/reviews", "/coordinator/waitlist", "/schema", "/schema/swagger"):
        visit(f"{live_server.url}{path}")
    page.goto(f"{live_server.url}/schema")
    expect(page.get_by_role("link", name=re.compile("openapi.json"))).to_be_visible()
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon and page.request.get(f"{live_server.url}{icon}").ok
    assert violations == [] and console == [], violations + console
    context.close()
