"""The solver's worker process: claims queued plan jobs from the table and runs them.

Run standalone with `python -m delivery.plans.plan_worker` (any number of them on PostgreSQL: a job is
claimed with SELECT … FOR UPDATE SKIP LOCKED; on SQLite the single writer's BEGIN IMMEDIATE makes
the claim atomic). The web app starts one when a day is first planned (`delivery.web.workers`).

Each solve runs in a child process of its own ('spawn'), which sends every better plan back through
a pipe. This process keeps the best one, writes progress to the job row at most every half second,
watches `cancel_requested` and the time limit (R6.4), and stops the child when either says so:
the best plan found so far is what gets written.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection

import msgspec
from sqlalchemy import select

from delivery.models import Plan, PlanJob, PlanJobStatus, utcnow
from delivery.plans import planning
from delivery.platform.db import Database
from delivery.platform.settings import Settings, from_env
from delivery.routing import Problem, Solution, solve

log = logging.getLogger("delivery.plans.plan_worker")

SETTINGS_ENV = "DELIVERY_PLAN_WORKER_SETTINGS"
PROGRESS_EVERY_S = 0.5
GRACE_S = 20.0  # a child still running this long after its time limit is stopped
STALE_AFTER_S = 120.0  # a "running" job this far past its limit lost its worker


# --- the child: pure computation, no database ----------------------------------------------


def _solve_child(problem: bytes, time_limit: float, initial: bytes | None, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    decoded = msgspec.msgpack.decode(problem, type=Problem)
    start = msgspec.msgpack.decode(initial, type=Solution) if initial else None

    def improved(solution: Solution) -> None:
        conn.send_bytes(b"i" + msgspec.msgpack.encode(solution))

    solution = solve(decoded, time_limit=time_limit, initial=start, on_improvement=improved)
    conn.send_bytes(b"f" + msgspec.msgpack.encode(solution))
    conn.close()


# --- claiming -------------------------------------------------------------------------------


def claim(database: Database, worker: str) -> int | None:
    """Take the oldest queued job, or None. Safe with any number of workers."""
    with database.writer() as db:
        now = utcnow()
        for job in db.scalars(select(PlanJob).where(PlanJob.status == PlanJobStatus.running)
                              .with_for_update(skip_locked=True)):
            if job.started_at and (now - job.started_at).total_seconds() > job.time_limit_s + STALE_AFTER_S:
                job.status, job.finished_at = PlanJobStatus.failed, now
                job.error = "The worker running this plan stopped; plan the day again."
        job = db.scalar(select(PlanJob).where(PlanJob.status == PlanJobStatus.queued)
                        .order_by(PlanJob.id).limit(1).with_for_update(skip_locked=True))
        if job is None:
            db.commit()
            return None
        job.status, job.worker, job.started_at = PlanJobStatus.running, worker[:100], now
        job.progress = {"solutions": 0, "seconds": 0.0, "seconds_left": job.time_limit_s}
        db.commit()
        return job.id


# --- running one job ------------------------------------------------------------------------


def _check_in(database: Database, job_id: int, progress: dict | None) -> bool:
    """Write progress (when given); True when a coordinator asked to cancel."""
    with database.writer() as db:
        job = db.get(PlanJob, job_id)
        if job is None:
            return True
        if progress is not None:
            job.progress = progress
        cancel = job.cancel_requested
        db.commit()
        return cancel


def run_job(database: Database, settings: Settings, job_id: int) -> str:
    """Solve one claimed job to its end, cancel or time limit; returns the job's final status."""
    with database.writer() as db:
        job = db.get(PlanJob, job_id)
        assert job is not None
        plan = db.get(Plan, job.plan_id)
        assert plan is not None
        try:
            built = planning.build(db, plan, settings, driver_ids=[int(d) for d in job.driver_ids],
                                   keep_locks=job.keep_locks)
            initial = planning.start_from(db, plan, built)
        except Exception as exc:  # the run fails, the worker carries on
            log.exception("plan job %s could not be built", job_id)
            job.status, job.finished_at, job.error = PlanJobStatus.failed, utcnow(), str(exc)[:1000]
            db.commit()
            return job.status
        time_limit, driver_ids, keep_locks = job.time_limit_s, list(job.driver_ids), job.keep_locks
        db.commit()

    began = time.monotonic()
    best: Solution | None = None
    found = 0
    status, error = PlanJobStatus.done, None
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_solve_child, name=f"plan-job-{job_id}",
                        args=(msgspec.msgpack.encode(built.problem), time_limit,
                              msgspec.msgpack.encode(initial) if initial else None, sender))
    try:
        child.start()
        sender.close()
        last = 0.0
        while True:
            if receiver.poll(0.1):
                try:
                    message = receiver.recv_bytes()
                except EOFError:
                    status = PlanJobStatus.failed if best is None else PlanJobStatus.done
                    error = "The solver stopped unexpectedly" + ("." if best is None else
                                                                 "; the best plan found is kept.")
                    break
                best = msgspec.msgpack.decode(message[1:], type=Solution)
                found += 1
                if message[:1] == b"f":
                    break
                if time.monotonic() - last < PROGRESS_EVERY_S:
                    continue
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                last = now
                if _check_in(database, job_id, _progress(best, found, began, time_limit)):
                    status = PlanJobStatus.cancelled
                    break
            if now - began > time_limit + GRACE_S:
                error = (f"The solver overran its {time_limit:.0f} s limit and was stopped; "
                         "the best plan is kept.")
                break
            if not child.is_alive() and not receiver.poll(0):
                status, error = PlanJobStatus.failed, "The solver stopped unexpectedly."
                break
    except (KeyboardInterrupt, SystemExit):
        status, error = PlanJobStatus.cancelled, "The server stopped during planning; the best plan is kept."
        raise
    finally:
        if child.is_alive():
            child.terminate()
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join(5)
        receiver.close()
        _finish(database, settings, job_id, best, found, began, time_limit, status, error,
                driver_ids, keep_locks)
    return status


