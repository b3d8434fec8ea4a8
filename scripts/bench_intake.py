#!/usr/bin/env python3
"""Intake benchmark: a 5,000-row CSV import, and the server time of POST /api/v1/referrals.

    .venv/bin/python scripts/bench_intake.py                    # the full run, JSON on stdout
    .venv/bin/python scripts/bench_intake.py --rows 50 --requests 10   # a smoke run

1. Generates valid referral rows with points (seeded; geocoder off), migrates a fresh SQLite
   database in a temporary directory and builds a program (a food bank, two clinics, staff).
2. Imports the file with `csv_import.import_file` (what `delivery import referrals` runs) in a
   fresh process, so its peak RSS (`ru_maxrss`) is the import's own; then again, on a copy of the
   same starting database, under tracemalloc for the peak of Python allocations (tracemalloc
   slows allocation down, so that run is not the timed one).
3. Posts referrals to `POST /api/v1/referrals` through Litestar's TestClient (in-process) on the
   database the import filled, timing each request inside the ASGI app (server time: from the
   request reaching the app to its last byte) and around the client call.

Prints one JSON object; `meets_targets` compares with DESIGN's targets (2-core machine).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])  # run with the project's venv
sys.path.insert(0, str(ROOT))

TARGETS = {"import_seconds": 20.0, "peak_rss_mb": 300.0, "api_post_median_ms": 30.0}
CLINIC = "Fruitvale Clinic"

GIVEN = ["Rosa", "Minh", "James", "Lucia", "Harold", "Ana", "Wei", "Fatima", "Jorge", "Mai", "Grace",
         "Tomas", "Linh", "Samuel", "Carmen", "Yusuf", "Elena", "Kwame", "Sofia", "Hector"]
FAMILY = ["Diaz", "Nguyen", "Carter", "Ramirez", "Kim", "Lopez", "Chen", "Ali", "Hernandez", "Tran",
          "Johnson", "Garcia", "Pham", "Williams", "Morales", "Ahmed", "Rivera", "Mensah", "Cruz", "Le"]
STREETS = ["98th Ave", "International Blvd", "Seminary Ave", "Fruitvale Ave", "105th Ave", "MacArthur Blvd",
           "Bancroft Ave", "E 14th St", "Foothill Blvd", "High St"]
DIETARY = ["", "", "", "diabetic", "low_sodium", "vegetarian", "halal", "diabetic;soft_foods"]
HEADER = ["mrn", "given_name", "family_name", "birth_date", "phone", "language", "address_line1", "unit",
          "city", "state", "postal_code", "lat", "lon", "floor", "elevator", "access_notes", "dietary",
          "consent_to_share", "do_not_contact", "hunger_worried", "hunger_ran_out",
          "transportation_barrier", "mobility_barrier", "errands_barrier", "boxes", "box_type", "cadence",
          "weekday", "window_start", "window_end", "priority", "note"]


def referral_rows(n: int, seed: int) -> list[list[str]]:
    """n valid rows in East Oakland: ~75% home delivery, ~15% pick-up, ~10% not eligible."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = rng.random()
        worried, ran_out = ("often", "sometimes") if kind < 0.9 else ("never", "never")
        transport, mobility = ("yes", rng.choice(["yes", "no"])) if kind < 0.75 else ("no", "no")
        born = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 60))
        window = rng.random() < 0.2
        rows.append([
            f"B-{100000 + i}", rng.choice(GIVEN), rng.choice(FAMILY), born.isoformat(),
            f"+1510555{rng.randrange(10000):04d}", rng.choice(["en", "en", "es", "vi", "zh"]),
            f"{rng.randrange(100, 9999)} {rng.choice(STREETS)}", rng.choice(["", "", "2", "3B"]),
            "Oakland", "CA", rng.choice(["94601", "94603", "94605", "94621"]),
            f"{37.73 + rng.random() * 0.06:.5f}", f"{-122.23 + rng.random() * 0.07:.5f}",
            str(rng.choice([0, 0, 1, 2, 3])), rng.choice(["yes", "no"]), "", rng.choice(DIETARY),
            "yes", "no", worried, ran_out, transport, mobility, "no",
            str(rng.choice([1, 1, 1, 2])), rng.choice(["standard", "standard", "diabetic", "low_sodium"]),
            rng.choice(["weekly", "weekly", "biweekly"]), "",
            "10:00" if window else "", "14:00" if window else "", str(rng.choice([0, 0, 0, 1])), "",
        ])
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)


