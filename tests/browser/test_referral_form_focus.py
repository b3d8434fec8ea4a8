"""The referral form in a real browser on a phone: after a refused send, focus and the view go to
the error summary (not left at the button at the bottom), and its links lead to each field."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


def test_a_refused_referral_moves_focus_and_view_to_the_summary(live_server: LiveServer, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("clinic1@demo.test")
    page.get_by_label("Password").fill(live_server.password)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/clinic/referrals/new")
    page.get_by_label("First name").fill("Rosa")
    page.get_by_label("Floor").fill("300")
    page.get_by_role("button", name="Send referral").click()  # scrolls to the bottom to click

    summary = page.locator("#form-errors")
    expect(summary).to_be_focused()
    expect(summary).to_be_in_viewport()
    expect(summary).to_contain_text("Hunger question 1 (worried food would run out) is required.")
    expect(page.locator("#patient\\.floor-error")).to_have_text("Floor must be between -5 and 200.")

    summary.get_by_role("link", name="Floor must be between -5 and 200.").click()
    expect(page.locator("#patient\\.floor")).to_be_in_viewport()
    assert page.url.endswith("#patient.floor")
