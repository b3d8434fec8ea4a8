"""The volunteer driver's phone in a real browser (Debian's chromium, a Pixel 5): open the personal
link, confirm a stop, lose the signal, confirm two more (one Couldn't deliver with a reason),
reload offline and see all three, get the signal back: the server holds exactly three
confirmations with their original times (R8.1). The same with the server process really stopped
and started again; a response lost after the commit (R8.2); the first load's size; axe-core on the
route page, a stop card, the reason dialog and sign-up. Screenshots go to test-artifacts/."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from delivery.models import Confirmation, Route
from delivery.plans import publishing
from delivery.platform.db import Database, upgrade
from delivery.platform.settings import ROOT, Settings
from tests.browser.conftest import AXE, CHROMIUM, axe
from tests.builders import make_program
from tests.plan_builders import DEFAULT_STOPS, StopSpec, make_day

pytestmark = pytest.mark.browser

LA = ZoneInfo("America/Los_Angeles")
WAIT = 20_000


@dataclass
class Server:
    url: str
    database: Database
    settings: Settings
    env: dict[str, str]
    port: int
    process: subprocess.Popen | None = None  # type: ignore[type-arg]

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "delivery", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def confirmations(self) -> list[Confirmation]:
        with self.database.reader() as db:
            return list(db.scalars(select(Confirmation).order_by(Confirmation.id)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real `delivery serve` process on a loopback port, with today's route published."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    url = f"sqlite:///{tmp_path / 'phone.db'}"
    upgrade(url)
    port = free_port()
    settings = Settings(database_url=url, secret_key="phone-test", base_url=f"http://127.0.0.1:{port}",
                        geocoder="none", secure_cookies=True)
    database = Database(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DELIVERY_DATABASE_URL": url,
           "DELIVERY_SECRET_KEY": "phone-test", "DELIVERY_BASE_URL": settings.base_url,
           "DELIVERY_GEOCODER": "none", "DELIVERY_DEMO": "false",
           "DELIVERY_PHOTO_DIR": str(tmp_path / "photos")}
    running = Server(settings.base_url, database, settings, env, port)
    running.start()
    yield running
    running.stop()
    database.dispose()


def today_route(server: Server, long_word: bool = False) -> tuple[str, list[int]]:
    """Publish today's day (program time) and return a fresh personal link and the stop ids."""
    notes = "Gatecode" + "X" * 150 if long_word else None  # one long unbroken word
    stops = [[*DEFAULT_STOPS[0], StopSpec("Kim", "Park", access_notes=notes)], DEFAULT_STOPS[1]]
    with server.database.writer() as db:
        program = make_program(db)
        day = make_day(db, program, date=dt.datetime.now(LA).date(), stops=stops)
        link = publishing.issue_link(db, db.get(Route, day.route_ids[0]), server.settings)  # type: ignore[arg-type]
        db.commit()
    return link, day.stop_ids[0]


def phone(browser):  # type: ignore[no-untyped-def]
    return browser.new_context(**PIXEL_5)


PIXEL_5 = {"viewport": {"width": 393, "height": 727}, "device_scale_factor": 2.75, "is_mobile": True,
           "has_touch": True,
           "user_agent": "Mozilla/5.0 (Linux; Android 11; Pixel 5) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/156.0.0.0 Mobile Safari/537.36"}


def card(page, stop_id: int):  # type: ignore[no-untyped-def]
    return page.locator(f"#stop-{stop_id}")


def confirm_delivered(page, stop_id: int) -> None:  # type: ignore[no-untyped-def]
    card(page, stop_id).get_by_role("button", name="Delivered", exact=True).click()


def confirm_failed(page, stop_id: int, reason: str, note: str) -> None:  # type: ignore[no-untyped-def]
    card(page, stop_id).get_by_role("button", name="Couldn't deliver", exact=True).click()
    dialog = page.locator("#reason-dialog")
    dialog.get_by_label(reason).check()
    dialog.get_by_label("Note (optional)").fill(note)
    dialog.get_by_role("button", name="Send").click()


