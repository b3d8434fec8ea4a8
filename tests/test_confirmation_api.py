"""POST /api/v1/stops/{id}/confirmations as a driver's phone calls it: the delivery token from the
route page, Idempotency-Key semantics (R7.3), write-once outcomes (R7.4), device time kept (R7.5),
the driver's own stops only (R3.3, R3.7), and the two windows (R8.3, R8.5)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
import time_machine
from litestar.testing import TestClient
from sqlalchemy import func, select

from delivery.field import confirmations
from delivery.models import Confirmation, Driver, FieldReport, Route, Stop
from delivery.plans import publishing
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.builders import Program, sign_in
from tests.plan_builders import make_day

LA = ZoneInfo("America/Los_Angeles")
DAY = dt.date(2026, 12, 1)
MORNING = dt.datetime(2026, 12, 1, 9, 0, tzinfo=LA)
CLOSES = publishing.link_expiry(DAY, "America/Los_Angeles", 6)  # 06:00 the next morning (default grace)


@pytest.fixture
def day(program: Program, database: Database):  # type: ignore[no-untyped-def]
    with time_machine.travel(MORNING - dt.timedelta(hours=2), tick=False), database.writer() as db:
        built = make_day(db, program, date=DAY)
        db.commit()
    return built


def token_of(database: Database, settings: Settings, route_id: int) -> str:
    """The delivery token, as the driver's route page hands it to its script."""
    with database.reader() as db:
        route = db.get(Route, route_id)
        assert route is not None
        row = publishing.delivery_token_for(db, route_id, db.get(Driver, route.driver_id).user_id)  # type: ignore[union-attr]
        assert row is not None
        return publishing.raw_delivery_token(row, settings.secret_key)


def post(client: TestClient, stop_id: int, token: str, key: str | None, outcome: str = "delivered",
         occurred_at: dt.datetime | None = None, **extra: object):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"outcome": outcome, "occurred_at": (occurred_at or MORNING).isoformat(), **extra}
    return client.post(f"/api/v1/stops/{stop_id}/confirmations", json=body, headers=headers)


def bearer(database: Database, email: str) -> str:
    with database.writer() as db:
        raw = auth.create_api_token(db, email)
        db.commit()
    return raw


def rows(database: Database) -> int:
    with database.reader() as db:
        return db.scalar(select(func.count(Confirmation.id))) or 0