def _maxrss_mb() -> float:
    """ru_maxrss of this process. On Linux a child inherits its parent's high-water mark at fork,
    so for the import's own peak see _peak_rss_mb."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def _peak_rss_mb() -> float:
    """This process's own peak resident memory: VmHWM (reset at exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return _maxrss_mb()


def child_import(db_url: str, csv_path: str, trace: bool) -> dict[str, Any]:
    """Run in a fresh process: one import, its time, its peak memory."""
    import tracemalloc

    from delivery.platform.clock import Clock
    from delivery.platform.db import Database
    from delivery.referrals import csv_import

    database = Database(db_url)
    rss_before = _peak_rss_mb()
    if trace:
        tracemalloc.start()
    start, cpu_start = time.perf_counter(), time.process_time()
    report = csv_import.import_file(database, csv_path, clinic=CLINIC, clock=Clock())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    database.dispose()
    return {"seconds": seconds, "cpu_seconds": cpu, "ok": report.ok, "rows": report.rows,
            "referred": report.referred,
            "report": report.text() if not report.ok else None, "peak_rss_mb": _peak_rss_mb(),
            "ru_maxrss_mb": _maxrss_mb(),
            "rss_before_import_mb": rss_before, "peak_traced_mb": traced}


def run_child(db_url: str, csv_path: Path, trace: bool) -> dict[str, Any]:
    args = [sys.executable, str(Path(__file__).resolve()), "--child-import", db_url, str(csv_path)]
    if trace:
        args.append("--trace")
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"import process failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    if not result["ok"]:
        raise SystemExit(f"the generated file did not import:\n{result['report']}")
    return result


