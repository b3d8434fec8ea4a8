"""The partnership page in a real browser, on the demo program: the admin changes the demo clinic's
allocation and sees it in the change history; the clinic's staff read the same page on a phone,
without the form. Screenshots of both are kept as test artefacts; axe-core and the CSP stay clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from delivery import demo
from delivery.models import Organization
from tests.browser.conftest import AXE, WATCH_CSP, LiveServer, axe

pytestmark = pytest.mark.browser
PHONE = {"viewport": {"width": 393, "height": 727}, "device_scale_factor": 2.75, "is_mobile": True,
         "has_touch": True}


def sign_in(page, live_server: LiveServer, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(live_server.password)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    page.wait_for_load_state()


def demo_clinic(live_server: LiveServer) -> int:
    with live_server.database.reader() as db:
        clinic_id = db.scalar(select(Organization.id).where(Organization.name == demo.CLINICS[0]))
    assert clinic_id is not None
    return clinic_id


def test_the_admin_changes_the_allocation_and_the_clinic_reads_it(  # type: ignore[no-untyped-def]
        live_server: LiveServer, browser, artifacts: Path) -> None:
    from playwright.sync_api import expect

    clinic_id = demo_clinic(live_server)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    sign_in(page, live_server, "admin@demo.test")
    page.get_by_role("link", name="Partnerships").click()
    page.get_by_role("link", name=demo.CLINICS[0]).click()
    expect(page.locator("h1")).to_contain_text("Partnership: " + demo.CLINICS[0])
    expect(page.locator("#agreement")).to_contain_text("35 new patients per week")

    page.get_by_label("Allocation per week").fill("40")
    page.get_by_role("button", name="Save the agreement").click()
    expect(page.locator(".notice.ok[role=status]")).to_contain_text("allocation per week 35 → 40")
    expect(page.locator("#history li").first).to_contain_text("Denise Walker: allocation per week 35 → 40")
    expect(page.locator("#agreement")).to_contain_text("40 new patients per week")
    page.screenshot(path=str(artifacts / "partnership_admin.png"), full_page=True)
    assert page.evaluate("window.__csp") == []
    context.close()

    phone = browser.new_context(**PHONE)
    phone.add_init_script(WATCH_CSP)
    page = phone.new_page()
    sign_in(page, live_server, "clinic1@demo.test")
    expect(page.locator("#allocation-status")).to_contain_text("of this week's allocation")
    page.get_by_role("link", name="Partnership", exact=True).click()
    assert page.url.endswith(f"/partnerships/{clinic_id}")
    expect(page.locator("#agreement")).to_contain_text("40 new patients per week")
    expect(page.locator("#history")).to_contain_text("allocation per week 35 → 40")
    expect(page.get_by_role("button", name="Save the agreement")).to_have_count(0)
    page.screenshot(path=str(artifacts / "partnership_clinic_phone.png"), full_page=True)
    assert page.evaluate("window.__csp") == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    phone.close()


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not vendored under tests/browser/vendor")
def test_the_partnership_pages_have_no_serious_accessibility_violations(  # type: ignore[no-untyped-def]
        live_server: LiveServer, browser) -> None:
    clinic_id = demo_clinic(live_server)
    context = browser.new_context(**PHONE, bypass_csp=True)  # axe is injected as a script
    page = context.new_page()
    sign_in(page, live_server, "admin@demo.test")
    page.goto(f"{live_server.url}/partnerships/{clinic_id}")
    assert axe(page) == [], "the admin's partnership page, with its form"
    page.goto(f"{live_server.url}/partnerships")
    assert axe(page) == [], "the list of partnerships"
    context.close()
