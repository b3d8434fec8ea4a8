"""A new food bank's first hour in a real browser, on a phone-sized screen: the first-run page starts
an empty program, the admin lands on their pages, invites a clinic's staff member (no SMTP here, so
the page shows the link), and that person joins and reaches the referral form. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


def test_first_run_page_to_a_working_empty_program(empty_server: LiveServer, browser,  # type: ignore[no-untyped-def]
                                                   artifacts: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)  # CSP reports here
    page.goto(empty_server.url)
    expect(page).to_have_url(re.compile(r"/setup$"))
    expect(page.get_by_role("heading", name="Start your program")).to_be_visible()

    page.get_by_label(re.compile(r"^Food bank name( \*)?$")).fill("Northside Pantry")
    page.get_by_label("Time zone").select_option("America/Chicago")
    page.get_by_label(re.compile(r"^Delivery day( \*)?$")).select_option(label="Wednesday")
    page.get_by_label("Boxes available per delivery day").fill("40")
    page.get_by_label("diabetic").check()
    page.get_by_label(re.compile(r"^Address( \*)?$")).fill("100 Lake St, Chicago")
    page.get_by_label(re.compile(r"^Latitude( \*)?$")).fill("41.8853")
    page.get_by_label(re.compile(r"^Longitude( \*)?$")).fill("-87.6229")
    page.get_by_label("Clinic names, one per line").fill("Lakeview Clinic\nPilsen Health")
    page.get_by_label(re.compile(r"^Your name( \*)?$")).fill("Ada Admin")
    page.get_by_label(re.compile(r"^Email( \*)?$")).fill("ada@northside.example")
    page.get_by_label(re.compile(r"^Password( \*)?$")).fill("password")  # too common: refused, and said so
    page.screenshot(path=str(artifacts / "first_run_form.png"), full_page=True)
    page.get_by_role("button", name="Start the program").click()
    expect(page.get_by_text("one of the most common ones")).to_be_visible()
    # nothing typed is lost
    expect(page.get_by_label(re.compile(r"^Food bank name( \*)?$"))).to_have_value("Northside Pantry")

    page.get_by_label(re.compile(r"^Password( \*)?$")).fill("an admin's long passphrase")
    page.get_by_role("button", name="Start the program").click()
    expect(page.get_by_text("Your program is ready")).to_be_visible()
    page.screenshot(path=str(artifacts / "first_run_done.png"), full_page=True)

    page.get_by_role("link", name="Program", exact=True).click()
    expect(page.get_by_role("heading", name="Northside Pantry")).to_be_visible()
    expect(page.get_by_label("Boxes per delivery day")).to_have_value("40")
    page.goto(f"{empty_server.url}/admin/partners")
    expect(page.get_by_text("100 Lake St, Chicago")).to_be_visible()

    page.goto(f"{empty_server.url}/admin")
    page.get_by_label(re.compile(r"^Email( \*)?$")).fill("sam@lakeview.example")
    page.get_by_label(re.compile(r"^Role( \*)?$")).select_option("clinic_staff")
    page.get_by_label(re.compile(r"^Clinic \(for clinic staff")).select_option(label="Lakeview Clinic")
    page.get_by_role("button", name="Send the invite").click()
    expect(page.get_by_text("nothing was sent")).to_be_visible()
    link = page.locator("#shown-link").inner_text()
    page.screenshot(path=str(artifacts / "first_run_invite.png"), full_page=True)

    sam = browser.new_context(viewport=PHONE).new_page()
    sam.goto(link)
    sam.get_by_label("Your name").fill("Sam Staff")
    sam.get_by_label("New password").fill("lakeview carrots every week")
    sam.get_by_role("button", name="Join").click()
    expect(sam).to_have_url(re.compile(r"/clinic"))
    sam.goto(f"{empty_server.url}/clinic/referrals/new")
    expect(sam.get_by_role("heading", level=1)).to_be_visible()
    sam.screenshot(path=str(artifacts / "first_run_clinic_staff.png"), full_page=True)
    assert [p for p in problems if "Content Security Policy" in p] == []  # no inline style or script
    context.close()