@pytest.mark.req("R7.3")
def test_idempotency_key_semantics(client: TestClient, day, database: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """Missing or bad key 400; a retry gets the stored answer marked as a replay; the same key with
    another body 422, and a replayed error stays the same."""
    stop = day.stop_ids[0][0]
    token = token_of(database, settings, day.route_ids[0])
    with time_machine.travel(MORNING + dt.timedelta(minutes=5), tick=False):
        assert post(client, stop, token, None).status_code == 400
        assert post(client, stop, token, "has spaces in it").status_code == 400
        assert post(client, stop, token, "x" * 101).status_code == 400
        first = post(client, stop, token, "key-1")
        assert first.status_code == 201, first.text
        assert first.json()["occurred_at"].startswith("2026-12-01T17:00:00")  # the device's time, kept
        assert "idempotency-replay" not in first.headers
        again = post(client, stop, token, "key-1")
        assert (again.status_code, again.json(), again.headers["idempotency-replay"]) == \
            (201, first.json(), "true")
        reused = post(client, stop, token, "key-1", outcome="no_answer")
        assert reused.status_code == 422 and "different confirmation" in reused.json()["detail"]
        assert post(client, stop, token, "key-1", outcome="no_answer").json() == reused.json()
    assert rows(database) == 1


@pytest.mark.req("R7.4")
def test_first_outcome_wins(client: TestClient, day, database: Database, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """A different outcome with a new key is 409 carrying the stored one; the same outcome 200."""
    stop = day.stop_ids[0][1]
    token = token_of(database, settings, day.route_ids[0])
    with time_machine.travel(MORNING + dt.timedelta(minutes=5), tick=False):
        assert post(client, stop, token, "a", outcome="no_answer").status_code == 201
        conflict = post(client, stop, token, "b", outcome="delivered")
        assert conflict.status_code == 409
        assert conflict.json()["stored_outcome"] == "no_answer"
        same = post(client, stop, token, "c", outcome="no_answer")
        assert same.status_code == 200 and same.json()["outcome"] == "no_answer"
    assert rows(database) == 1


@pytest.mark.req("R7.3")
def test_a_key_in_flight_gets_409_with_retry_after(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                                    settings: Settings) -> None:
    stop = day.stop_ids[0][0]
    token = token_of(database, settings, day.route_ids[0])
    with database.reader() as db:
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
    with time_machine.travel(MORNING, tick=False):
        with confirmations.holding_key(user_id, "busy-key"):  # the first request, still running
            busy = post(client, stop, token, "busy-key")
        assert busy.status_code == 409 and busy.headers["retry-after"] == "1"
        assert post(client, stop, token, "busy-key").status_code == 201
    assert rows(database) == 1


@pytest.mark.req("R3.3")
@pytest.mark.req("R3.7")
def test_only_the_drivers_own_stops(client: TestClient, program: Program, day, database: Database,  # type: ignore[no-untyped-def]
                                    settings: Settings) -> None:
    """Another driver's stop and unknown stops are 404; a body naming someone else is refused; the
    key is per driver (the same key from B makes B's own row)."""
    a, b = (token_of(database, settings, r) for r in day.route_ids)
    with time_machine.travel(MORNING, tick=False):
        assert post(client, day.stop_ids[1][0], a, "k").status_code == 404
        assert post(client, 999999, a, "k").status_code == 404
        assert post(client, day.stop_ids[0][0], a, "k", driver_id=day.driver_ids[1]).status_code == 400
        mine = post(client, day.stop_ids[0][0], a, "same-key")
        theirs = post(client, day.stop_ids[1][0], b, "same-key", outcome="refused")
        assert (mine.status_code, theirs.status_code) == (201, 201)
        assert theirs.json()["outcome"] == "refused" and theirs.json()["id"] != mine.json()["id"]
        # a clinic's API token is no driver: refused by role
        clinic = bearer(database, program.clinic1)
        assert post(client, day.stop_ids[0][1], clinic, "z").status_code == 403
        assert post(client, day.stop_ids[0][1], "drt_1.forged", "k2").status_code == 401


def test_an_unpublished_plan_takes_no_confirmation(client: TestClient, program: Program,
                                                   database: Database) -> None:
    with database.writer() as db:
        draft = make_day(db, program, date=DAY, status="planned")
        email = db.get(Driver, draft.driver_ids[0]).user.email  # type: ignore[union-attr]
        db.commit()
    token = bearer(database, email)
    with time_machine.travel(MORNING, tick=False):
        assert post(client, draft.stop_ids[0][0], token, "k").status_code == 404


@pytest.mark.req("R8.3")
def test_made_during_the_route_accepted_up_to_72_hours_after_it_closed(  # type: ignore[no-untyped-def]
        client: TestClient, day, database: Database, settings: Settings) -> None:
    """Seeing the route ends at close; a confirmation made before close still counts 71 h later, not
    73 h later (then 410, and the coordinator is told); one made after close never counts."""
    stops = day.stop_ids[0]
    token = token_of(database, settings, day.route_ids[0])
    made = CLOSES - dt.timedelta(hours=1)
    with time_machine.travel(CLOSES + dt.timedelta(hours=71), tick=False):
        assert post(client, stops[0], token, "late-1", occurred_at=made).status_code == 201
        after = post(client, stops[1], token, "late-2", occurred_at=CLOSES + dt.timedelta(minutes=5))
        assert after.status_code == 410 and "route closed" in after.json()["detail"]
    with time_machine.travel(CLOSES + dt.timedelta(hours=73), tick=False):
        assert post(client, stops[0], token, "late-1", occurred_at=made).status_code == 201  # a replay
        too_late = post(client, stops[2], token, "late-3", occurred_at=made)
        assert too_late.status_code == 410 and "72 hours" in too_late.json()["detail"]
    assert rows(database) == 1
    with database.reader() as db:
        told = db.scalars(select(FieldReport).where(FieldReport.kind == "late_confirmation")).all()
        assert {r.stop_id for r in told} == {stops[1], stops[2]}


@pytest.mark.req("R8.5")
def test_the_token_outlives_the_session_but_not_a_revoked_link(  # type: ignore[no-untyped-def]
        client: TestClient, day, database: Database, settings: Settings) -> None:
    """Signing out (or the cookie expiring) does not stop the phone's queue; revoking the route's
    links does."""
    stops = day.stop_ids[0]
    with time_machine.travel(MORNING, tick=False):
        with database.writer() as db:
            link = publishing.issue_link(db, db.get(Route, day.route_ids[0]), settings)  # type: ignore[arg-type]
            db.commit()
        page = client.get("/r/" + link.rsplit("/r/", 1)[1])
        token = re.search(r'data-token="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        client.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"',
                                                             page.text).group(1)})  # type: ignore[union-attr]
        assert client.get(f"/driver/routes/{day.route_ids[0]}", follow_redirects=False).status_code == 303
        assert post(client, stops[0], token, "after-logout").status_code == 201
        with database.writer() as db:
            publishing.revoke_links(db, db.get(Route, day.route_ids[0]))  # type: ignore[arg-type]
            db.commit()
        assert post(client, stops[1], token, "after-revoke").status_code == 401


