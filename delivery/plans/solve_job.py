"""The plan_solve job: solve one PlanJob (a day's solver run) and write the best plan found.

`planning.enqueue()` queues it; any `delivery worker` runs it (`delivery.platform.jobs` claims it,
beats its heartbeat and takes it back if this worker dies). Running it twice is harmless: a
PlanJob that already ended is left as it is.

Each solve runs in a child process of its own ('spawn'), which sends every better plan back through
a pipe. The worker keeps the best one, writes progress to the PlanJob at most every half second,
watches `cancel_requested`, the time limit (R6.4) and its own shutdown, and stops the child when any
says so: the best plan found so far is what gets written.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import Job, Plan, PlanJob, PlanJobStatus, utcnow
from delivery.plans import planning
from delivery.platform.db import Database
from delivery.platform.jobs import JobContext, Kind, exponential
from delivery.platform.settings import Settings
from delivery.routing import Problem, Solution, solve

log = logging.getLogger("delivery.plans.solve_job")

PROGRESS_EVERY_S = 0.5
GRACE_S = 20.0  # a child still running this long after its time limit is stopped
WORKER_LOST = "The worker running this plan stopped; plan the day again."


def kind() -> Kind:
    """plan_solve: a retry soon after a failure (a crash is rarely the day's fault), then give up."""
    return Kind(planning.SOLVE_KIND, run, backoff=exponential(first_s=5.0, max_s=60.0), on_give_up=give_up)


# --- the child: pure computation, no database ----------------------------------------------


def _solve_child(problem: bytes, time_limit: float, initial: bytes | None, conn: Connection,
                 parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    decoded = msgspec.msgpack.decode(problem, type=Problem)
    start = msgspec.msgpack.decode(initial, type=Solution) if initial else None

    def improved(solution: Solution) -> None:
        if os.getppid() != parent:  # the worker was killed: nobody is listening any more
            os._exit(0)
        conn.send_bytes(b"i" + msgspec.msgpack.encode(solution))

    solution = solve(decoded, time_limit=time_limit, initial=start, on_improvement=improved)
    conn.send_bytes(b"f" + msgspec.msgpack.encode(solution))
    conn.close()


# --- the job --------------------------------------------------------------------------------


def run(ctx: JobContext) -> None:
    """Solve the PlanJob named in the payload to its end, cancel, time limit or worker shutdown."""
    plan_job_id = int(ctx.payload["plan_job_id"])
    database, settings = ctx.database, ctx.settings
    with database.writer() as db:
        job = db.get(PlanJob, plan_job_id)
        if job is None or job.status not in planning.ACTIVE_JOBS:  # cancelled, or ended by an earlier try
            db.commit()
            return
        job.status, job.started_at = PlanJobStatus.running, utcnow()
        job.progress = {"solutions": 0, "seconds": 0.0, "seconds_left": job.time_limit_s}
        plan = db.get(Plan, job.plan_id)
        assert plan is not None
        try:
            built = planning.build(db, plan, settings, driver_ids=[int(d) for d in job.driver_ids],
                                   keep_locks=job.keep_locks)
            initial = planning.start_from(db, plan, built)
        except planning.PlanningError as exc:  # the day cannot be planned as asked: the run fails
            job.status, job.finished_at, job.error = PlanJobStatus.failed, utcnow(), str(exc)[:1000]
            db.commit()
            return
        time_limit, driver_ids, keep_locks = job.time_limit_s, list(job.driver_ids), job.keep_locks
        db.commit()

    began = time.monotonic()
    best: Solution | None = None
    found = 0
    status, error = PlanJobStatus.done, None
    mp = multiprocessing.get_context("spawn")
    receiver, sender = mp.Pipe(duplex=False)
    child = mp.Process(target=_solve_child, name=f"plan-job-{plan_job_id}",
                       args=(msgspec.msgpack.encode(built.problem), time_limit,
                             msgspec.msgpack.encode(initial) if initial else None, sender, os.getpid()))
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
            if ctx.stopping.is_set():
                status = PlanJobStatus.cancelled
                error = "The server stopped during planning; the best plan is kept."
                break
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S:
                last = now
                if _check_in(database, plan_job_id, _progress(best, found, began, time_limit)):
                    status = PlanJobStatus.cancelled
                    break
            if now - began > time_limit + GRACE_S:
                error = (f"The solver overran its {time_limit:.0f} s limit and was stopped; "
                         "the best plan is kept.")
                break
            if not child.is_alive() and not receiver.poll(0):
                status, error = PlanJobStatus.failed, "The solver stopped unexpectedly."
                break
    finally:
        if child.is_alive():
            child.terminate()
            child.join(5)
            if child.is_alive():
                child.kill()
                child.join(5)
        receiver.close()
    _finish(database, settings, plan_job_id, best, found, began, time_limit, status, error,
            driver_ids, keep_locks)


def give_up(db: Session, job: Job) -> None:
    """The jobs row failed for good (its worker died on the last attempt, or it kept raising)."""
    plan_job = db.scalar(select(PlanJob).where(PlanJob.job_id == job.id).with_for_update())
    if plan_job is not None and plan_job.status in planning.ACTIVE_JOBS:
        plan_job.status, plan_job.finished_at, plan_job.error = PlanJobStatus.failed, utcnow(), WORKER_LOST


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
