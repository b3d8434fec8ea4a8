"""What the load benchmarks share (`bench_load.py`, `bench_confirm.py`): a throwaway database with
one published day, a real server process on 127.0.0.1, a bounded open-loop sender, the drivers'
requests, and the check of what the database holds afterwards.

Not a test helper: it writes the rows a published day has directly (no solver, no geocoder), the
way a program would look after `delivery plan` and publishing, and drives the app only over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from delivery.models import (
    Cadence,
    Confirmation,
    Driver,
    Order,
    OrderStatus,
    Organization,
    OrganizationKind,
    Patient,
    Plan,
    PlanStatus,
    Referral,
    ReferralStatus,
    Role,
    Route,
    Stop,
    StopStatus,
)
from delivery.plans import publishing
from delivery.platform import auth
from delivery.platform.db import Database, upgrade
from delivery.platform.settings import ROOT, Settings, from_env
from delivery.web.security import session_cookie_name

SECRET = "bench-load-not-a-real-secret"
OUTCOMES = ("delivered", "delivered", "delivered", "left_at_door", "no_answer")


@dataclass
class Phone:
    """One driver's phone: the route's delivery token (the confirmation API), its signed-in session's
    Cookie header (the route page), and the stops still to confirm, in order."""

    user_id: int
    route_id: int
    token: str
    cookie: str
    stops: list[int]


# --- the day ---------------------------------------------------------------------------------------


def seed_day(database: Database, settings: Settings, *, drivers: int, stops_each: int,
             today: dt.date) -> list[Phone]:
    """A food bank, one clinic, and `drivers` published routes of `stops_each` stops on `today`,
    each driver signed in on their phone. `settings` must be the server's (its secret signs the
    delivery tokens; its cookie name is the one the server reads). Returns the phones."""
    run = uuid.uuid4().hex[:8]
    with database.writer() as db:
        food_bank = Organization(name=f"Load Food Bank {run}", kind=OrganizationKind.food_bank,
                                 boxes_per_delivery_day=drivers * stops_each,
                                 delivery_weekday=today.weekday())
        db.add(food_bank)
        db.flush()
        clinic = Organization(name=f"Load Clinic {run}", kind=OrganizationKind.clinic,
                              food_bank_id=food_bank.id)
        plan = Plan(food_bank_id=food_bank.id, date=today, status=PlanStatus.published,
                    published_at=settings.clock.now() - dt.timedelta(hours=1), published_version=1)
        db.add_all([clinic, plan])
        db.flush()
        users = [auth.create_user(db, email=f"driver{d}.{run}@load.test", display_name=f"Driver {d}",
                                  memberships=[(food_bank.id, Role.driver)])
                 for d in range(drivers)]
        phones = []
        for d, user in enumerate(users):
            driver = Driver(user_id=user.id, food_bank_id=food_bank.id, capacity_boxes=stops_each,
                            languages=["en"])
            db.add(driver)
            db.flush()
            route = Route(plan_id=plan.id, driver_id=driver.id, colour=d, planned_start=9 * 3600,
                          planned_end=9 * 3600 + stops_each * 600, load_boxes=stops_each,
                          published_version=1)
            db.add(route)
            db.flush()
            token = publishing.issue_delivery_token(db, route)
            cookie, _session = auth.start_session(db, user, settings)
            stops = _stops(db, food_bank.id, clinic.id, plan, route, stops_each, f"{run}-{d}")
            phones.append(Phone(user.id, route.id, publishing.raw_delivery_token(token, settings.secret_key),
                                f"{session_cookie_name(settings)}={cookie}", stops))
        db.commit()
    return phones


def _stops(db, food_bank_id: int, clinic_id: int, plan: Plan, route: Route, count: int,  # type: ignore[no-untyped-def]
           tag: str) -> list[int]:
    patients = [Patient(clinic_id=clinic_id, mrn=f"L-{tag}-{s}", given_name=f"Pat{s}", family_name="Load",
                        birth_date=dt.date(1950, 1, 1), phone="+15105550100",
                        address_line1=f"{100 + s} 98th Ave",
                        city="Oakland", state="CA", postal_code="94603", lat=37.75 + s / 10000, lon=-122.17,
                        consent_to_share=True) for s in range(count)]
    db.add_all(patients)
    db.flush()
    referrals = [Referral(clinic_id=clinic_id, food_bank_id=food_bank_id, patient_id=p.id, source="web",
                          status=ReferralStatus.active, outcome="home_delivery", reason="eligible")
                 for p in patients]
    db.add_all(referrals)
    db.flush()
    orders = [Order(referral_id=r.id, patient_id=r.patient_id, food_bank_id=food_bank_id, boxes=1,
                    box_type="standard", cadence=Cadence.weekly, weekday=plan.date.weekday(),
                    start_date=plan.date - dt.timedelta(days=7), status=OrderStatus.active)
              for r in referrals]
    db.add_all(orders)
    db.flush()
    stops = [Stop(plan_id=plan.id, order_id=o.id, patient_id=o.patient_id, date=plan.date, route_id=route.id,
                  seq=s + 1, eta=9 * 3600 + s * 600, departure=9 * 3600 + s * 600 + 300, boxes=1,
                  box_type="standard", service_s=300, status=StopStatus.pending)
             for s, o in enumerate(orders)]
    db.add_all(stops)
    db.flush()
    return [s.id for s in stops]


# --- the database and the server -------------------------------------------------------------------


@contextmanager
def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    """A new, migrated, empty database (a SQLite file in `tmp`, or a PostgreSQL database made on
    DELIVERY_TEST_POSTGRES_URL's server and dropped afterwards); yields its URL."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'load.db'}"
        upgrade(url)
        yield url
        return
    server = os.environ.get("DELIVERY_TEST_POSTGRES_URL")
    if not server:
        raise SystemExit("--db postgres needs DELIVERY_TEST_POSTGRES_URL (a PostgreSQL server URL; "
                         "a database of its own is made and dropped)")
    name = f"bench_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def environment(url: str, port: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "DELIVERY_DATABASE_URL": url,
            "DELIVERY_SECRET_KEY": SECRET,
            "DELIVERY_GEOCODER": "none", "DELIVERY_BASE_URL": f"http://127.0.0.1:{port}"}


