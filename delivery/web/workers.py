"""Background work the app runs beside requests (geocoding, the planner's worker process),
started and stopped with the app."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from delivery.models import PlanJob, PlanJobStatus
from delivery.platform.db import Database
from delivery.platform.settings import ROOT, Settings, encode
from delivery.referrals.geocoding import GeocodingWorker

_plan_worker_lock = threading.Lock()


def start_workers(app: Litestar) -> None:
    settings: Settings = app.state.settings
    database: Database = app.state.database
    if settings.geocoder != "none":
        app.state.geocoding_worker = GeocodingWorker(database, settings)
        app.state.geocoding_worker.start()
    try:  # runs left queued by a previous server: pick them up
        with database.reader() as db:
            queued = db.scalar(select(PlanJob.id).where(PlanJob.status == PlanJobStatus.queued).limit(1))
    except SQLAlchemyError:  # a database not migrated yet has no runs to pick up
        queued = None
    if queued is not None:
        ensure_plan_worker(app)


def stop_workers(app: Litestar) -> None:
    worker = getattr(app.state, "geocoding_worker", None)
    if worker is not None:
        worker.stop()
    stop_plan_worker(app)


def wake_geocoder(app: Litestar) -> None:
    """New addresses were committed: geocode them now rather than at the next poll."""
    worker = getattr(app.state, "geocoding_worker", None)
    if worker is not None:
        worker.wake()


def ensure_plan_worker(app: Litestar) -> None:
    """Start the planner's worker process (`python -m delivery.plans.plan_worker`) unless it runs.

    Started on the first plan request rather than with every app, so an app that never plans
    (most tests) pays nothing. It exits with this process; on PostgreSQL more can run elsewhere.
    """
    from delivery.plans.plan_worker import SETTINGS_ENV

    with _plan_worker_lock:
        process: subprocess.Popen | None = getattr(app.state, "plan_worker", None)
        if process is not None and process.poll() is None:
            return
        settings: Settings = app.state.settings
        env = {**os.environ, SETTINGS_ENV: encode(settings).decode(),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        app.state.plan_worker = subprocess.Popen(
            [sys.executable, "-m", "delivery.plans.plan_worker", "--parent-pid", str(os.getpid())],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL)


def stop_plan_worker(app: Litestar) -> None:
    process: subprocess.Popen | None = getattr(app.state, "plan_worker", None)
    if process is None or process.poll() is not None:
        return
    process.terminate()  # the worker keeps the best plan found and marks its run cancelled
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
