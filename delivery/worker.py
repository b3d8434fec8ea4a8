"""`delivery worker`: the job runner with every kind of background work registered in one place.

To add a kind: give its module a `KIND` name and a handler `run(ctx: JobContext)`, queue it with
`delivery.platform.jobs.enqueue(db, KIND, payload)` in the transaction that needs it, and list its
`Kind` below (docs/TEAM-NOTES.md, "Background jobs").
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable

from delivery.field import followup
from delivery.loop import sender
from delivery.loop.fhir import light
from delivery.loop.messages import outgoing
from delivery.plans import solve_job
from delivery.platform.db import Database
from delivery.platform.jobs import Kind, Runner
from delivery.platform.settings import Settings
from delivery.program import waitlist_job
from delivery.referrals import geocoding


def kinds() -> list[Kind]:
    """Every kind of job a worker can run."""
    return [solve_job.kind(), geocoding.job_kind(), sender.job_kind(), followup.job_kind(), light.job_kind(),
            waitlist_job.job_kind(), *outgoing.job_kinds()]


def runner(database: Database, settings: Settings, only: Iterable[str] | None = None) -> Runner:
    """A runner for every kind, or only those named (ValueError names an unknown one)."""
    return Runner(database, settings, kinds(), only=only)


def seed(runner: Runner) -> None:
    """Queue the periodic job this worker runs unless one is queued (`promote` queues itself again
    after each run): a new database, a restored backup or a run that failed for good starts the
    chain again, and a worker that was down catches up at once."""
    if waitlist_job.KIND in runner.claimable:
        with runner.database.writer() as db:
            waitlist_job.queue(db)
            db.commit()


def serve(runner: Runner) -> None:
    """Run jobs until SIGTERM or Ctrl-C; the job in hand is told to stop and finishes consistently."""

    def stop(signum: int, frame: object) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    seed(runner)
    runner.run()
