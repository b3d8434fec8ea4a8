#!/usr/bin/env python
"""R14 load benchmark: drivers' phones against a real server on 127.0.0.1, on SQLite or PostgreSQL.

Each run makes a throwaway database (a SQLite file, or a PostgreSQL database on
DELIVERY_TEST_POSTGRES_URL's server, dropped afterwards) holding one published day of `--drivers`
routes, starts `delivery serve` (uvicorn serving create_app, 127.0.0.1 only) and a job worker beside
it as `scripts/run` does, checks that the server answering is that one (only it knows the phones'
sessions), then:

- steady (R14.1): `--seconds` of open-loop load at `--rate` requests/s (request i leaves at i/rate
  whether or not earlier ones answered; latency counts from that moment): `--stop-lists` of them the
  driver's route page (the stop list, every card view audited), the rest confirmations through
  `POST /api/v1/stops/{id}/confirmations` with fresh Idempotency-Keys, `--replays` of those a
  repeat of one already answered (same key and body, which must be answered as a replay).
  Holds when confirm p99 <= 100 ms, stop-list p99 <= 150 ms, 0 errors, 0 lost, 0 duplicates.
- burst (R14.3): `--burst-drivers` phones each come back online at a random moment within
  `--burst-window` seconds and send their queue of `--queue` confirmations made earlier, in order,
  one after another, then resend their first (a lost answer): all accepted, 0 duplicates, p99 <= 500 ms.
- `--search`: steady runs of `--search-seconds` at doubling (or, if it fails, halving) rates from
  `--rate`, then halving the gap, for the highest rate that holds.

Afterwards every acknowledged confirmation is looked up in the database: stored exactly once.
Prints one JSON object (with the load average, since the 2-core machine is shared).

    .venv/bin/python scripts/bench_load.py [--db sqlite|postgres] [--rate 50] [--seconds 30]
        [--stop-lists 0.3] [--replays 0.1] [--drivers 40] [--no-burst] [--search] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from delivery.platform.db import Database  # noqa: E402
from scripts import loadgen  # noqa: E402

TARGETS = {"confirm_p99_ms": 100.0, "stop_list_p99_ms": 150.0, "burst_p99_ms": 500.0,
           "errors": 0, "lost": 0, "duplicates": 0}
MIN_SEARCH_RATE, MAX_SEARCH_RATE = 5.0, 800.0  # bounded: the search stays within these


@dataclass(frozen=True)
class Steady:
    rate: float
    seconds: float
    stop_lists: float  # the share of requests that are the route page
    replays: float  # the share of confirmations that repeat an answered one


@dataclass(frozen=True)
class Burst:
    drivers: int
    queue: int
    window: float  # seconds within which every phone comes back online


@dataclass
class Server:
    base: str
    url: str
    phones: list[loadgen.Phone]


@contextmanager
def server(db_kind: str, drivers: int, stops_each: int) -> Iterator[Server]:
    """A fresh database with `drivers` phones (plus one to warm up and check the server with),
    the server and its worker running on it."""
    with tempfile.TemporaryDirectory() as tmp, loadgen.fresh_database(db_kind, Path(tmp)) as url:
        port = loadgen.free_port()
        settings = loadgen.server_settings(url, port)
        database = Database(url)
        try:
            phones = loadgen.seed_day(database, settings, drivers=drivers + 1, stops_each=stops_each,
                                      today=settings.clock.today("America/Los_Angeles"))
        finally:
            database.dispose()
        with loadgen.running(url, port) as base:
            warm = phones.pop()
            loadgen.check_server(base, warm)
            # First connections, imports and caches, unmeasured, on the spare phone.
            warm_up = Steady(rate=10, seconds=0.5, stop_lists=0.3, replays=0.0)
            asyncio.run(steady_load(base, [warm], warm_up, random.Random(0), loadgen.Tally()))
            yield Server(base, url, phones)


def stops_needed(steady: Steady | None, drivers: int) -> int:
    if steady is None:
        return 0
    return math.ceil(steady.rate * steady.seconds * (1 - steady.stop_lists) / drivers) + 5


async def steady_load(base: str, phones: list[loadgen.Phone], steady: Steady, rng: random.Random,
                      tally: loadgen.Tally) -> None:
    schedule = []
    for i in range(int(steady.rate * steady.seconds)):
        phone = phones[i % len(phones)]
        draw = rng.random()
        if draw < steady.stop_lists:
            schedule.append((i / steady.rate, _stop_list(tally, phone)))
        elif draw < steady.stop_lists + (1 - steady.stop_lists) * steady.replays and i:
            schedule.append((i / steady.rate, _replay(tally, rng)))
        elif phone.stops:
            schedule.append((i / steady.rate, _new(tally, rng, phone, phone.stops.pop(0))))
    await loadgen.open_loop(base, schedule, tally)


def _stop_list(tally: loadgen.Tally, phone: loadgen.Phone) -> loadgen.Send:
    async def send(client: httpx.AsyncClient, due: float) -> None:
        tally.count("stop_list")
        await loadgen.stop_list(client, tally, due, phone)
    return send


def _new(tally: loadgen.Tally, rng: random.Random, phone: loadgen.Phone, stop: int) -> loadgen.Send:
    async def send(client: httpx.AsyncClient, due: float) -> None:
        tally.count("confirm")
        body = loadgen.confirmation_body(rng, dt.datetime.now(dt.UTC))
        await loadgen.confirm(client, tally, due, phone, stop, str(uuid.uuid4()), body, replay=False)
    return send


def _replay(tally: loadgen.Tally, rng: random.Random) -> loadgen.Send:
    async def send(client: httpx.AsyncClient, due: float) -> None:
        """A phone that never heard the answer sends the same request again. Each answered request
        is repeated at most once, so two copies never overlap (that would rightly get 409)."""
        if not tally.answered:
            tally.count("replay_skipped")
            return
        tally.count("replay")
        phone, stop, key, body = tally.answered.pop(rng.randrange(len(tally.answered)))
        await loadgen.confirm(client, tally, due, phone, stop, key, body, replay=True)
    return send


async def burst_load(base: str, phones: list[loadgen.Phone], burst: Burst, rng: random.Random,
                     tally: loadgen.Tally) -> None:
    """Every phone comes back online once within the window and flushes its offline queue."""
    def flush(phone: loadgen.Phone) -> loadgen.Send:
        async def send(client: httpx.AsyncClient, _due: float) -> None:
            made = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
            queued = [(stop, str(uuid.uuid4()),
                       loadgen.confirmation_body(rng, made + dt.timedelta(minutes=n)))
                      for n, stop in enumerate(phone.stops[:burst.queue])]
            for stop, key, body in queued:  # in order, each after the answer to the one before
                tally.count("burst")
                await loadgen.confirm(client, tally, time.perf_counter(), phone, stop, key, body,
                                      replay=False, kind="burst")
            stop, key, body = queued[0]  # the answer to the first was lost: the phone sends it again
            tally.count("burst_replay")
            await loadgen.confirm(client, tally, time.perf_counter(), phone, stop, key, body,
                                  replay=True, kind="burst")
        return send

    await loadgen.open_loop(base, [(rng.uniform(0, burst.window), flush(p)) for p in phones], tally)


def run(db_kind: str, steady: Steady | None, burst: Burst | None, drivers: int,
        seed: int = 7) -> dict[str, object]:
    """One server: the steady load on `drivers` phones, then the burst on phones of its own."""
    rng = random.Random(seed)
    burst_drivers = burst.drivers if burst else 0
    stops_each = max(stops_needed(steady, drivers), burst.queue if burst else 0)
    report: dict[str, object] = {"db": db_kind}
    with server(db_kind, drivers + burst_drivers, stops_each) as srv:
        acknowledged: dict[str, int] = {}
        if steady is not None:
            tally = loadgen.Tally()
            asyncio.run(steady_load(srv.base, srv.phones[:drivers], steady, rng, tally))
            report["steady"] = {"rate": steady.rate, "seconds": steady.seconds, "drivers": drivers,
                                "counts": tally.counts, "errors": len(tally.errors),
                                "error_samples": tally.errors[:5],
                                "confirm": tally.summary("confirm"), "stop_list": tally.summary("stop_list")}
            acknowledged.update(tally.acknowledged)
        if burst is not None:
            tally = loadgen.Tally()
            started = time.perf_counter()
            asyncio.run(burst_load(srv.base, srv.phones[drivers:], burst, rng, tally))
            report["burst"] = {"drivers": burst.drivers, "queue": burst.queue, "window_s": burst.window,
                               "took_s": round(time.perf_counter() - started, 2), "counts": tally.counts,
                               "accepted": len(tally.acknowledged), "errors": len(tally.errors),
                               "error_samples": tally.errors[:5], **tally.summary("burst")}
            acknowledged.update(tally.acknowledged)
        report.update(loadgen.stored_check(srv.url, acknowledged))
    return report


def holds(report: dict[str, object]) -> bool:
    steady: dict = report["steady"]  # type: ignore[assignment,type-arg]
    confirm_p99 = steady["confirm"]["p99_ms"]
    list_p99 = steady["stop_list"]["p99_ms"]
    return (steady["errors"] == 0 and report["lost"] == 0 and report["duplicates"] == 0
            and confirm_p99 is not None and confirm_p99 <= TARGETS["confirm_p99_ms"]
            and (list_p99 is None or list_p99 <= TARGETS["stop_list_p99_ms"]))


def search(db_kind: str, steady: Steady, drivers: int) -> dict[str, object]:
    """The highest steady rate that holds: from the base rate, double while it holds (or halve
    while it does not), then halve the gap between the last that held and the first that did not
    twice. Each rate gets a fresh database and server; rates stay within MIN/MAX_SEARCH_RATE."""
    tried: dict[float, bool] = {}

    def attempt(rate: float) -> bool:
        result = run(db_kind, Steady(rate, steady.seconds, steady.stop_lists, steady.replays), None, drivers)
        tried[rate] = holds(result)
        return tried[rate]

    good: float | None = None
    bad: float | None = None
    rate = steady.rate
    while MIN_SEARCH_RATE <= rate <= MAX_SEARCH_RATE and (good is None or bad is None):
        if attempt(rate):
            good, rate = rate, rate * 2
        else:
            bad, rate = rate, rate / 2
        if good is not None and bad is not None and good > bad:
            break  # noise: a lower rate failed after a higher one held
    if good is not None and bad is not None and good < bad:
        for _ in range(2):
            middle = round((good + bad) / 2)
            if attempt(middle):
                good = middle
            else:
                bad = middle
    return {"highest_rate_holding": good, "lowest_rate_failing": bad, "seconds_each": steady.seconds,
            "tried": {str(k): v for k, v in sorted(tried.items())}}


def arguments(argv: list[str] | None, *, stop_lists: float = 0.3, seconds: float = 30.0,
              burst: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (steady)")
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--drivers", type=int, default=40)
    parser.add_argument("--stop-lists", type=float, default=stop_lists, help="share of route-page requests")
    parser.add_argument("--replays", type=float, default=0.1, help="share of confirmations that are replays")
    parser.add_argument("--burst-drivers", type=int, default=40)
    parser.add_argument("--queue", type=int, default=20, help="confirmations queued on each burst phone")
    parser.add_argument("--burst-window", type=float, default=60.0)
    parser.add_argument("--no-burst", dest="burst", action="store_false", default=burst)
    parser.add_argument("--search", action="store_true", help="also find the highest rate that holds")
    parser.add_argument("--search-seconds", type=float, default=10.0)
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds: checks that it works, not its times")
    args = parser.parse_args(argv)
    for name in ("stop_lists", "replays"):
        if not 0 <= getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} is a share: give a number from 0 to below 1")
    if args.rate <= 0 or args.seconds <= 0 or args.drivers < 1:
        parser.error("--rate, --seconds and --drivers must be positive")
    if args.smoke:
        args.rate, args.seconds, args.drivers, args.search = 20.0, 1.5, 4, False
        args.burst_drivers, args.queue, args.burst_window = 4, 5, 1.0
    return args


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: the machine is shared, so say how busy it was."""
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None, **defaults: object) -> dict[str, object]:
    args = arguments(argv, **defaults)  # type: ignore[arg-type]
    steady = Steady(args.rate, args.seconds, args.stop_lists, args.replays)
    burst = Burst(args.burst_drivers, args.queue, args.burst_window) if args.burst else None
    report: dict[str, object] = {"targets": TARGETS, "load_average_before": load_average()}
    report.update(run(args.db, steady, burst, args.drivers))
    report["holds"] = holds(report)
    if args.search:
        shorter = Steady(args.rate, args.search_seconds, args.stop_lists, args.replays)
        report["search"] = search(args.db, shorter, args.drivers)
    report["load_average_after"] = load_average()
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