def server_settings(url: str, port: int) -> Settings:
    """The settings the server started by `running` reads from its environment."""
    return from_env(environment(url, port))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """`delivery serve` (uvicorn serving create_app) on 127.0.0.1:`port`, once it accepts connections."""
    server = subprocess.Popen([sys.executable, "-m", "delivery", "serve", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}) before answering")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("the server did not start within 60 s") from None
            time.sleep(0.1)


def start_worker(env: dict[str, str], kinds: str) -> subprocess.Popen[bytes]:
    """`delivery worker --kinds …`, as `scripts/run` starts one beside the app."""
    return subprocess.Popen([sys.executable, "-m", "delivery", "worker", "--kinds", kinds], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def running(url: str, port: int) -> Iterator[str]:
    """A server on 127.0.0.1:`port` and beside it a worker for the jobs confirmations queue;
    yields the base URL."""
    env = environment(url, port)
    worker = start_worker(env, "followup,outbox")
    try:
        server = start_server(env, port)
    except RuntimeError:
        worker.terminate()
        raise
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for process in (server, worker):
            process.terminate()
        for process in (server, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # still draining an overload: the run is over anyway
                process.kill()
                process.wait()


def check_server(base: str, phone: Phone) -> None:
    """Refuse to measure anything but our own server: only it knows this phone's session (a fresh
    random secret in the database we just made), so its route page answers 200 to it alone."""
    response = httpx.get(f"{base}/driver/routes/{phone.route_id}", headers={"Cookie": phone.cookie},
                         timeout=30)
    if response.status_code != 200 or "x-request-id" not in response.headers:
        raise SystemExit(f"{base} is not the server this benchmark started "
                         f"(route page: {response.status_code})")


# --- the drivers' requests -------------------------------------------------------------------------


@dataclass
class Tally:
    """Latencies (ms, from the moment each request was due) and what went wrong, by request kind."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    acknowledged: dict[str, int] = field(default_factory=dict)  # idempotency key -> stop, on a 2xx
    answered: list[tuple[Phone, int, str, dict]] = field(default_factory=list)  # type: ignore[type-arg]
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def summary(self, kind: str) -> dict[str, object]:
        ordered = sorted(self.latencies.get(kind, []))
        return {"requests": len(ordered), "p50_ms": percentile(ordered, 0.50),
                "p99_ms": percentile(ordered, 0.99), "max_ms": round(ordered[-1], 2) if ordered else None}


def percentile(ordered: list[float], q: float) -> float | None:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2) if ordered else None


def confirmation_body(rng: random.Random, occurred_at: dt.datetime) -> dict[str, str]:
    return {"outcome": rng.choice(OUTCOMES), "occurred_at": occurred_at.isoformat()}


async def confirm(client: httpx.AsyncClient, tally: Tally, due: float, phone: Phone, stop: int, key: str,
                  body: dict[str, str], *, replay: bool, kind: str = "confirm") -> None:
    """POST one confirmation as the phone does; a replay (same key and body) must be answered from
    what is stored, marked `Idempotency-Replay: true`."""
    try:
        response = await client.post(f"/api/v1/stops/{stop}/confirmations", json=body, headers={
            "Authorization": f"Bearer {phone.token}", "Idempotency-Key": key})
    except httpx.HTTPError as exc:
        tally.errors.append(f"{kind}: {type(exc).__name__}")
        return
    tally.latencies.setdefault(kind, []).append((time.perf_counter() - due) * 1000)
    if response.status_code not in (200, 201):
        tally.errors.append(f"{kind}: {response.status_code} {response.text[:120]}")
    elif replay and response.headers.get("idempotency-replay") != "true":
        tally.errors.append(f"{kind}: replay not marked")
    else:
        tally.acknowledged[key] = stop
        if not replay:
            tally.answered.append((phone, stop, key, body))


async def stop_list(client: httpx.AsyncClient, tally: Tally, due: float, phone: Phone) -> None:
    """The driver's route page: the stop list, every stop's card audited as a view (R10)."""
    try:
        response = await client.get(f"/driver/routes/{phone.route_id}", headers={"Cookie": phone.cookie})
    except httpx.HTTPError as exc:
        tally.errors.append(f"stop_list: {type(exc).__name__}")
        return
    tally.latencies.setdefault("stop_list", []).append((time.perf_counter() - due) * 1000)
    if response.status_code != 200:
        tally.errors.append(f"stop_list: {response.status_code}")


Send = Callable[[httpx.AsyncClient, float], Awaitable[None]]  # a request, given the moment it was due


async def open_loop(base: str, schedule: list[tuple[float, Send]], tally: Tally, *,
                    max_in_flight: int = 200) -> None:
    """Start each request at its time (seconds from now) whether or not earlier ones answered
    (open loop: a slow server is not given time to catch up). Bounded: at most `max_in_flight`
    at once; a request that finds them all busy is counted as an error, not queued."""
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    in_flight = 0
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        start = time.perf_counter() + 0.2

        async def one(at: float, send: Send) -> None:
            nonlocal in_flight
            due = start + at
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if in_flight >= max_in_flight:
                tally.errors.append("dropped: too many requests in flight")
                return
            in_flight += 1
            try:
                await send(client, due)
            finally:
                in_flight -= 1

        await asyncio.gather(*(one(at, send) for at, send in schedule))


# --- what the database holds afterwards ------------------------------------------------------------


def stored_check(url: str, acknowledged: dict[str, int]) -> dict[str, int]:
    """Every acknowledged confirmation is stored exactly once, on its stop, and no stop holds two
    live confirmations: `lost` (acknowledged, not stored) and `duplicates` must both be 0."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Confirmation.idempotency_key, Confirmation.stop_id)).all()
            doubled = conn.scalar(select(func.count()).select_from(
                select(Confirmation.stop_id).where(Confirmation.undone_at.is_(None))
                .group_by(Confirmation.stop_id).having(func.count() > 1).subquery())) or 0
    finally:
        engine.dispose()
    stored: dict[str, list[int]] = {}
    for key, stop in rows:
        stored.setdefault(key, []).append(stop)
    lost = sum(1 for key, stop in acknowledged.items() if stored.get(key) != [stop])
    return {"rows": len(rows), "acknowledged": len(acknowledged), "lost": lost,
            "duplicates": doubled + sum(len(stops) - 1 for stops in stored.values())}
