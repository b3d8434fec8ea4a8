"""Funder report speed: a generated year of a program (N patients on weekly boxes, 90 % of attempts
delivered, a receipt for a third, some waitlisted), then the year's report built and rendered as its
HTML with charts, at two sizes. Prints JSON: seconds and SQL queries per size (the query count must
not grow with patients). The year is written as rows in bulk (events with their real payloads),
not through the services: it measures reading. SQLite in a temporary directory; bounded."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
from sqlalchemy import event, insert

from delivery.models import (
    Driver,
    EventKind,
    Order,
    Organization,
    OrganizationKind,
    Patient,
    Plan,
    Referral,
    ReferralEvent,
    Route,
    Stop,
    User,
)
from delivery.platform.db import Database, upgrade
from delivery.reports import document, funder
from delivery.timeline import payloads

YEAR = (dt.date(2029, 1, 1), dt.date(2029, 12, 31))
FIRST_TUESDAY = dt.date(2029, 1, 2)
STOPS_PER_ROUTE = 20


def generate(database: Database, patients: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    tuesdays = [FIRST_TUESDAY + dt.timedelta(weeks=w) for w in range(52)]
    with database.writer() as db:
        food_bank = Organization(name="Bench Food Bank", kind=OrganizationKind.food_bank, delivery_weekday=1)
        db.add(food_bank)
        db.flush()
        clinics = [Organization(name=f"Clinic {n}", kind=OrganizationKind.clinic, food_bank_id=food_bank.id)
                   for n in (1, 2)]
        db.add_all(clinics)
        db.flush()
        routes_per_day = max(1, patients // STOPS_PER_ROUTE + 1)
        db.execute(insert(User), [{"email": f"d{n}@bench.test", "display_name": f"Driver {n}"}
                                  for n in range(routes_per_day)])
        user_ids = [u.id for u in db.query(User).order_by(User.id)]
        db.execute(insert(Driver), [{"user_id": u, "food_bank_id": food_bank.id, "capacity_boxes": 40}
                                    for u in user_ids])
        driver_ids = [d.id for d in db.query(Driver).order_by(Driver.id)]
        db.execute(insert(Plan), [{"food_bank_id": food_bank.id, "date": day, "status": "done"}
                                  for day in tuesdays])
        plan_ids = {p.date: p.id for p in db.query(Plan)}
        db.execute(insert(Route), [{"plan_id": plan_ids[day], "driver_id": d,
                                    "distance_m": rnd.randint(20_000, 60_000),
                                    "duration_s": rnd.randint(7_200, 14_400)}
                                   for day in tuesdays for d in driver_ids])
        route_ids = {(r.plan_id, r.driver_id): r.id for r in db.query(Route)}
        db.execute(insert(Patient), [{
            "clinic_id": clinics[n % 2].id, "mrn": f"B-{n}", "given_name": f"G{n}", "family_name": "Bench",
            "birth_date": dt.date(1950, 1, 1), "address_line1": f"{n} Main St", "city": "Oakland",
            "state": "CA", "postal_code": "94601", "lat": 37.75, "lon": -122.2} for n in range(patients)])
        patient_ids = [p.id for p in db.query(Patient).order_by(Patient.id)]
        received = [tuesdays[0] - dt.timedelta(days=rnd.randint(1, 300)) if n % 2 else
                    tuesdays[rnd.randint(0, 51)] - dt.timedelta(days=rnd.randint(1, 20))
                    for n in range(patients)]
        db.execute(insert(Referral), [{
            "clinic_id": clinics[n % 2].id, "food_bank_id": food_bank.id, "patient_id": patient_ids[n],
            "source": "demo", "status": "active", "outcome": "home_delivery", "reason": "eligible"}
            for n in range(patients)])
        referral_ids = [r.id for r in db.query(Referral).order_by(Referral.id)]
        db.execute(insert(Order), [{
            "referral_id": referral_ids[n], "patient_id": patient_ids[n], "food_bank_id": food_bank.id,
            "weekday": 1, "start_date": received[n], "status": "active"} for n in range(patients)])
        order_ids = [o.id for o in db.query(Order).order_by(Order.id)]
        stops, events = [], []
        for n in range(patients):
            seq, moment = 0, dt.datetime.combine(received[n], dt.time(18), dt.UTC)

            def add(kind: EventKind, data: payloads.Payload, at: dt.datetime, n: int = n) -> None:
                nonlocal seq
                seq += 1
                events.append({"referral_id": referral_ids[n], "sequence": seq, "kind": kind,
                               "data": msgspec.to_builtins(data), "at": at, "recorded_at": at})

            add(EventKind.received,
                payloads.Received(clinic_id=clinics[n % 2].id, clinic_name="c", source="demo"), moment)
            waited = n % 20 == 0
            decided = "waitlisted" if waited else "home_delivery"
            add(EventKind.outcome, payloads.OutcomeDecided(outcome=decided, reason="r"), moment)
            if waited:
                add(EventKind.waitlisted, payloads.Waitlisted(order_id=order_ids[n], position=1), moment)
                add(EventKind.moved_off_waitlist, payloads.MovedOffWaitlist(order_id=order_ids[n],
                    first_delivery=received[n]), moment + dt.timedelta(days=rnd.randint(3, 30)))
            for w, day in enumerate(tuesdays):
                if day <= received[n]:
                    continue
                ok = rnd.random() < 0.9
                stop_id = len(stops) + 1
                route = route_ids[(plan_ids[day], driver_ids[n % len(driver_ids)])]
                stops.append({"id": stop_id, "plan_id": plan_ids[day], "order_id": order_ids[n],
                              "patient_id": patient_ids[n], "date": day, "route_id": route, "boxes": 1,
                              "box_type": "standard", "service_s": 240,
                              "status": "delivered" if ok else "failed",
                              "outcome": "delivered" if ok else "no_answer"})
                at = dt.datetime.combine(day, dt.time(18), dt.UTC)
                ids = {"order_id": order_ids[n], "stop_id": stop_id, "plan_id": plan_ids[day],
                       "confirmation_id": stop_id, "date": day}
                if ok:
                    add(EventKind.delivered, payloads.Delivered(**ids, boxes=1), at)
                    if w % 3 == 0:
                        receipt = payloads.Receipt(stop_id=stop_id, order_id=order_ids[n])
                        add(EventKind.receipt_confirmed, receipt, at + dt.timedelta(days=1))
                else:
                    add(EventKind.attempt_failed, payloads.AttemptFailed(**ids, reason="no_answer"), at)
        db.execute(insert(Stop), stops)
        db.execute(insert(ReferralEvent), events)
        db.commit()


def measure(database: Database) -> dict[str, float | int]:
    """Build and render the year's report; count the SQL statements it sent."""
    queries = 0

    def count(*_: object) -> None:
        nonlocal queries
        queries += 1

    event.listen(database.read_engine, "before_cursor_execute", count)
    try:
        started = time.perf_counter()
        with database.reader() as db:
            food_bank = db.query(Organization).filter_by(kind=OrganizationKind.food_bank).one()
            report = funder.build(db, food_bank, *YEAR)
        built = time.perf_counter()
        html = document.html(report, dt.datetime.now(dt.UTC))
        rendered = time.perf_counter()
    finally:
        event.remove(database.read_engine, "before_cursor_execute", count)
    return {"build_s": round(built - started, 3), "render_s": round(rendered - started, 3),
            "queries": queries, "html_bytes": len(html), "deliveries_attempted": report.deliveries_attempted}


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--patients", type=int, nargs=2, default=[250, 1000], metavar=("SMALL", "LARGE"))
    opts = args.parse_args(argv)
    result: dict[str, object] = {"period": [YEAR[0].isoformat(), YEAR[1].isoformat()], "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for patients in opts.patients:
            url = f"sqlite:///{Path(tmp) / f'bench-{patients}.db'}"
            upgrade(url)
            database = Database(url)
            try:
                t = time.perf_counter()
                generate(database, patients)
                generated = round(time.perf_counter() - t, 2)
                measure(database)  # a first run pays for imports (matplotlib, fonts): measure the second
                result["sizes"][str(patients)] = {"generate_s": generated, **measure(database)}  # type: ignore[index]
            finally:
                database.dispose()
    sizes = list(result["sizes"].values())  # type: ignore[attr-defined]
    result["queries_constant"] = len({s["queries"] for s in sizes}) == 1
    result["under_2s"] = all(s["render_s"] < 2 for s in sizes)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
