#!/usr/bin/env python
"""Open-loop load on POST /api/v1/stops/{id}/confirmations, as drivers' phones send it.

Builds a throwaway database (SQLite file, or a private PostgreSQL database that is dropped
afterwards) with one published day: D drivers, each with a route of S stops and its delivery
token. Starts a real `delivery serve` process on a loopback port, then sends confirmations at a
fixed rate (open loop: request i leaves at t0 + i/rate whether or not earlier ones answered), each
driver working down their stops with a fresh Idempotency-Key, plus a share of replays of requests
already answered (their key and body again). Latency is measured from the scheduled send time.

Reports p50/p99 milliseconds, errors (anything but 201/200, and replays not marked
`Idempotency-Replay: true`), duplicates (rows beyond one per confirmed stop), and with `--search`
the highest rate at which p99 stays at or under the target with no errors. Target (issue 10, on
the 2-core machine): 50 requests/s from 40 drivers with 10% replays, p99 <= 100 ms, 0 errors,
0 duplicates, on SQLite and on PostgreSQL.

    .venv/bin/python scripts/bench_confirm.py [--database sqlite|postgres] [--rate 50] [--seconds 20]
        [--drivers 40] [--replays 0.1] [--search] [--smoke]

PostgreSQL needs DELIVERY_TEST_POSTGRES_URL (a server URL; the script makes its own database).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from delivery.field import followup  # noqa: E402
from delivery.models import Confirmation, Job, Route  # noqa: E402
from delivery.plans import publishing  # noqa: E402
from delivery.platform.db import Database, upgrade  # noqa: E402
from delivery.platform.settings import Settings  # noqa: E402
from tests.builders import make_program  # noqa: E402  (the test suite's day builder: rows, no solver)
from tests.plan_builders import StopSpec, make_day  # noqa: E402

SECRET = "bench-confirm"
TARGET_P99_MS = 100.0
LA = ZoneInfo("America/Los_Angeles")


@dataclass
class Phone:
    token: str
    stops: list[int]


def build(url: str, drivers: int, stops_each: int) -> list[Phone]:
    """Today's published day: `drivers` routes of `stops_each` stops, and each phone's token."""
    upgrade(url)
    database = Database(url)
    settings = Settings(database_url=url, secret_key=SECRET)
    today = dt.datetime.now(LA).date()
    specs = [[StopSpec(f"P{d}x{s}", "Bench") for s in range(stops_each)] for d in range(drivers)]
    with database.writer() as db:
        program = make_program(db)
        day = make_day(db, program, date=today, stops=specs,
                       emails=[f"driver{d}@bench.test" for d in range(drivers)])
        phones = []
        for route_id, stop_ids in zip(day.route_ids, day.stop_ids, strict=True):
            route = db.get(Route, route_id)
            assert route is not None
            row = publishing.delivery_token_for(db, route_id, route.driver.user_id)
            assert row is not None
            phones.append(Phone(publishing.raw_delivery_token(row, settings.secret_key), list(stop_ids)))
        db.commit()
    database.dispose()
    return phones


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(url: str, port: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "DELIVERY_DATABASE_URL": url,
            "DELIVERY_SECRET_KEY": SECRET, "DELIVERY_GEOCODER": "none", "DELIVERY_BASE_URL": f"http://127.0.0.1:{port}"}


def follow_up(url: str, port: int) -> subprocess.Popen:  # type: ignore[type-arg]
    """The worker that reschedules failed attempts, beside the app as `scripts/run` starts it: it
    competes with the confirmations for the database's writer."""
    return subprocess.Popen([sys.executable, "-m", "delivery", "worker", "--kinds", "followup"],
                            env=environment(url, port), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serve(url: str, port: int) -> subprocess.Popen:  # type: ignore[type-arg]
    env = environment(url, port)
    process = subprocess.Popen([sys.executable, "-m", "delivery", "serve", "--host", "127.0.0.1",
                                "--port", str(port)], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the server did not start")


async def load(base: str, phones: list[Phone], rate: float, seconds: float, replays: float,
               seed: int = 7) -> dict[str, object]:
    """Send `rate` requests per second for `seconds`; returns latencies and what went wrong."""
    rng = random.Random(seed)
    total = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []
    counts = {"new": 0, "replay": 0, "replay_skipped": 0}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        sent: list[tuple[Phone, int, str, dict]] = []  # type: ignore[type-arg]

        async def post(when: float, phone: Phone, stop: int, key: str, body: dict, replay: bool) -> None:  # type: ignore[type-arg]
            try:
                response = await client.post(f"/api/v1/stops/{stop}/confirmations", json=body, headers={
                    "Authorization": f"Bearer {phone.token}", "Idempotency-Key": key})
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                return
            latencies.append((time.perf_counter() - when) * 1000)
            if response.status_code not in (200, 201):
                errors.append(f"{response.status_code} {response.text[:120]}")
            elif replay and response.headers.get("idempotency-replay") != "true":
                errors.append("replay not marked")
            elif not replay:
                sent.append((phone, stop, key, body))

        async def new(when: float, phone: Phone, stop: int) -> None:
            await asyncio.sleep(max(0.0, when - time.perf_counter()))
            body = {"outcome": rng.choice(["delivered", "delivered", "left_at_door", "no_answer"]),
                    "occurred_at": dt.datetime.now(dt.UTC).isoformat()}
            await post(when, phone, stop, str(uuid.uuid4()), body, False)

        async def again(when: float) -> None:
            """A phone that never heard the answer sends the same request again."""
            await asyncio.sleep(max(0.0, when - time.perf_counter()))
            if not sent:
                counts["replay_skipped"] += 1
                return
            # each answered request is repeated at most once, so two copies never overlap (that
            # would rightly get 409 "still being handled")
            phone, stop, key, body = sent.pop(rng.randrange(len(sent)))
            await post(when, phone, stop, key, body, True)

        start = time.perf_counter() + 0.2
        tasks = []
        for i in range(total):
            phone = phones[i % len(phones)]
            if i and rng.random() < replays:
                tasks.append(again(start + i / rate))
                counts["replay"] += 1
            elif phone.stops:
                tasks.append(new(start + i / rate, phone, phone.stops.pop(0)))
                counts["new"] += 1
        await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    return {"requests": len(tasks), **counts, "errors": len(errors), "error_samples": errors[:5],
            "p50_ms": round(statistics.median(ordered), 2) if ordered else None,
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2) if ordered else None}


def duplicates(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count(Confirmation.id))) or 0
        stops = conn.scalar(select(func.count(func.distinct(Confirmation.stop_id)))) or 0
    engine.dispose()
    return rows - stops


