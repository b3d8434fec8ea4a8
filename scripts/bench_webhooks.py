"""Webhook latency: from an event's commit to the receiver's 2xx, p50/p99 over N events.

A healthy loopback receiver, a migrated SQLite file in a temporary directory, and the real path:
`delivery worker` in its own process with default settings, woken by the `outbox` job each event
queues. Events are committed at a steady rate (--rate per second). Prints JSON. Loopback only,
bounded (the worker is stopped at the end, whatever happens).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from delivery.loop import endpoints
from delivery.models import EventKind, Organization, OutboxMessage, Patient, Referral, ReferralStatus
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database, upgrade
from delivery.platform.settings import ROOT
from delivery.timeline import events, payloads


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--events", type=int, default=1000)
    args.add_argument("--rate", type=float, default=50.0, help="events committed per second")
    opts = args.parse_args(argv)
    arrived: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            arrived.setdefault(self.headers["webhook-id"], time.time())
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        database = Database(url)
        with database.writer() as db:
            bank = Organization(name="Bank", kind="food_bank")
            db.add(bank)
            db.flush()
            clinic = Organization(name="Clinic", kind="clinic", food_bank_id=bank.id)
            db.add(clinic)
            db.flush()
            endpoints.register(db, clinic, f"http://127.0.0.1:{server.server_address[1]}/",
                               allow_loopback=True, actor=AuditContext())
            patient = Patient(clinic_id=clinic.id, mrn="B-1", given_name="B", family_name="B",
                              birth_date=dt.date(1950, 1, 1), address_line1="1 Main St",
                              city="Oakland", state="CA", postal_code="94601")
            db.add(patient)
            db.flush()
            referral = Referral(clinic_id=clinic.id, food_bank_id=bank.id, patient_id=patient.id,
                                source="api", status=ReferralStatus.active, outcome="home_delivery",
                                reason="bench")
            db.add(referral)
            db.commit()
            referral_id = referral.id
        env = {**os.environ, "DELIVERY_DATABASE_URL": url, "DELIVERY_SECRET_KEY": "bench",
               "DELIVERY_WEBHOOK_ALLOW_LOOPBACK": "true",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        log = Path(tmp) / "worker.log"
        with log.open("w") as out:  # a file, not a pipe: a full pipe would stall the worker
            worker = subprocess.Popen([sys.executable, "-m", "delivery", "worker", "--kinds", "outbox"],
                                      env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            latencies = measure(database, referral_id, opts, arrived)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            database.dispose()
            if worker.returncode != 0:
                print(log.read_text()[-2000:], file=sys.stderr)
    server.shutdown()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(json.dumps({"events": opts.events, "rate_per_s": opts.rate, "arrived": len(latencies),
                      "p50_s": round(statistics.median(latencies), 3), "p99_s": round(q[98], 3),
                      "max_s": round(latencies[-1], 3), "target_p99_s": 5.0}))
    return 0 if len(latencies) == opts.events and worker.returncode == 0 else 1


def measure(database: Database, referral_id: int, opts: argparse.Namespace,
            arrived: dict[str, float]) -> list[float]:
    """Commit the events at the steady rate; wait (a minute at most) for them; the latencies, sorted."""
    committed: dict[str, float] = {}
    started = time.time()
    for n in range(opts.events):
        with database.writer() as db:
            ref = db.get(Referral, referral_id)
            event = events.record(db, ref, EventKind.priority_changed,  # type: ignore[arg-type]
                                  payloads.PriorityChanged(order_id=1, before=n % 2, after=(n + 1) % 2))
            db.flush()
            msg_id = db.scalar(select(OutboxMessage.webhook_id).where(OutboxMessage.event_id == event.id))
            db.commit()
        committed[msg_id] = time.time()
        time.sleep(max(0.0, started + (n + 1) / opts.rate - time.time()))
    deadline = time.time() + 60
    while len(arrived) < opts.events and time.time() < deadline:
        time.sleep(0.1)
    return sorted(arrived[k] - committed[k] for k in committed if k in arrived)

if __name__ == "__main__":
    sys.exit(main())