def at_once(client: TestClient, token: str, requests: list[tuple[int, str, str]]) -> list:  # type: ignore[type-arg]
    """Send (stop, key, outcome) requests from as many threads, released together."""
    barrier = threading.Barrier(len(requests))
    out: list = []  # type: ignore[type-arg]

    def send(stop_id: int, key: str, outcome: str) -> None:
        barrier.wait()
        out.append(post(client, stop_id, token, key, outcome=outcome))

    threads = [threading.Thread(target=send, args=r) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


@pytest.mark.req("R7.3")
@pytest.mark.req("R7.4")
def test_concurrent_requests_make_one_row(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                          settings: Settings) -> None:
    """32 identical requests at once make exactly one row (the others see the key in flight or
    replay it); two devices sending different outcomes for one stop at once: one wins, the other
    gets 409 with the stored outcome."""
    token = token_of(database, settings, day.route_ids[0])
    first, second = day.stop_ids[0][:2]
    with time_machine.travel(MORNING, tick=True):
        same = at_once(client, token, [(first, "same-key", "delivered")] * 32)
        statuses = sorted(r.status_code for r in same)
        assert len(same) == 32 and set(statuses) <= {201, 409} and 201 in statuses, statuses
        assert len({r.json()["id"] for r in same if r.status_code == 201}) == 1
        assert all("retry-after" in r.headers for r in same if r.status_code == 409)
        assert rows(database) == 1

        pair = at_once(client, token, [(second, str(uuid.uuid4()), outcome)
                                       for outcome in ("delivered", "no_answer")])
        assert sorted(r.status_code for r in pair) == [201, 409]
        winner = next(r for r in pair if r.status_code == 201).json()["outcome"]
        assert next(r for r in pair if r.status_code == 409).json()["stored_outcome"] == winner
    with database.reader() as db:
        assert db.scalar(select(func.count(Confirmation.id)).where(Confirmation.stop_id == second)) == 1
        assert db.get(Stop, second).outcome == winner  # type: ignore[union-attr]


def test_the_api_confirmation_is_in_the_openapi_document(app) -> None:  # type: ignore[no-untyped-def]
    """The contract names the header and the statuses it answers."""
    document = app.openapi_schema.to_schema()
    operation = document["paths"]["/api/v1/stops/{stop_id}/confirmations"]["post"]
    header = next(p for p in operation["parameters"] if p["in"] == "header")
    assert header["name"] == "Idempotency-Key" and header["required"] is True
    assert {"200", "201", "400", "404", "409", "410", "422"} <= set(operation["responses"])


def test_session_cookies_are_not_taken_by_the_api(client: TestClient, day, database: Database,  # type: ignore[no-untyped-def]
                                                   settings: Settings) -> None:
    with database.writer() as db:
        raw, session = auth.start_session(db, db.get(Driver, day.driver_ids[0]).user, settings)  # type: ignore[union-attr]
        db.commit()
    client.cookies.set("__Host-session", raw)
    response = client.post(f"/api/v1/stops/{day.stop_ids[0][0]}/confirmations",
                           json={"outcome": "delivered", "occurred_at": MORNING.isoformat()},
                           headers={"Idempotency-Key": "k", "X-CSRF-Token": session.csrf_token})
    assert response.status_code == 401


def jpeg_with_gps() -> bytes:
    """A phone's photo: JPEG with the location in its EXIF."""
    from PIL import Image

    image = Image.new("RGB", (2400, 1800), (180, 120, 60))
    exif = image.getexif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (37.0, 44.0, 56.0), "W", (122.0, 10.0, 8.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.mark.req("R4.5")
@pytest.mark.req("R8.6")
def test_a_delivery_photo_is_cleaned_stored_and_shown_only_to_coordinators(  # type: ignore[no-untyped-def]
        client: TestClient, program: Program, day, database: Database, settings: Settings) -> None:
    """Location data stripped, re-encoded, server-made name, SHA-256 kept; a second upload with the
    same key is a replay; a file whose bytes lie about its type is refused; coordinators download it
    as an attachment, drivers cannot."""
    from PIL import Image

    stop = day.stop_ids[0][0]
    token = token_of(database, settings, day.route_ids[0])
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the phone's file has GPS
    url = f"/api/v1/stops/{stop}/confirmations/photo"
    with time_machine.travel(MORNING, tick=False):
        assert post(client, stop, token, "with-photo").status_code == 201
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "with-photo"}
        png_bytes = b"\x89PNG\r\n\x1a\n" + b"0" * 100
        lying = client.put(url, content=png_bytes, headers={**headers, "Content-Type": "image/jpeg"})
        assert lying.status_code == 415, lying.text
        assert "not a JPEG" in lying.json()["detail"]
        gif = client.put(url, content=b"GIF89a", headers={**headers, "Content-Type": "image/gif"})
        assert gif.status_code == 415
        other = token_of(database, settings, day.route_ids[1])
        assert client.put(url, content=original, headers={**headers, "Authorization": f"Bearer {other}",
                                                           "Content-Type": "image/jpeg"}).status_code == 404
        first = client.put(url, content=original, headers={**headers, "Content-Type": "image/jpeg"})
        assert first.status_code == 201, first.text
        again = client.put(url, content=original, headers={**headers, "Content-Type": "image/jpeg"})
        assert again.status_code == 200 and again.headers["idempotency-replay"] == "true"
        assert again.json() == first.json()
    with database.reader() as db:
        row = db.scalar(select(Confirmation).where(Confirmation.idempotency_key == "with-photo"))
        assert row is not None and row.photo_name is not None
    stored = (settings.photos / row.photo_name).read_bytes()
    assert row.photo_name != "photo.jpg" and re.fullmatch(r"[0-9a-f]{32}\.jpg", row.photo_name)
    assert hashlib.sha256(stored).hexdigest() == row.photo_sha256 == first.json()["sha256"]
    cleaned = Image.open(io.BytesIO(stored))
    assert not cleaned.getexif() and not cleaned.getexif().get_ifd(0x8825)  # no GPS, no EXIF at all
    assert max(cleaned.size) == 1600

    path = f"/coordinator/plans/{day.plan_id}/confirmations/{row.id}/photo"
    with time_machine.travel(MORNING, tick=False):
        sign_in(client, program.coordinator)
        download = client.get(path)
        assert download.status_code == 200 and download.content == stored
        assert download.headers["content-disposition"].startswith("attachment")
        assert download.headers["cache-control"] == "no-store"
        assert download.headers["x-content-type-options"] == "nosniff"
        client.cookies.clear()
        with database.writer() as db:
            raw, _ = auth.start_session(db, db.get(Driver, day.driver_ids[0]).user, settings)  # type: ignore[union-attr]
            db.commit()
        client.cookies.set("__Host-session", raw)
        assert client.get(path).status_code == 403