def go_offline(context, server: Server) -> None:  # type: ignore[no-untyped-def]
    """Emulated offline, and requests the service worker makes cut off too (a known trap)."""
    context.set_offline(True)
    context.route(f"{server.url}/**", lambda route: route.abort("internetdisconnected"))


def go_online(context, server: Server) -> None:  # type: ignore[no-untyped-def]
    context.unroute(f"{server.url}/**")
    context.set_offline(False)


def wait_sent(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_function("() => JSON.parse(localStorage.getItem('delivery-outbox') || '[]')"
                           ".every(i => i.state === 'sent')", timeout=WAIT)


def open_link(page, link: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(link)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=WAIT)
    page.reload()  # now the page itself passes through the service worker


def test_offline_story_then_a_restarted_server(server: Server, browser, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    link, stops = today_route(server, long_word=True)
    context = phone(browser)
    page = context.new_page()
    page.goto(link)
    page.wait_for_load_state("load")
    # What crossed the network for the page and everything it loaded (headers included).
    first_load = page.evaluate("() => [...performance.getEntriesByType('navigation'),"
                               " ...performance.getEntriesByType('resource')]"
                               ".reduce((sum, e) => sum + e.transferSize, 0)")
    print(json.dumps({"driver_first_load_bytes": first_load}))
    assert 5_000 < first_load < 100_000
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 393, f"the page is {width}px wide on a 393px phone"  # a long word wraps
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=WAIT)
    page.screenshot(path=str(artifacts / "driver_route.png"), full_page=False)

    # online: the first stop, sent at once
    confirm_delivered(page, stops[0])
    wait_sent(page)
    expect(page.locator("#progress")).to_have_text("1 of 4 done")

    # no signal: two more, one of them Couldn't deliver with a reason
    go_offline(context, server)
    confirm_delivered(page, stops[1])
    card(page, stops[2]).scroll_into_view_if_needed()
    card(page, stops[2]).get_by_role("button", name="Couldn't deliver", exact=True).click()
    page.locator("#reason-dialog").screenshot(path=str(artifacts / "driver_reason_dialog.png"))
    page.locator("#reason-dialog").get_by_label("No answer").check()
    page.locator("#reason-dialog").get_by_label("Note (optional)").fill("rang twice")
    page.locator("#reason-dialog").get_by_role("button", name="Send").click()
    expect(page.locator("#outbox-banner")).to_have_text("Waiting to send (2)")
    page.screenshot(path=str(artifacts / "driver_offline_banner.png"), full_page=False)
    card(page, stops[3]).screenshot(path=str(artifacts / "driver_stop_card.png"))
    made = page.evaluate("JSON.parse(localStorage.getItem('delivery-outbox')).map(i => i.body.occurred_at)")

    page.reload()  # offline: the service worker's copy, and the phone's queue
    expect(page.locator("#progress")).to_have_text("3 of 4 done")
    expect(page.locator("#outbox-banner")).to_have_text("Waiting to send (2)")
    assert len(server.confirmations()) == 1

    go_online(context, server)
    page.evaluate("window.dispatchEvent(new Event('online'))")  # Playwright's own may come late
    wait_sent(page)
    expect(page.locator("#outbox-banner")).to_be_hidden()
    saved = server.confirmations()
    assert [(c.stop_id, c.outcome, c.note) for c in saved] == \
        [(stops[0], "delivered", None), (stops[1], "delivered", None), (stops[2], "no_answer", "rang twice")]
    assert [c.occurred_at.isoformat()[:19] for c in saved] == [m[:19] for m in made]  # the original times

    # the same with the server process really stopped, then started again
    server.stop()
    confirm_delivered(page, stops[3])
    page.wait_for_timeout(500)
    expect(page.locator("#outbox-banner")).to_have_text("Waiting to send (1)")
    page.reload()  # the server is down: the service worker's copy again
    expect(page.locator("#progress")).to_have_text("4 of 4 done")
    server.start()
    page.evaluate("window.dispatchEvent(new Event('online'))")
    wait_sent(page)
    assert len(server.confirmations()) == 4
    context.close()


def test_a_lost_response_is_retried_and_stored_once(server: Server, browser) -> None:  # type: ignore[no-untyped-def]
    """The server commits, the answer never arrives; the phone's retry gets the stored answer."""
    from playwright.sync_api import expect

    link, stops = today_route(server)
    context = phone(browser)
    page = context.new_page()
    open_link(page, link)
    lost: list[int] = []

    def commit_then_drop(route) -> None:  # type: ignore[no-untyped-def]
        if not lost:
            lost.append(route.fetch().status)  # reaches the server, which commits
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route("**/api/v1/stops/*/confirmations", commit_then_drop)
    confirm_delivered(page, stops[0])
    page.wait_for_timeout(500)
    assert lost == [201] and len(server.confirmations()) == 1
    expect(page.locator("#outbox-banner")).to_have_text("Waiting to send (1)")
    replies: list[str | None] = []
    page.on("response", lambda r: replies.append(r.headers.get("idempotency-replay"))
            if "/confirmations" in r.url else None)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    wait_sent(page)
    assert replies == ["true"]
    assert len(server.confirmations()) == 1
    expect(page.locator("#progress")).to_have_text("1 of 4 done")

    # Delivered with a photo: shrunk on the phone, attached with the confirmation's key
    page.unroute("**/api/v1/stops/*/confirmations")
    second = card(page, stops[1])
    second.locator("details.extras summary").click()
    second.get_by_label("Photo (optional)").set_input_files(
        files=[{"name": "door.jpg", "mimeType": "image/jpeg", "buffer": big_jpeg()}])
    confirm_delivered(page, stops[1])
    page.wait_for_function("() => { const items = JSON.parse(localStorage.getItem('delivery-outbox'));"
                           " return items.length === 2"
                           " && items.every(i => i.state === 'sent' && !i.photo); }",
                           timeout=WAIT)
    with_photo = server.confirmations()[-1]
    assert with_photo.stop_id == stops[1] and with_photo.photo_sha256
    assert (with_photo.photo_bytes or 0) < 400_000  # shrunk from a 3000 x 2000 original

    # Signing out with a confirmation not sent: a warning, and the queue stays; cached route data goes
    go_offline(context, server)
    confirm_delivered(page, stops[2])
    expect(page.locator("#outbox-banner")).to_have_text("Waiting to send (1)")
    warnings: list[str] = []
    page.once("dialog", lambda dialog: (warnings.append(dialog.message), dialog.accept()))
    page.route("**/api/v1/**", lambda route: route.abort("internetdisconnected"))  # the API still unreachable
    go_online(context, server)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login**", timeout=WAIT)
    assert warnings and "not sent yet" in warnings[0]
    left = page.evaluate("() => JSON.parse(localStorage.getItem('delivery-outbox'))")
    assert [(i["stop"], i["state"]) for i in left] == [(stops[2], "waiting")]  # only the unsent item
    assert page.evaluate("async () => (await caches.keys()).length") == 0  # no cached route pages
    context.close()


def big_jpeg() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (3000, 2000), (90, 140, 60)).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not vendored under tests/browser/vendor")
def test_no_serious_accessibility_violations(server: Server, browser, artifacts: Path) -> None:  # type: ignore[no-untyped-def]
    link, stops = today_route(server)
    context = browser.new_context(**PIXEL_5, bypass_csp=True)  # axe is injected as a script
    page = context.new_page()
    page.goto(link)
    assert axe(page) == [], "route page"
    card(page, stops[0]).locator("details.flags summary").click()
    assert axe(page) == [], "stop card with its flags open"
    card(page, stops[0]).get_by_role("button", name="Couldn't deliver", exact=True).click()
    assert axe(page) == [], "reason dialog"
    page.keyboard.press("Escape")
    page.goto(f"{server.url}/driver/shifts")
    assert axe(page) == [], "shift sign-up"
    page.screenshot(path=str(artifacts / "driver_shifts.png"), full_page=True)
    context.close()
