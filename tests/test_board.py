"""The live board: route progress as drivers confirm, and the exceptions list a coordinator works."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import time_machine
from litestar.testing import TestClient

from delivery.field.confirmations import confirm_stop
from delivery.models import Confirmation, Driver, Stop
from delivery.platform.db import Database
from tests.builders import Program, sign_in
from tests.plan_builders import make_day

LA = ZoneInfo("America/Los_Angeles")
DAY = dt.date(2026, 12, 1)


def confirm(database: Database, stop_id: int, driver_id: int, outcome: str, note: str | None = None) -> None:
    with database.writer() as db:
        stop = db.get(Stop, stop_id)
        user_id = db.get(Driver, driver_id).user_id  # type: ignore[union-attr]
        at = dt.datetime.now(dt.UTC)
        confirm_stop(db, stop=stop, user_id=user_id, outcome=outcome, note=note, occurred_at=at,  # type: ignore[arg-type]
                     idempotency_key=f"k-{stop_id}")
        db.commit()


def counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def state_of(html: str, route_id: int) -> str:
    row = html.split(f'id="board-route-{route_id}"')[1].split("</tr>")[0]
    return re.search(r'<span class="badge state">([^<]+)</span>', row).group(1)  # type: ignore[union-attr]


def test_board_counts_and_exceptions_are_handled(client: TestClient, program: Program,
                                                 database: Database) -> None:
    with database.writer() as db:
        day = make_day(db, program, date=DAY)  # stops at 10:00, 10:20, 10:40 (route 1) and 10:00, 10:20
        db.commit()
    url = f"/coordinator/plans/{day.plan_id}/board"

    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=LA), tick=False):
        sign_in(client, program.coordinator)
        html = client.get(url).text
        assert counts(html) == {"delivered": 0, "failed": 0, "pending": 5, "late": 0}
        assert [state_of(html, r) for r in day.route_ids] == ["not started", "not started"]
        assert 'hx-trigger="every 15s"' in html

    with time_machine.travel(dt.datetime(2026, 12, 1, 10, 25, tzinfo=LA), tick=False):
        sign_in(client, program.coordinator)
        confirm(database, day.stop_ids[0][0], day.driver_ids[0], "delivered")
        confirm(database, day.stop_ids[0][1], day.driver_ids[0], "no_answer", note="nobody home, left a card")
        live = client.get(url, headers={"HX-Request": "true"})
        assert live.status_code == 200 and live.text.lstrip().startswith('<div id="board-live"')
        assert counts(live.text) == {"delivered": 1, "failed": 1, "pending": 3, "late": 0}
        assert [state_of(live.text, r) for r in day.route_ids] == ["in progress", "in progress"]
        assert "Exceptions to handle (1)" in live.text and "nobody home, left a card" in live.text

    with time_machine.travel(dt.datetime(2026, 12, 1, 11, 0, tzinfo=LA), tick=False):
        csrf = sign_in(client, program.coordinator)
        html = client.get(url).text
        # route 2 has not confirmed its 10:00 stop by 10:30: late; route 1's next stop is 10:40
        assert [state_of(html, r) for r in day.route_ids] == ["in progress", "late against plan"]
        assert counts(html)["late"] == 1
        with database.reader() as db:
            exception = db.query(Confirmation).filter(Confirmation.outcome == "no_answer").one()
        handled = client.post(f"/coordinator/plans/{day.plan_id}/exceptions/{exception.id}/handled",
                              headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
        assert handled.status_code == 200
        assert "Exceptions to handle (0)" in handled.text and "nobody home" not in handled.text
        with database.reader() as db:
            stored = db.get(Confirmation, exception.id)
            assert stored is not None and stored.handled_at is not None and stored.handled_by_id is not None

        confirm(database, day.stop_ids[0][2], day.driver_ids[0], "delivered")
        html = client.get(url).text
        assert state_of(html, day.route_ids[0]) == "done"


def test_a_delivered_stop_with_a_note_is_an_exception(client: TestClient, program: Program,
                                                       database: Database) -> None:
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        db.commit()
    confirm(database, day.stop_ids[1][0], day.driver_ids[1], "left_at_door", note="dog in the yard")
    confirm(database, day.stop_ids[1][1], day.driver_ids[1], "delivered")
    sign_in(client, program.coordinator)
    html = client.get(f"/coordinator/plans/{day.plan_id}/board").text
    assert "Exceptions to handle (1)" in html and "dog in the yard" in html


def test_handling_needs_the_csrf_token(client: TestClient, program: Program, database: Database) -> None:
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        db.commit()
    confirm(database, day.stop_ids[0][0], day.driver_ids[0], "refused")
    sign_in(client, program.coordinator)
    with database.reader() as db:
        exception_id = db.query(Confirmation.id).scalar()
    refused = client.post(f"/coordinator/plans/{day.plan_id}/exceptions/{exception_id}/handled")
    assert refused.status_code == 403
