"""The coordinator's referral side in a real browser (htmx 2 on Debian's chromium): a refused change
comes back as a 422 and is swapped in place with its message (base.html's responseHandling), and a
review item settled from the queue turns into its resolved row without leaving the page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from delivery.models import GeocodeStatus, Order, OrderStatus, Organization, ReviewItem, ReviewKind
from delivery.program import capacity, waitlist
from delivery.program.scheduling import due_dates
from tests.browser.conftest import LiveServer

pytestmark = pytest.mark.browser


def sign_in(page, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("coordinator@demo.test")
    page.get_by_label("Password").fill(live_server.password)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    page.wait_for_load_state()


def full_order(live_server: LiveServer) -> tuple[int, int]:
    """An active weekly order whose delivery days are exactly full: (referral id, order id)."""
    today = dt.date.today()
    with live_server.database.writer() as db:
        order = db.scalars(select(Order).where(Order.status == OrderStatus.active, Order.cadence == "weekly",
                                               Order.paused_until.is_(None)).order_by(Order.id)).first()
        assert order is not None, "the demo has active weekly orders"
        food_bank = db.get(Organization, order.food_bank_id)
        load = waitlist.committed(db, food_bank, today)
        days = list(due_dates(waitlist.recurrence(order), today,
                              today + capacity.horizon(food_bank.waitlist_horizon_weeks)))
        food_bank.boxes_per_delivery_day = max(load[day] for day in days)
        db.commit()
        return order.referral_id, order.id


def test_a_refused_change_and_a_missing_reason_show_in_place(live_server: LiveServer, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    referral_id, order_id = full_order(live_server)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/coordinator/referrals/{referral_id}")

    page.get_by_text("Change day, boxes or time").click()
    boxes = page.locator("#change-boxes")
    before = int(boxes.input_value())
    boxes.fill(str(before + 1))
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#referral-body [role=alert]")).to_contain_text("No room:")
    assert page.url.endswith(f"/coordinator/referrals/{referral_id}")  # swapped, not navigated

    page.get_by_text("Override the outcome").click()
    page.get_by_role("button", name="Change the outcome").click()
    expect(page.locator("#override-reason-error")).to_contain_text("Reason is required.")
    expect(page.locator("#override-reason")).to_have_attribute("aria-invalid", "true")
    page.locator("#override-reason").fill("Coordinator checked by phone")
    page.get_by_role("button", name="Change the outcome").click()
    expect(page.locator("#referral-body .notice.ok[role=status]")).to_contain_text("Outcome set to")
    expect(page.locator("ol.timeline")).to_contain_text("Reason: Coordinator checked by phone")
    with live_server.database.reader() as db:
        assert db.get(Order, order_id).boxes == before


def test_a_review_item_settled_in_place(live_server: LiveServer, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    with live_server.database.writer() as db:
        order = db.scalars(select(Order).where(Order.status == OrderStatus.active)
                           .order_by(Order.id.desc())).first()
        order.patient.geocode_status = GeocodeStatus.needs_review
        item = ReviewItem(kind=ReviewKind.geocode_failed, patient_id=order.patient_id,
                          food_bank_id=order.food_bank_id, message="Could not be found on the map.")
        db.add(item)
        db.commit()
        item_id = item.id
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/coordinator/reviews")
    row = page.locator(f"#review-{item_id}")
    row.get_by_label("Latitude").fill("37.7491")
    row.get_by_label("Longitude").fill("122.1690")  # the minus sign forgotten
    row.get_by_role("button", name="Save this point").click()
    expect(row.locator(".field-error")).to_contain_text("km from")
    row.get_by_label("Longitude").fill("-122.1690")
    row.get_by_role("button", name="Save this point").click()
    expect(row.get_by_role("status")).to_contain_text("Point saved")
    with live_server.database.reader() as db:
        assert db.get(ReviewItem, item_id).resolved_at is not None
