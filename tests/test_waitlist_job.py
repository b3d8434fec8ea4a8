"""The `promote` job: room that frees up with no write (a new allocation week, a one-off delivery
that passed) reaches waiting patients by itself, through the job runner, without any page POST;
the job is harmless twice and keeps exactly one run queued."""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import func, select

from delivery import worker
from delivery.models import Job, JobState, Order, OrderStatus, Organization, Referral, ReferralEvent, Source
from delivery.platform import jobs
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from delivery.platform.settings import Settings
from delivery.program import waitlist_job
from delivery.referrals import intake
from delivery.referrals.schemas import ReferralIn
from delivery.timeline import events
from tests.builders import Program, clock_on, referral_body
from tests.job_builders import FakeClock, job_row
from tests.test_partnerships import MONDAY, agree, refer

LA = ZoneInfo("America/Los_Angeles")
FRIDAY = MONDAY + dt.timedelta(days=4)
NEXT_MONDAY = MONDAY + dt.timedelta(days=7)


def at(day: dt.date, hour: int, minute: int = 0, tz: dt.tzinfo = LA) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz)


def promote_runner(database: Database, settings: Settings, clock: FakeClock) -> Runner:
    """A worker for the promote job alone, seeded as `delivery worker` seeds it on start."""
    runner = Runner(database, settings, [waitlist_job.job_kind()], clock=clock, poll_s=0)
    worker.seed(runner)
    return runner


def queued(database: Database) -> list[Job]:
    with database.reader() as db:
        return list(db.scalars(select(Job).where(Job.kind == waitlist_job.KIND,
                                                 Job.state == JobState.queued)))


def moved_events(database: Database, referral_id: int) -> list[events.Entry]:
    with database.reader() as db:
        return [e for e in events.history(db, referral_id) if e.kind == "moved_off_waitlist"]


def snapshot(database: Database) -> tuple[list[tuple], int]:
    """Every order as promotion would change it, and how many timeline events there are."""
    with database.reader() as db:
        rows = db.execute(select(Order.id, Order.status, Order.accepted_on, Order.start_date,
                                 Order.waitlist_reason).order_by(Order.id)).all()
        return [tuple(r) for r in rows], db.scalar(select(func.count(ReferralEvent.id))) or 0


# --- when it runs next (plain) ----------------------------------------------------------------------

def test_the_next_run_is_an_hour_on_or_the_next_midnight_where_a_program_delivers() -> None:
    noon = at(FRIDAY, 12)
    assert waitlist_job.next_run(noon, ["America/Los_Angeles"]) == noon + dt.timedelta(hours=1)
    assert waitlist_job.next_run(noon, []) == noon + dt.timedelta(hours=1)
    late = at(FRIDAY + dt.timedelta(days=2), 23, 30)  # Sunday night: the new week starts in 30 minutes
    assert waitlist_job.next_run(late, ["America/Los_Angeles"]) == at(NEXT_MONDAY, 0)
    # Two programs: New York's midnight comes first (21:00 in Los Angeles).
    evening = at(FRIDAY, 20, 30)
    assert waitlist_job.next_run(evening, ["America/Los_Angeles", "America/New_York"]) == \
        at(FRIDAY + dt.timedelta(days=1), 0, tz=ZoneInfo("America/New_York"))
    # The night clocks go back (1 Nov 2026 in Los Angeles): still that midnight, 24 h + 1 h away.
    before = at(dt.date(2026, 10, 31), 23, 15)
    assert waitlist_job.next_run(before, ["America/Los_Angeles"]) == at(dt.date(2026, 11, 1), 0)
    # An unknown zone is read as UTC, as everywhere else, rather than stopping the job.
    assert waitlist_job.next_run(at(FRIDAY, 23, 30, dt.UTC), ["Nowhere/Atlantis"]) == \
        at(FRIDAY + dt.timedelta(days=1), 0, tz=dt.UTC)


# --- through the runner -----------------------------------------------------------------------------

def test_a_referral_held_for_the_allocation_moves_up_at_the_start_of_the_next_week(
        database: Database, program: Program, settings: Settings) -> None:
    """Allocation 2 a week: the third referral of the week is held. On Sunday night the job moves
    nobody (same week) and queues itself for midnight; at midnight it moves the held referral onto
    the program with the new week's allocation, with the timeline event and no actor."""
    with database.writer() as db:
        agree(db, program.clinic1_id, 2)
        referred = [refer(db, program.clinic1_id, f"M{n}", day=FRIDAY) for n in range(3)]
        db.commit()
    held = referred[2]
    assert (held.order.status, held.order.waitlist_reason) == (OrderStatus.waitlisted, "allocation")

    clock = FakeClock(at(NEXT_MONDAY - dt.timedelta(days=1), 23, 30))
    runner = promote_runner(database, settings, clock)
    assert runner.run_once()
    with database.reader() as db:
        assert db.get(Order, held.order.id).status == OrderStatus.waitlisted
    [next_job] = queued(database)
    assert next_job.run_after == at(NEXT_MONDAY, 0)
    assert not runner.run_once()  # not due before midnight

    clock.advance(30 * 60)
    assert runner.run_once()
    with database.reader() as db:
        order = db.get(Order, held.order.id)
        assert (order.status, order.accepted_on, order.waitlist_reason) == \
            (OrderStatus.active, NEXT_MONDAY, None)
        assert db.get(Referral, held.referral.id).status == "active"
    [event] = moved_events(database, held.referral.id)
    assert event.actor_id is None and event.data.allocation is True
    assert event.text.startswith("The clinic's allocation for a new week: moved off the waitlist")
    assert job_row(database, next_job.id).state == JobState.done


