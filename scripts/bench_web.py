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

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import sys
import tempfile
import time
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
from delivery.platform.db import Database, upgrade  # noqa: E402
from delivery.platform.settings import Settings  # noqa: E402

DATE = dt.date(2030, 3, 5)
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
        auth.create_user(db, email="coordinator@bench.test", display_name="Bench Coordinator",
                         password=PASSWORD, memberships=[(food_bank.id, Role.coordinator)])
        drivers = []
        for n in range(routes):
            user = auth.create_user(db, email=f"driver{n}@bench.test", display_name=f"Driver {n}",
                                    password=None, memberships=[(food_bank.id, Role.driver)])
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
        settings = Settings(database_url=url, secret_key="bench", base_url=BASE, geocoder="none")
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
                client.get(path)  # warm up (templates compiled, the day's stops built)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stops", type=int, default=300)
    p.add_argument("--routes", type=int, default=20)
    p.add_argument("--compare", type=int, default=30, help="fewer stops, to compare the query counts")
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args(argv)
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
