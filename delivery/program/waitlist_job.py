"""The `promote` job: room that frees up with no write reaches waiting patients by itself.

Writes that free room (an order ended, paused or made smaller, capacity raised) promote the waitlist
in their own transaction. Room also frees with no write at all: a new week restores each clinic's
allocation, a one-off delivery or an order's end date passes. This job runs `waitlist.promote` for
every program with someone waiting (the same call as the coordinator's "serve the waitlist"), each
in a short transaction of its own, then queues itself again: in an hour, or just after the next
midnight where a program delivers if that comes sooner, so a new week's allocations are used at
once. There is at most one queued (`dedupe_key`); `delivery worker` queues it on start if none is.

Running it twice is harmless: a second run finds nobody who fits that the first did not move.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import Job, Order, OrderStatus, Organization, OrganizationKind
from delivery.platform import jobs
from delivery.platform.clock import zone
from delivery.program import waitlist

KIND = "promote"
DEDUPE_KEY = "next"
EVERY = dt.timedelta(hours=1)


def next_run(now: dt.datetime, timezones: Iterable[str]) -> dt.datetime:
    """An hour after `now`, or the first midnight after it in any of these time zones if sooner:
    a new day (and on Monday a new allocation week) can free room at midnight."""
    runs = [now + EVERY]
    for name in set(timezones):
        tz = zone(name)
        midnight = dt.datetime.combine(now.astimezone(tz).date() + dt.timedelta(days=1), dt.time(), tzinfo=tz)
        if midnight > now:  # always, save for a time zone's odd midnight: never loop on the same instant
            runs.append(midnight.astimezone(dt.UTC))
    return min(runs)


def queue(db: Session, *, run_after: dt.datetime | None = None) -> Job:
    """Queue the job (the caller's transaction); the one already queued, moved sooner if need be."""
    return jobs.enqueue(db, KIND, run_after=run_after, dedupe_key=DEDUPE_KEY)


def run(ctx: jobs.JobContext) -> None:
    """Promote the waitlist of every program where someone waits, then queue the next run."""
    now = ctx.clock.now()
    with ctx.database.reader() as db:  # an idle program never takes the writer
        waiting = set(db.scalars(select(Order.food_bank_id).where(Order.status == OrderStatus.waitlisted)
                                 .distinct()))
        timezones = list(db.scalars(select(Organization.timezone)
                                    .where(Organization.kind == OrganizationKind.food_bank)))
    interrupted = False
    for food_bank_id in sorted(waiting):
        if ctx.stopping.is_set():  # the worker is stopping: the next worker does the rest at once
            interrupted = True
            break
        with ctx.database.writer() as db:
            food_bank = db.get(Organization, food_bank_id)
            if food_bank is not None:
                waitlist.promote(db, food_bank, now.astimezone(zone(food_bank.timezone)).date())
            db.commit()
    with ctx.database.writer() as db:
        queue(db, run_after=now if interrupted else next_run(now, timezones))
        db.commit()


def _queue_again(db: Session, job: Job) -> None:
    """A run that failed every attempt (the database away, a bug) must not end the chain of runs."""
    assert job.finished_at is not None  # the runner stamps it before calling this
    queue(db, run_after=job.finished_at + EVERY)


def job_kind() -> jobs.Kind:
    """promote: a failed run is tried again after 5, 10, 20 … seconds (at most 5 minutes), and after
    its last attempt the next one is queued an hour on."""
    return jobs.Kind(KIND, run, backoff=jobs.exponential(first_s=5.0, max_s=300.0), on_give_up=_queue_again)