def test_room_freed_when_a_one_off_delivery_has_passed_goes_to_the_first_waiting_patient(
        database: Database, program: Program, settings: Settings) -> None:
    """One box a delivery day, taken on Tuesday by a one-off order: two weekly referrals wait. Once
    that Tuesday has passed (no write frees anything), the job gives the box to the first of them."""
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 1
        body = referral_body(patient__mrn="ONCE") | {"order": {"cadence": "once"}}
        once = intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=program.clinic1_id,
                            actor_id=None, source=Source.api, clock=clock_on(MONDAY))
        first, second = (refer(db, program.clinic1_id, mrn) for mrn in ("W1", "W2"))
        db.commit()
    assert once.order.status == OrderStatus.active and once.order.start_date == MONDAY + dt.timedelta(days=1)
    assert [first.order.status, second.order.status] == [OrderStatus.waitlisted] * 2

    clock = FakeClock(at(MONDAY, 12))
    runner = promote_runner(database, settings, clock)
    assert runner.run_once()  # the one-off delivery is still ahead: nobody fits
    assert moved_events(database, first.referral.id) == []

    clock.at = at(MONDAY + dt.timedelta(days=2), 9)  # Wednesday: Tuesday's delivery is behind us
    assert runner.run_once()
    with database.reader() as db:
        assert db.get(Order, first.order.id).status == OrderStatus.active
        assert db.get(Order, second.order.id).status == OrderStatus.waitlisted
    [event] = moved_events(database, first.referral.id)
    assert (event.actor_id, event.data.first_delivery) == (None, MONDAY + dt.timedelta(days=8))
    assert moved_events(database, second.referral.id) == []


def test_running_the_job_twice_changes_nothing_more(
        database: Database, program: Program, settings: Settings) -> None:
    """Allocation 1: two referrals held on Friday; on Monday the first moves up, the second still
    waits for its clinic's allocation, and a second run moves nobody and writes nothing."""
    with database.writer() as db:
        agree(db, program.clinic1_id, 1)
        refer(db, program.clinic1_id, "M1", day=FRIDAY)
        held, later = (refer(db, program.clinic1_id, mrn, day=FRIDAY) for mrn in ("M2", "M3"))
        db.commit()
    runner = promote_runner(database, settings, FakeClock(at(NEXT_MONDAY, 9)))
    assert runner.run_once()
    once = snapshot(database)
    assert len(moved_events(database, held.referral.id)) == 1
    with database.reader() as db:
        assert db.get(Order, later.order.id).waitlist_reason == "allocation"

    with database.writer() as db:  # a second worker starts: the queued run is wanted now
        waitlist_job.queue(db)
        db.commit()
    assert runner.run_once()
    assert snapshot(database) == once
    assert len(moved_events(database, held.referral.id)) == 1


def test_the_job_keeps_exactly_one_run_queued(
        database: Database, program: Program, settings: Settings) -> None:
    clock = FakeClock(at(FRIDAY, 12))
    runner = promote_runner(database, settings, clock)
    worker.seed(runner)  # a second worker starting meanwhile adds nothing
    [first] = queued(database)
    assert first.run_after is None  # a worker that starts catches up at once

    assert runner.run_once()
    [second] = queued(database)
    assert second.id != first.id and second.run_after == at(FRIDAY, 13)
    assert job_row(database, first.id).state == JobState.done

    # A run that ends while another is queued (a worker started during it) joins that one.
    with database.writer() as db:
        waitlist_job.queue(db)
        db.commit()
    ctx = jobs.JobContext(job_id=0, kind=waitlist_job.KIND, payload={}, attempt=1, database=database,
                          settings=settings, clock=clock, stopping=threading.Event())
    waitlist_job.run(ctx)
    [still] = queued(database)
    assert still.id == second.id and still.run_after is None


def test_a_run_that_fails_every_attempt_still_leaves_the_next_one_queued(
        database: Database, program: Program, settings: Settings) -> None:
    """The chain of runs never ends: giving up queues the next run an hour on."""
    def broken(ctx: jobs.JobContext) -> None:
        raise RuntimeError("database away")

    real = waitlist_job.job_kind()
    clock = FakeClock(at(FRIDAY, 12))
    failing = jobs.Kind(waitlist_job.KIND, broken, backoff=lambda n: 0.0, on_give_up=real.on_give_up)
    runner = Runner(database, settings, [failing], clock=clock, poll_s=0)
    with database.writer() as db:
        job_id = jobs.enqueue(db, waitlist_job.KIND, dedupe_key=waitlist_job.DEDUPE_KEY, max_attempts=2).id
        db.commit()
    assert runner.run_once() and runner.run_once()
    assert job_row(database, job_id).state == JobState.failed
    [again] = queued(database)
    assert again.run_after == at(FRIDAY, 13)
