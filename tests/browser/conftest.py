"""A live server (uvicorn in a thread, port 0) on a migrated SQLite file loaded with the demo program
(or empty, for the first run), and Playwright driving Debian's chromium (never `playwright install`).
Skipped without chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from delivery.platform.db import Database, upgrade
from delivery.platform.settings import ROOT, Settings
from tests.job_builders import running_worker
from tests.live import loopback_socket, serving

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "") if p and
                 os.path.exists(p)), None)
ARTIFACTS = ROOT / "test-artifacts"
AXE = ROOT / "tests" / "browser" / "vendor" / "axe-4.14.1.min.js"


@dataclass(frozen=True)
class LiveServer:
    url: str
    database: Database
    settings: Settings
    password: str


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo program, served."""
    yield from _serve(tmp_path_factory, with_demo=True)


@pytest.fixture(scope="module")
def running_program(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo as `delivery demo load` makes it: with its eight past weeks of deliveries."""
    yield from _serve(tmp_path_factory, with_demo=True, history_weeks=demo_history_weeks())


def demo_history_weeks() -> int:
    from delivery import demo

    return demo.HISTORY_WEEKS


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A fresh install with no program (what `DELIVERY_DEMO=false scripts/run` serves)."""
    yield from _serve(tmp_path_factory, with_demo=False)


def _serve(tmp_path_factory: pytest.TempPathFactory, *, with_demo: bool,
           history_weeks: int = 0) -> Iterator[LiveServer]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from delivery import demo
    from delivery.web.app import create_app

    here = tmp_path_factory.mktemp("live")
    url = f"sqlite:///{here / 'live.db'}"
    upgrade(url)
    database = Database(url)
    sock = loopback_socket()
    port = sock.getsockname()[1]
    settings = Settings(database_url=url, secret_key="browser-test", base_url=f"http://127.0.0.1:{port}",
                        geocoder="none", secure_cookies=True, tile_url="")
    password = ""
    if with_demo:
        # Without the past weeks unless asked: most stories count the next day's stops.
        demo.load(database, settings, password_file=here / "demo-password", history_weeks=history_weeks)
        password = (here / "demo-password").read_text().strip()
    # running_worker: what scripts/run starts beside the app
    with serving(create_app(settings, database), sock), running_worker(database, settings):
        yield LiveServer(f"http://127.0.0.1:{port}", database, settings, password)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        yield launched
        launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def axe(page) -> list[str]:  # type: ignore[no-untyped-def]
    """axe-core's serious and critical violations on the page (its context must bypass CSP)."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']}: {v['help']}" for v in result["violations"] if v["impact"] in ("serious", "critical")]


WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " at " + location.pathname +
                    " from " + e.sourceFile + ":" + e.lineNumber + ":" + e.columnNumber + " " + e.sample);
});
"""


def coordinator_page(context, live_server: LiveServer):  # type: ignore[no-untyped-def]
    """A signed-in coordinator's page that records every CSP violation; the list it returns fills
    with the browser console's CSP messages, `page.evaluate("window.__csp")` has the rest."""
    import re

    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("coordinator@demo.test")
    page.get_by_label("Password").fill(live_server.password)
    page.get_by_role("button", name=re.compile("Sign in", re.I)).click()
    page.wait_for_load_state()
    return page, console
