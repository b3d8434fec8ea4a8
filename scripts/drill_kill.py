#!/usr/bin/env python3
"""The kill drill (R7.1, R7.2): a confirmation the server acknowledged is never lost, nor stored twice.

Drivers' phones send confirmations to a real server process on 127.0.0.1 as the route page's queue
does (a fresh Idempotency-Key per confirmation, the same key on every retry until a 2xx). Meanwhile
the server is killed with SIGKILL at random moments, each time just after it acknowledged some, and
started again. At the end every acknowledged confirmation must be in the database exactly once.

    scripts/drill_kill.py --db sqlite --kills 20
    scripts/drill_kill.py --db postgres --kills 20      # needs DELIVERY_TEST_POSTGRES_URL
    scripts/drill_kill.py --db sqlite --kills 3 --ack-before-commit   # negative control: must lose

The last line printed is JSON: `acknowledged`, `lost`, `duplicates`, `kills`, and what was run.
`--ack-before-commit` starts the server with Settings.drill_ack_before_commit (the answer leaves
before the commit): the drill must report lost confirmations, or it proves nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery.platform.db import Database
from scripts import loadgen


class Server:
    """`delivery serve` in a process of its own, that the drill kills and starts again."""

    def __init__(self, url: str, port: int, *, ack_before_commit: bool) -> None:
        self.env = loadgen.environment(url, port)
        if ack_before_commit:
            self.env["DELIVERY_DRILL_ACK_BEFORE_COMMIT"] = "true"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = loadgen.start_server(self.env, self.port)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def phone(base: str, driver: loadgen.Phone, acknowledged: dict[str, int], rng: random.Random,
                pace_s: float, retries: list[int]) -> None:
    """One driver's queue: each stop confirmed with its own key, retried with that key until a 2xx."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for stop in driver.stops:
            key = str(uuid.uuid4())
            body = {"outcome": rng.choice(loadgen.OUTCOMES),
                    "occurred_at": dt.datetime.now(dt.UTC).isoformat()}
            while True:
                try:
                    response = await client.post(f"/api/v1/stops/{stop}/confirmations", json=body, headers={
                        "Authorization": f"Bearer {driver.token}", "Idempotency-Key": key})
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code in (200, 201):
                    acknowledged[key] = stop
                    break
                if response is not None and response.status_code not in (409, 500, 502, 503):
                    raise RuntimeError(f"stop {stop}: {response.status_code} {response.text[:200]}")
                retries[0] += 1
                await asyncio.sleep(0.1)  # no signal, or the server is restarting: the queue retries
            await asyncio.sleep(pace_s * rng.uniform(0.5, 1.5))


async def killer(server: Server, acknowledged: dict[str, int], kills: int, rng: random.Random,
                 done: asyncio.Event) -> int:
    """Kill the server just after it acknowledged a few more confirmations, then start it again."""
    made = 0
    while made < kills and not done.is_set():
        seen = len(acknowledged)
        while len(acknowledged) < seen + rng.randint(1, 4) and not done.is_set():
            await asyncio.sleep(0.005)
        if done.is_set():
            break
        await asyncio.sleep(rng.uniform(0, 0.05))
        server.kill()
        made += 1
        await asyncio.to_thread(server.start)
    return made


async def drive(base: str, server: Server, phones: list[loadgen.Phone], kills: int, seed: int,
                pace_s: float) -> tuple[dict[str, int], int, int]:
    rng = random.Random(seed)
    acknowledged: dict[str, int] = {}
    retries = [0]
    done = asyncio.Event()
    killing = asyncio.create_task(killer(server, acknowledged, kills, random.Random(seed + 1), done))
    await asyncio.gather(*(phone(base, p, acknowledged, random.Random(rng.random()), pace_s, retries)
                           for p in phones))
    done.set()
    return acknowledged, await killing, retries[0]


def run(db_kind: str, kills: int, *, drivers: int = 8, stops_each: int = 10,
        ack_before_commit: bool = False, seed: int = 7, pace_s: float = 0.05) -> dict[str, object]:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, loadgen.fresh_database(db_kind, Path(tmp)) as url:
        port = loadgen.free_port()
        settings = loadgen.server_settings(url, port)
        database = Database(url)
        try:
            phones = loadgen.seed_day(database, settings, drivers=drivers, stops_each=stops_each,
                                      today=settings.clock.today("America/Los_Angeles"))
        finally:
            database.dispose()
        server = Server(url, port, ack_before_commit=ack_before_commit)
        server.start()
        try:
            base = f"http://127.0.0.1:{port}"
            loadgen.check_server(base, phones[0])
            acknowledged, made, retries = asyncio.run(drive(base, server, phones, kills, seed, pace_s))
            if ack_before_commit:
                time.sleep(1)  # let the last background commits land: what is lost was lost to a kill
        finally:
            server.stop()
        stored = loadgen.stored_check(url, acknowledged)
        integrity = "ok"
        if db_kind == "sqlite":
            with sqlite3.connect(make_url(url).database) as copy:  # type: ignore[arg-type]
                integrity = copy.execute("PRAGMA integrity_check").fetchone()[0]
    return {"db": db_kind, "kills": made, "ack_before_commit": ack_before_commit, "drivers": drivers,
            "confirmations": drivers * stops_each, "retries": retries, "acknowledged": stored["acknowledged"],
            "lost": stored["lost"], "duplicates": stored["duplicates"], "integrity": integrity,
            "seconds": round(time.perf_counter() - began, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--drivers", type=int, default=20)
    parser.add_argument("--stops", type=int, default=20, help="stops per driver")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ack-before-commit", action="store_true",
                        help="negative control: the server answers before it commits (must lose some)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = run(args.db, args.kills, drivers=args.drivers, stops_each=args.stops,
                 ack_before_commit=args.ack_before_commit, seed=args.seed)
    print(json.dumps(result))
    sound = result["lost"] == 0 and result["duplicates"] == 0 and result["integrity"] == "ok"
    return 0 if sound != args.ack_before_commit else 1


if __name__ == "__main__":
    sys.exit(main())