def follow_ups(url: str) -> dict[str, int]:
    """The failed attempts' follow-up jobs by state when the load stopped (queued: not done yet)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(Job.state, func.count(Job.id)).where(Job.kind == followup.KIND)
                            .group_by(Job.state)).all()
    engine.dispose()
    return {str(state): count for state, count in rows}


def run_once(database: str, rate: float, seconds: float, drivers: int, replays: float) -> dict[str, object]:
    stops_each = int(rate * seconds / drivers) + 12
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = fresh_database(database, Path(tmp))
        try:
            phones = build(url, drivers + 1, stops_each)
            port = free_port()
            process = serve(url, port)
            worker = follow_up(url, port)
            try:
                base = f"http://127.0.0.1:{port}"
                # Warm up (first connections, imports), unmeasured, on a phone of its own.
                asyncio.run(load(base, phones[-1:], 10, 1, 0))
                result = asyncio.run(load(base, phones[:-1], rate, seconds, replays))
            finally:
                for running in (process, worker):
                    running.terminate()
                    running.wait(timeout=30)
            result["duplicates"] = duplicates(url)
            result["follow_ups"] = follow_ups(url)
        finally:
            drop()
    return {"database": database, "rate": rate, "seconds": seconds, "drivers": drivers, **result}


def fresh_database(kind: str, tmp: Path):  # type: ignore[no-untyped-def]
    """A new empty database URL and a function that removes it."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    server = os.environ.get("DELIVERY_TEST_POSTGRES_URL")
    if not server:
        raise SystemExit("set DELIVERY_TEST_POSTGRES_URL to a PostgreSQL server URL")
    name = f"bench_confirm_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(server).set(database=name).render_as_string(hide_password=False), drop


def holds(result: dict[str, object]) -> bool:
    p99 = float(result["p99_ms"] or 1e9)  # type: ignore[arg-type]
    return result["errors"] == 0 and result["duplicates"] == 0 and p99 <= TARGET_P99_MS


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--drivers", type=int, default=40)
    parser.add_argument("--replays", type=float, default=0.1)
    parser.add_argument("--search", action="store_true", help="also find the highest rate that holds")
    parser.add_argument("--smoke", action="store_true", help="a short run that only checks it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rate, args.seconds, args.drivers, args.search = 20.0, 1.0, 4, False
    run = run_once(args.database, args.rate, args.seconds, args.drivers, args.replays)
    target = {"p99_ms": TARGET_P99_MS, "errors": 0, "duplicates": 0}
    report: dict[str, object] = {"target": target, "run": run}
    if args.search:
        best, rate = None, args.rate
        while rate <= 1600:  # bounded: doubling from the base rate
            result = run_once(args.database, rate, min(args.seconds, 10.0), args.drivers, args.replays)
            if not holds(result):
                break
            best, rate = rate, rate * 2
        report["highest_rate_holding"] = best
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
