"""Helpers for tests of background jobs: a clock the test moves, and a worker in a thread."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from delivery.models import Job
from delivery.platform.db import Database
from delivery.platform.jobs import Kind, Runner
from delivery.platform.settings import Settings
from delivery.worker import kinds as every_kind


class FakeClock:
    """Time stands still until the test moves it."""

    def __init__(self, at: dt.datetime | None = None) -> None:
        self.at = at or dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


@contextmanager
def running_worker(database: Database, settings: Settings, kinds: Iterable[Kind] | None = None,
                   **options: object) -> Iterator[Runner]:
    """A job runner (every kind unless told) in a thread of this process, stopped on the way out."""
    runner = Runner(database, settings, every_kind() if kinds is None else kinds,
                    poll_s=0.05, **options)  # type: ignore[arg-type]
    thread = threading.Thread(target=runner.run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(60)


def run_due_jobs(database: Database, settings: Settings, kinds: Iterable[Kind]) -> int:
    """What `delivery worker --kinds ...` does next: run every due job of these kinds (and any they
    queue), in this thread; returns how many ran."""
    runner = Runner(database, settings, kinds, poll_s=0)
    ran = 0
    while claimed := runner.run_once():
        ran += claimed
    return ran


def job_row(database: Database, job_id: int) -> Job:
    """The jobs row as it is now."""
    with database.reader() as db:
        found = db.get(Job, job_id)
        assert found is not None
        return found


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {seconds} s for {what}")
        time.sleep(0.1)
