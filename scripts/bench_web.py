#!/usr/bin/env python
"""Server time and SQL queries for the coordinator's day page and its map data.

Builds a throwaway SQLite database with one program, N stops spread over R routes (rows written
directly: no solver), signs in as the coordinator and requests, in process through Litestar's
TestClient, the day page (`/coordinator/plans/{date}`) and the map data (`…/map.json`) several
times. Reports the median and p90 milliseconds and the number of SQL statements per request
(counted with a `before_cursor_execute` listener on both engines), for the main size and a smaller
comparison size: the query counts must be equal (no N+1). Target (R14-style, on the 2-core
machine): under 150 ms median each for 300 stops in 20 routes.

    .venv/bin/python scripts/bench_web.py [--stops 300] [--routes 20] [--compare 30] [--repeat 15]

`--mixed SECONDS` instead runs a mixed load on SQLite against a real uvicorn server (a child
process on 127.0.0.1, an ephemeral port): a coordinator viewing the day and another editing it
(lock/unlock a stop), clinic staff referring through the API, 10 logins a minute (argon2), and a
stream of small writes (a coordinator switching spare drivers off and on) at `--rate` requests/s,
sent open-loop (on schedule, whether or not earlier ones finished; at most `--inflight` at once,
the rest counted as dropped). Reports p50/p99 milliseconds per request kind. Target: p99 of the
small writes under 100 ms while logins and edits run.

    .venv/bin/python scripts/bench_web.py --mixed 30 [--rate 50] [--stops 120] [--routes 8]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from delivery.models import (  # noqa: E402
    Depot,
    Driver,
    Order,
    OrderStatus,
    Organization,
    OrganizationKind,
    Patient,
    Referral,
    Role,
    Route,
    Shift,
    Stop,
)
from delivery.plans import day as days  # noqa: E402
from delivery.platform import auth  # noqa: E402
from delivery.platform.clock import FixedClock  # noqa: E402
from delivery.platform.db import Database, upgrade  # noqa: E402
from delivery.platform.settings import Settings  # noqa: E402

DATE = dt.date(2030, 3, 5)
CLOCK = FixedClock(dt.datetime(2030, 3, 4, 17, 0, tzinfo=dt.UTC))  # the day before, 9:00 in Oakland
PASSWORD = "bench horse battery staple"
BASE = "https://bench.local"


def build(database: Database, stops: int, routes: int) -> int:
    """A program with `stops` due orders on DATE, `routes` drivers with shifts, a plan routing them."""
    with database.writer() as db:
        food_bank = Organization(name="Bench Food Bank", kind=OrganizationKind.food_bank,
                                 boxes_per_delivery_day=stops * 2, delivery_weekday=DATE.weekday())
        db.add(food_bank)
        db.flush()
        clinic = Organization(name="Bench Clinic", kind=OrganizationKind.clinic, food_bank_id=food_bank.id)
        db.add(clinic)
        db.add(Depot(organization_id=food_bank.id, name="Warehouse", address="1 Depot Way", lat=37.7425,
                     lon=-122.2011, opens=dt.time(8), closes=dt.time(17), hours="8-5"))
        db.flush()
        # The production parameters (Settings' defaults): the logins of the mixed load cost what they will.
        auth.create_user(db, email="coordinator@bench.test", display_name="Bench Coordinator",
                         memberships=[(food_bank.id, Role.coordinator)],
                         password_hash=auth.hash_password(PASSWORD, Settings()))
        drivers = []
        for n in range(routes):
            user = auth.create_user(db, email=f"driver{n}@bench.test", display_name=f"Driver {n}",
                                    memberships=[(food_bank.id, Role.driver)])
            driver = Driver(user_id=user.id, food_bank_id=food_bank.id, capacity_boxes=40, languages=["en"])
            db.add(driver)
            db.flush()
            db.add(Shift(driver_id=driver.id, date=DATE, start=dt.time(9), end=dt.time(15),
                         start_depot_id=None, end_depot_id=None))
            drivers.append(driver)
        for n in range(stops):
            patient = Patient(clinic_id=clinic.id, mrn=f"B-{n}", given_name=f"P{n}", family_name="Bench",
                              birth_date=dt.date(1950, 1, 1), address_line1=f"{100 + n} Bench St",
                              city="Oakland", state="CA", postal_code="94601",
                              lat=37.70 + (n % 30) * 0.003, lon=-122.25 + (n // 30) * 0.004,
                              geocode_status="given")
            db.add(patient)
            db.flush()
            referral = Referral(clinic_id=clinic.id, food_bank_id=food_bank.id, patient_id=patient.id,
                                source="web", status="active", outcome="home_delivery", reason="bench")
            db.add(referral)
            db.flush()
            db.add(Order(referral_id=referral.id, patient_id=patient.id, food_bank_id=food_bank.id, boxes=1,
                         weekday=DATE.weekday(), start_date=DATE - dt.timedelta(days=28),
                         status=OrderStatus.active))
        db.flush()
        plan = days.prepare(db, food_bank, DATE)
        route_rows = []
        for n, driver in enumerate(drivers):
            route = Route(plan_id=plan.id, driver_id=driver.id, colour=n, planned_start=9 * 3600,
                          planned_end=13 * 3600, distance_m=20000, duration_s=4 * 3600, load_boxes=0)
            db.add(route)
            route_rows.append(route)
        db.flush()
        from sqlalchemy import select

        for n, stop in enumerate(db.scalars(select(Stop).where(Stop.plan_id == plan.id).order_by(Stop.id))):
            route = route_rows[n % routes]
            route.load_boxes += stop.boxes
            stop.route_id, stop.seq = route.id, n // routes + 1
            stop.eta, stop.departure = 9 * 3600 + (n // routes) * 600, 9 * 3600 + (n // routes) * 600 + 300
        plan.status = "planned"
        db.commit()
        return plan.id


def measure(stops: int, routes: int, repeat: int) -> dict:
    from litestar.testing import TestClient

    from delivery.web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        database = Database(url)
        plan_id = build(database, stops, routes)
        settings = Settings(database_url=url, secret_key="bench", base_url=BASE, geocoder="none", clock=CLOCK)
        counter = {"n": 0}

        def count(*_args: object) -> None:
            counter["n"] += 1

        for engine in {database.write_engine, database.read_engine}:
            event.listen(engine, "before_cursor_execute", count)
        result: dict = {"stops": stops, "routes": routes}
        with TestClient(app=create_app(settings, database), base_url=BASE) as client:
            page = client.post("/login", data={"email": "coordinator@bench.test", "password": PASSWORD},
                               follow_redirects=True)
            assert page.status_code == 200, page.text[:500]
            targets = {"day_page": f"/coordinator/plans/{DATE}",
                       "map_json": f"/coordinator/plans/{plan_id}/map.json"}
            for name, path in targets.items():
                client.get(path)  # warm up (templates compiled)
                times, queries = [], []
                for _ in range(repeat):
                    counter["n"] = 0
                    began = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - began) * 1000)
                    queries.append(counter["n"])
                    assert response.status_code == 200, response.text[:500]
                if name == "day_page":
                    shown = len(re.findall(r'class="plan-stop"', response.text))
                    assert shown == stops, f"the page shows {shown} stops, expected {stops}"
                else:
                    assert sum(len(r["stops"]) for r in response.json()["routes"]) == stops
                times.sort()
                result[name] = {"median_ms": round(statistics.median(times), 1),
                                "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
                                "queries": max(queries), "bytes": len(response.content)}
        database.dispose()
    return result


# --- mixed load against a real server ----------------------------------------------------------

CLINIC_STAFF = "staff@bench.test"
SPARE_DRIVERS = 6  # the small writes switch these off and on
KINDS = ("day_view", "day_edit", "refer", "login", "small_write")


def build_mixed(database: Database, stops: int, routes: int) -> dict:
    """The day of `build()`, plus clinic staff with an API token and spare drivers to switch."""
    plan_id = build(database, stops, routes)
    from sqlalchemy import select

    with database.writer() as db:
        clinic = db.scalar(select(Organization).where(Organization.kind == OrganizationKind.clinic))
        assert clinic is not None and clinic.food_bank_id is not None
        auth.create_user(db, email=CLINIC_STAFF, display_name="Bench Staff",
                         memberships=[(clinic.id, Role.clinic_staff)])
        token = auth.create_api_token(db, CLINIC_STAFF)
        spare = []
        for n in range(SPARE_DRIVERS):
            user = auth.create_user(db, email=f"spare{n}@bench.test", display_name=f"Spare {n}",
                                    memberships=[(clinic.food_bank_id, Role.driver)])
            driver = Driver(user_id=user.id, food_bank_id=clinic.food_bank_id, capacity_boxes=20,
                            languages=["en"])
            db.add(driver)
            db.flush()
            spare.append(driver.id)
        stop_ids = list(db.scalars(select(Stop.id).where(Stop.plan_id == plan_id, Stop.route_id.is_not(None))
                                   .order_by(Stop.id).limit(10)))
        db.commit()
    return {"plan_id": plan_id, "token": token, "spare": spare, "stops": stop_ids}


def serve(url: str) -> None:
    """The child process: the app on 127.0.0.1, an ephemeral port printed on the first line."""
    import uvicorn

    from delivery.web.app import create_app, tune_server_process

    settings = Settings(database_url=url, secret_key="bench", base_url="http://127.0.0.1",
                        geocoder="none", secure_cookies=False, clock=CLOCK)
    tune_server_process(settings)  # as `delivery serve` does
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(create_app(settings, Database(url)), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.dropped = 0

    def timed(self, kind: str, send, path: str, ok: tuple[int, ...], **kwargs: object) -> None:  # type: ignore[no-untyped-def]
        """`send(path, **kwargs)` timed; a failed request is counted, not fatal to the run."""
        began = time.perf_counter()
        try:
            good = send(path, **kwargs).status_code in ok
        except Exception:
            good = False
        elapsed = (time.perf_counter() - began) * 1000
        with self.lock:
            self.times.setdefault(kind, []).append(elapsed)
            if not good:
                self.errors[kind] = self.errors.get(kind, 0) + 1

    def report(self, seconds: float) -> dict:
        out = {}
        for kind, times in sorted(self.times.items()):
            times = sorted(times)
            out[kind] = {"n": len(times), "per_s": round(len(times) / seconds, 1),
                         "p50_ms": round(statistics.median(times), 1),
                         "p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))], 1),
                         "max_ms": round(times[-1], 1), "errors": self.errors.get(kind, 0)}
        return out


def _csrf(html: str) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def mixed(seconds: float, rate: float, stops: int, routes: int, inflight: int, kinds: set[str]) -> dict:
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        database = Database(url)
        setup = build_mixed(database, stops, routes)
        database.dispose()
        with subprocess.Popen([sys.executable, __file__, "--serve", url], stdout=subprocess.PIPE,
                              text=True) as child:
            try:
                assert child.stdout is not None
                base = f"http://127.0.0.1:{int(child.stdout.readline())}"
                result = _drive(httpx, base, setup, seconds, rate, inflight, kinds)
            finally:
                child.terminate()
                child.wait(timeout=30)
    return {"mode": "mixed", "database": "sqlite", "seconds": seconds, "small_write_rate": rate,
            "stops": stops, "routes": routes, "target_small_write_p99_ms": 100, **result}


def _drive(httpx, base: str, setup: dict, seconds: float, rate: float, inflight: int,  # type: ignore[no-untyped-def]
           kinds: set[str]) -> dict:
    def coordinator():  # type: ignore[no-untyped-def]
        client = httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(max_connections=inflight + 4))
        for _ in range(100):  # the server may still be starting
            try:
                client.post("/login", data={"email": "coordinator@bench.test", "password": PASSWORD})
                break
            except httpx.TransportError:
                time.sleep(0.1)
        page = client.get(f"/coordinator/plans/{DATE}")
        assert page.status_code == 200, page.text[:300]
        client.headers["X-CSRF-Token"] = _csrf(page.text)
        return client

    viewer, editor, writer = coordinator(), coordinator(), coordinator()
    staff = httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {setup['token']}"})
    login = httpx.Client(base_url=base, timeout=60)
    rec = Recorder()
    stop_at = time.perf_counter() + seconds
    plan_id = setup["plan_id"]

    def view_days() -> None:
        while time.perf_counter() < stop_at:
            rec.timed("day_view", viewer.get, f"/coordinator/plans/{DATE}", (200,))
            time.sleep(0.5)

    def edit_days() -> None:
        n = 0
        while time.perf_counter() < stop_at:
            version = viewer.get(f"/coordinator/plans/{plan_id}/map.json").json()["version"]
            stop_id = setup["stops"][n % len(setup["stops"])]
            rec.timed("day_edit", editor.post, f"/coordinator/plans/{plan_id}/stops/{stop_id}/lock", (200,),
                      data={"version": str(version), "locked": "1" if n % 2 == 0 else "0"})
            n += 1
            time.sleep(1.0)

    def refer() -> None:
        n = 0
        while time.perf_counter() < stop_at:
            body = {"patient": {"mrn": f"M-{n}", "given_name": "Ana", "family_name": f"Mixed{n}",
                                "birth_date": "1950-01-01", "phone": "+15105550101", "language": "en",
                                "address": {"line1": f"{200 + n} Load St", "city": "Oakland", "state": "CA",
                                            "postal_code": "94601", "lat": 37.75, "lon": -122.2}},
                    "screening": {"hunger_worried": "often", "hunger_ran_out": "often",
                                  "transportation_barrier": True, "mobility_barrier": False}}
            rec.timed("refer", staff.post, "/api/v1/referrals", (201,), json=body)
            n += 1
            time.sleep(1.0)

    def logins() -> None:
        while time.perf_counter() < stop_at:
            rec.timed("login", login.post, "/login", (303,),
                      data={"email": "coordinator@bench.test", "password": PASSWORD})
            login.cookies.clear()
            time.sleep(6.0)  # 10 a minute

    def small_writes() -> None:
        pool = ThreadPoolExecutor(max_workers=inflight)
        busy = threading.Semaphore(inflight)
        n, began = 0, time.perf_counter()
        while True:
            due = began + n / rate
            if due >= stop_at:
                break
            time.sleep(max(0.0, due - time.perf_counter()))
            driver = setup["spare"][n % len(setup["spare"])]
            action = "deactivate" if (n // len(setup["spare"])) % 2 == 0 else "reactivate"
            if not busy.acquire(blocking=False):
                rec.dropped += 1
            else:
                def send(path: str = f"/coordinator/drivers/{driver}/{action}") -> None:
                    try:
                        rec.timed("small_write", writer.post, path, (302, 303))
                    finally:
                        busy.release()

                pool.submit(send)
            n += 1
        pool.shutdown(wait=True)

    chosen = {"day_view": view_days, "day_edit": edit_days, "refer": refer, "login": logins,
              "small_write": small_writes}
    threads = [threading.Thread(target=f) for kind, f in chosen.items() if kind in kinds]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    for client in (viewer, editor, writer, staff, login):
        client.close()
    return {"kinds": rec.report(elapsed), "small_writes_dropped": rec.dropped}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stops", type=int, default=None)
    p.add_argument("--routes", type=int, default=None)
    p.add_argument("--compare", type=int, default=30, help="fewer stops, to compare the query counts")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--mixed", type=float, default=0, metavar="SECONDS", help="run the mixed load instead")
    p.add_argument("--rate", type=float, default=50, help="small writes per second in the mixed load")
    p.add_argument("--inflight", type=int, default=32, help="small writes in flight at most")
    p.add_argument("--kinds", default=",".join(KINDS), help="request kinds of the mixed load to run")
    p.add_argument("--serve", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.mixed:
        report = mixed(min(args.mixed, 300), args.rate, args.stops or 120, args.routes or 8, args.inflight,
                       set(args.kinds.split(",")))
        print(json.dumps(report, indent=2))
        return 0
    args.stops, args.routes = args.stops or 300, args.routes or 20
    main_run = measure(args.stops, args.routes, args.repeat)
    small = measure(args.compare, min(args.routes, args.compare), max(3, args.repeat // 3))
    report = {
        "target_ms": 150, **main_run, "compare": small,
        "constant_queries": all(main_run[k]["queries"] == small[k]["queries"]
                                for k in ("day_page", "map_json")),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
