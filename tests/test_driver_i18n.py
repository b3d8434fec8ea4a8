"""The driver's pages in the driver's language (issue 10 item 10): every shipped catalogue translates
every message the driver templates use, its compiled file is current, and a driver who picks
Spanish gets Spanish pages with dates in Spanish, remembered on their account."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
import time_machine
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from litestar.testing import TestClient

from delivery.models import Route
from delivery.plans import publishing
from delivery.platform.db import Database
from delivery.platform.settings import ROOT, Settings
from delivery.web import i18n
from tests.builders import csrf_token
from tests.plan_builders import make_day

LA = ZoneInfo("America/Los_Angeles")
MORNING = dt.datetime(2026, 12, 1, 9, 0, tzinfo=LA)
SHIPPED = [code for code in i18n.available() if code != i18n.DEFAULT]


def template_messages() -> set[str | tuple[str, str]]:
    """What `pybabel extract -F babel.cfg` finds in the driver templates, extracted afresh."""
    found = extract_from_dir(str(ROOT / "templates" / "driver"), method_map=[("**.html", "jinja2")])
    return {message for _file, _line, message, _comments, _context in found}


def test_spanish_is_shipped() -> None:
    assert "es" in SHIPPED


@pytest.mark.parametrize("code", SHIPPED)
def test_every_driver_message_is_translated(code: str) -> None:
    """Fails on a message added to a template but missing, empty or fuzzy in a catalogue, and on a
    translation that loses a placeholder."""
    with open(i18n.LOCALE_DIR / code / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f)
    wanted = template_messages()
    missing = []
    for message in wanted:
        key = message[0] if isinstance(message, tuple) else message
        entry = catalog.get(key)
        strings = entry.string if entry is not None and isinstance(entry.string, tuple) else (
            (entry.string,) if entry is not None else ())
        if entry is None or entry.fuzzy or not all(strings):
            missing.append(key)
    assert missing == [], f"untranslated in {code}: {missing}"
    problems = [(m.id, errors) for m, errors in catalog.check() if errors]
    assert problems == []


@pytest.mark.parametrize("code", SHIPPED)
def test_the_compiled_catalogue_is_current(code: str) -> None:
    """The committed .mo says what the .po says (run `pybabel compile -d delivery/locale`)."""
    folder = i18n.LOCALE_DIR / code / "LC_MESSAGES"
    def strings(messages) -> dict:  # type: ignore[no-untyped-def, type-arg]
        return {_plain(m.id): _plain(m.string) for m in messages if m.id}

    with open(folder / "messages.po", "rb") as f:
        source = strings(read_po(f))
    assert strings(read_mo(io.BytesIO((folder / "messages.mo").read_bytes()))) == source


def _plain(value: object) -> object:
    return tuple(value) if isinstance(value, list | tuple) else value


def test_a_driver_reads_their_route_in_spanish(client: TestClient, program, database: Database,  # type: ignore[no-untyped-def]
                                               settings: Settings) -> None:
    """Accept-Language chooses first; the driver's own choice is remembered on their account."""
    with time_machine.travel(MORNING - dt.timedelta(hours=2), tick=False), database.writer() as db:
        day = make_day(db, program, date=MORNING.date())
        link = publishing.issue_link(db, db.get(Route, day.route_ids[0]), settings)  # type: ignore[arg-type]
        db.commit()
    with time_machine.travel(MORNING, tick=False):
        english = client.get("/r/" + link.rsplit("/r/", 1)[1])
        assert ">Delivered</button>" in english.text and "Tuesday, December 1, 2026" in english.text
        by_browser = client.get(english.url.path, headers={"Accept-Language": "es-MX,es;q=0.9"})
        assert ">Entregado</button>" in by_browser.text
        client.post("/driver/language", data={"locale": "es", "next": english.url.path,
                                              "csrf_token": csrf_token(english.text)})
        spanish = client.get(english.url.path, headers={"Accept-Language": "en"}).text
    assert '<html lang="es">' in spanish
    assert ">Entregado</button>" in spanish and ">No se pudo entregar</button>" in spanish
    assert "martes, 1 de diciembre de 2026" in spanish and "0 de 3 hechas" in spanish
    assert "3 paradas" in spanish
