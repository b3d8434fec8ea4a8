"""The coordinator's week in a real browser: sign in, open the next delivery day, plan it and watch
the progress finish, move a stop to another route, lock it, re-optimise (the lock holds), publish,
open a route's printable manifest. Screenshots of the map and the manifest go to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from delivery.models import Route, Stop
from tests.browser.conftest import LiveServer, coordinator_page

pytestmark = pytest.mark.browser

SOLVE_S = "2"
LONG = 90_000  # ms: a 2 s solve in a worker process on a loaded 2-core machine


def wait_for_plan(page) -> None:  # type: ignore[no-untyped-def]
    page.locator("#progress").wait_for(state="detached", timeout=LONG)
    page.locator("article.route-box").first.wait_for(timeout=LONG)


def test_plan_edit_reoptimise_publish(live_server: LiveServer, browser, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    offline: list[str] = []

    def only_local(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            offline.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page, csp_console = coordinator_page(context, live_server)

    page.goto(f"{live_server.url}/coordinator")
    page.get_by_role("link", name="Plan a day").click()
    page.get_by_role("button", name="Open the day").click()
    expect(page.locator("h1")).to_contain_text("Delivery day")
    page.get_by_role("button", name="Build the day's stops").click()  # opening a day writes nothing
    # The built day replaces the page: wait for it, or a loaded machine clicks "Plan routes" on the old one.
    expect(page.get_by_role("button", name="Build the day's stops")).to_have_count(0, timeout=LONG)
    expect(page.locator(".capacity")).to_contain_text("boxes due")

    page.get_by_label("Time for the planner (seconds)").fill(SOLVE_S)
    page.get_by_role("button", name="Plan routes").click()
    expect(page.locator("#progress")).to_contain_text("Planning routes", timeout=LONG)
    wait_for_plan(page)
    expect(page.locator("#map")).to_have_attribute("data-drawn", re.compile(r"\d+"), timeout=LONG)
    assert page.locator("#map .stop-num").count() > 0
    page.screenshot(path=str(artifacts / "plan_map.png"), full_page=False)

    routes = page.locator("article.route-box")
    assert routes.count() >= 2
    source, target = routes.nth(0), routes.nth(1)
    target_id = int((target.get_attribute("id") or "").split("-")[1])
    stop_li = source.locator("li.plan-stop").first
    stop_id = int((stop_li.get_attribute("id") or "").split("-")[1])

    # Move it with the keyboard-friendly controls: a select of routes, a position, a button.
    stop_li.get_by_role("button", name=re.compile("^Edit")).click()
    stop_li.get_by_label("Move to route").select_option(str(target_id))
    stop_li.get_by_label("At position").fill("1")
    stop_li.get_by_role("button", name="Move stop", exact=True).click()
    expect(page.locator("#day .notice.ok")).to_contain_text("Moved to", timeout=LONG)
    moved = page.locator(f"#route-{target_id} #stop-{stop_id}")
    expect(moved).to_be_visible()

    moved.get_by_role("button", name=re.compile("^Edit")).click()
    moved.get_by_role("button", name="Lock to this driver").click()
    expect(page.locator(f"#route-{target_id} #stop-{stop_id} .badge.locked")).to_be_visible(timeout=LONG)

    page.get_by_label("Time for the planner (seconds)").fill(SOLVE_S)
    page.get_by_role("button", name=re.compile("Re-optimise")).click()
    # The old routes stay on the page until the new run's progress replaces them: wait for that
    # run to show, then to finish, or publishing would race the planner.
    expect(page.locator("#progress")).to_contain_text("Planning routes", timeout=LONG)
    wait_for_plan(page)
    expect(page.locator(f"#route-{target_id} #stop-{stop_id} .badge.locked")).to_be_visible(timeout=LONG)
    assert page.evaluate("window.__csp") == [] and csp_console == []  # planned, edited, re-planned
    with live_server.database.reader() as db:
        stop = db.get(Stop, stop_id)
        assert stop.locked and stop.route_id == target_id

    page.get_by_role("button", name="Publish to drivers").click()
    expect(page.locator("ul.links li").first).to_contain_text("@demo.test", timeout=LONG)
    assert page.locator("ul.links input").first.input_value().startswith(f"{live_server.url}/r/")

    with live_server.database.reader() as db:
        plan_id = db.scalar(select(Route.plan_id).where(Route.id == target_id))
        on_route = db.scalar(select(func.count(Stop.id)).where(Stop.route_id == target_id))
        address = db.get(Stop, stop_id).patient.address_line1
    page.goto(f"{live_server.url}/coordinator/plans/{plan_id}/routes/{target_id}/sheet")
    # the printed sheet lists exactly that route's stops, the moved one among them
    expect(page.locator("tr.sheet-stop")).to_have_count(on_route)
    expect(page.locator("tr.sheet-stop", has_text=address)).to_have_count(1)
    page.screenshot(path=str(artifacts / "plan_manifest.png"), full_page=True)
    assert offline == []  # no tile server, no CDN: everything came from the app
    context.close()