def _progress(best: Solution | None, found: int, began: float, time_limit: float) -> dict:
    if best is None:
        elapsed = time.monotonic() - began
        return {"solutions": 0, "seconds": round(elapsed, 1),
                "seconds_left": round(max(time_limit - elapsed, 0.0), 1)}
    return planning.progress_of(best, began, time_limit) | {"solutions": found}


def _finish(database: Database, settings: Settings, job_id: int, best: Solution | None, found: int,
            began: float, time_limit: float, status: str, error: str | None, driver_ids: list[str],
            keep_locks: bool) -> None:
    with database.writer() as db:
        job = db.get(PlanJob, job_id)
        assert job is not None
        plan = planning.lock_plan(db, job.plan_id)
        if best is not None:
            built = planning.build(db, plan, settings, driver_ids=[int(d) for d in driver_ids],
                                   keep_locks=keep_locks)
            planning.apply_solution(db, plan, built, planning.keep_known(best, built))
        job.status, job.error, job.finished_at = status, error, utcnow()
        job.progress = _progress(best, found, began, time_limit) | {"seconds_left": 0.0}
        db.commit()
    log.info("plan job %s %s: %s", job_id, status, job.progress)


# --- the loop -------------------------------------------------------------------------------


def serve(database: Database, settings: Settings, *, parent_pid: int | None = None,
          poll_s: float = 0.5, once: bool = False) -> None:
    """Claim and run jobs until stopped (or the parent process is gone)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        if parent_pid is not None and os.getppid() != parent_pid:
            return
        job_id = claim(database, worker)
        if job_id is not None:
            run_job(database, settings, job_id)
            continue
        if once:
            return
        time.sleep(poll_s)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m delivery.plans.plan_worker", description=__doc__.split("\n")[0]
    )
    p.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    p.add_argument("--once", action="store_true", help="run the queued jobs, then exit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    raw = os.environ.get(SETTINGS_ENV)
    settings = msgspec.json.decode(raw, type=Settings) if raw else from_env()
    signal.signal(signal.SIGTERM, _terminate)
    database = Database(settings.database_url)
    try:
        serve(database, settings, parent_pid=args.parent_pid, once=args.once)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