def api_timings(db_url: str, requests: int, seed: int) -> dict[str, Any]:
    """POST /api/v1/referrals `requests` times (new patients), timed in the app and at the client."""
    import logging

    from litestar.testing import TestClient

    from delivery.platform.db import Database
    from delivery.platform.settings import Settings
    from delivery.web.app import create_app
    from tests.builders import Program, api_token, referral_body

    settings = Settings(database_url=db_url, secret_key="bench", base_url="https://testserver.local",
                        geocoder="none", secure_cookies=True)
    database = Database(db_url)
    with database.writer() as db:
        headers = api_token(db, Program.clinic1)
        db.commit()
    app = create_app(settings, database)
    server: list[float] = []
    inner = app.asgi_handler

    async def timed(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        start = time.perf_counter()

        async def send_timed(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.body" and not message.get("more_body"):
                server.append(time.perf_counter() - start)
            await send(message)

        await inner(scope, receive, send_timed)

    app.asgi_handler = timed
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request on stderr
    rng = random.Random(seed)
    client_times: list[float] = []
    outcomes: dict[str, int] = {}
    with TestClient(app=app, base_url=settings.base_url) as client:
        warm = client.post("/api/v1/referrals", headers=headers,
                           json=referral_body(patient__mrn="W-0"))  # first request builds caches
        assert warm.status_code == 201, warm.text
        server.clear()
        for i in range(requests):
            body = referral_body(patient__mrn=f"W-{i + 1}", patient__given_name=rng.choice(GIVEN),
                                 patient__family_name=rng.choice(FAMILY))
            start = time.perf_counter()
            response = client.post("/api/v1/referrals", json=body, headers=headers)
            client_times.append(time.perf_counter() - start)
            assert response.status_code == 201, response.text
            outcome = response.json()["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    database.dispose()
    return {"server": server, "client": client_times, "outcomes": outcomes}


def progress(message: str) -> None:
    """A line on stderr as each phase ends, so a long run that fails later still tells something."""
    print(f"bench_intake: {message}", file=sys.stderr, flush=True)


def _ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if q == 0.5:
        return round(statistics.median(values) * 1000, 2)
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=5000, help="referral rows in the CSV (default 5000)")
    p.add_argument("--requests", type=int, default=200, help="timed API posts (default 200)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--capacity", type=int, default=100,
                   help="the program's boxes per delivery day (0: unlimited); default 100")
    p.add_argument("--no-trace", action="store_true", help="skip the tracemalloc run")
    p.add_argument("--keep", type=Path, help="copy the CSV and the database here")
    p.add_argument("--child-import", nargs=2, metavar=("DB_URL", "CSV"), help=argparse.SUPPRESS)
    p.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child_import:
        print(json.dumps(child_import(*args.child_import, trace=args.trace)))
        return 0

    from delivery.platform.db import Database, upgrade
    from tests.builders import make_program

    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        work = Path(tmp)
        csv_path = work / "referrals.csv"
        write_csv(csv_path, referral_rows(args.rows, args.seed))
        start_db = work / "start.db"
        upgrade(f"sqlite:///{start_db}")
        database = Database(f"sqlite:///{start_db}")
        with database.writer() as db:
            make_program(db, boxes_per_delivery_day=args.capacity or None)
            db.commit()
        database.dispose()

        timed_db, traced_db = work / "import.db", work / "traced.db"
        shutil.copy(start_db, timed_db)
        run = run_child(f"sqlite:///{timed_db}", csv_path, trace=False)
        progress(f"import: {run['seconds']:.1f} s ({run['cpu_seconds']:.1f} s CPU), "
                 f"peak RSS {run['peak_rss_mb']} MB")
        traced = None
        if not args.no_trace:
            shutil.copy(start_db, traced_db)
            traced = run_child(f"sqlite:///{traced_db}", csv_path, trace=True)
            progress(f"traced import: peak {traced['peak_traced_mb']:.1f} MB of Python allocations")
        api = api_timings(f"sqlite:///{timed_db}", args.requests, args.seed)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(csv_path, args.keep / "referrals.csv")
            shutil.copy(timed_db, args.keep / "import.db")

    result: dict[str, Any] = {
        "rows": args.rows,
        "import_seconds": round(run["seconds"], 3),
        "import_cpu_seconds": round(run["cpu_seconds"], 3),
        "rows_per_second": round(args.rows / run["seconds"], 1) if run["seconds"] else None,
        "peak_rss_mb": run["peak_rss_mb"],
        "rss_before_import_mb": run["rss_before_import_mb"],
        "ru_maxrss_mb": run["ru_maxrss_mb"],
        "peak_traced_mb": round(traced["peak_traced_mb"], 1) if traced else None,
        "traced_import_seconds": round(traced["seconds"], 3) if traced else None,
        "referred": run["referred"],
        "api_requests": args.requests,
        "api_post_median_ms": _ms(api["server"], 0.5),
        "api_post_p95_ms": _ms(api["server"], 0.95),
        "api_post_client_median_ms": _ms(api["client"], 0.5),
        "api_post_client_p95_ms": _ms(api["client"], 0.95),
        "api_outcomes": api["outcomes"],
        "setup": {"database": "sqlite (WAL, synchronous=FULL)", "geocoder": "none",
                  "boxes_per_delivery_day": args.capacity or None, "seed": args.seed,
                  "api_database": f"after the import ({args.rows} referrals)",
                  "python": platform.python_version(), "cpus": os.cpu_count(),
                  "load_average": [round(x, 2) for x in os.getloadavg()]},
        "targets": TARGETS,
    }
    result["meets_targets"] = (result["import_seconds"] < TARGETS["import_seconds"]
                               and result["peak_rss_mb"] < TARGETS["peak_rss_mb"]
                               and result["api_post_median_ms"] < TARGETS["api_post_median_ms"])
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
