"""confirm_stop: replay, key reuse, write-once outcome, clock flags, timeline event (R7.3–R7.5)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from delivery.field import confirmations, followup
from delivery.field.confirmations import ConfirmKind, confirm_stop
from delivery.models import (
    Confirmation,
    Driver,
    Job,
    Organization,
    OutboxMessage,
    ReferralEvent,
    Stop,
    utcnow,
)
from delivery.plans import day as plan_day
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.timeline import events as timeline
from tests.builders import Program
from tests.coordinator_builders import refer
from tests.job_builders import run_due_jobs
from tests.plan_builders import make_day

DAY = dt.date(2026, 12, 1)  # a Tuesday


def confirm(db, stop: Stop, user_id: int, outcome: str, key: str, note: str | None = None,  # type: ignore[no-untyped-def]
            occurred_at: dt.datetime | None = None) -> confirmations.ConfirmResult:
    at = occurred_at or dt.datetime(2026, 12, 1, 18, 30, tzinfo=dt.UTC)
    return confirm_stop(db, stop=stop, user_id=user_id, outcome=outcome, note=note, occurred_at=at,
                        idempotency_key=key)


def test_replay_conflict_and_write_once(program: Program, database: Database) -> None:
    """Replay, key reuse and a conflicting outcome (parts of R7.3 and R7.4; the in-flight 409, the
    concurrent run, amendments and the state machine those requirements ask for are not shown here)."""
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        stop = db.get(Stop, day.stop_ids[0][0])
        assert stop is not None
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        db.commit()

        first = confirm(db, stop, user_id, "delivered", "key-1")
        db.commit()
        assert (first.kind, first.status_code, stop.status, stop.outcome) == \
            (ConfirmKind.created, 201, "delivered", "delivered")

        replay = confirm(db, stop, user_id, "delivered", "key-1")
        assert (replay.kind, replay.status_code, replay.replayed) == (ConfirmKind.replay, 201, True)
        assert replay.confirmation is not None and first.confirmation is not None
        assert replay.confirmation.id == first.confirmation.id

        reused = confirm(db, stop, user_id, "no_answer", "key-1")
        assert (reused.kind, reused.status_code) == (ConfirmKind.key_reused, 422)

        conflict = confirm(db, stop, user_id, "no_answer", "key-2")
        assert (conflict.kind, conflict.status_code, conflict.stored_outcome) == \
            (ConfirmKind.outcome_conflict, 409, "delivered")

        same = confirm(db, stop, user_id, "delivered", "key-3")
        assert (same.kind, same.status_code) == (ConfirmKind.same_outcome, 200)
        db.commit()

        assert db.scalar(select(func.count(Confirmation.id))) == 1
        refreshed = db.get(Stop, stop.id)
        assert refreshed is not None and (refreshed.status, refreshed.outcome) == ("delivered", "delivered")


def test_a_stop_read_before_the_writer_is_checked_again_under_its_lock(program: Program,
                                                                    database: Database) -> None:
    """The API decides access on a reader, then writes: a stop moved to another route in between
    is refused, and the retry of a stored confirmation is answered from a reader alone."""
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        db.commit()
    with database.reader() as reading:
        seen, kept = reading.get(Stop, day.stop_ids[0][0]), reading.get(Stop, day.stop_ids[0][1])
    with database.writer() as db:
        moved = db.get(Stop, seen.id)  # type: ignore[union-attr]
        moved.route_id = day.route_ids[1]  # type: ignore[union-attr]
        db.commit()
        with pytest.raises(confirmations.ConfirmError, match="moved to another route"):
            confirm(db, seen, user_id, "delivered", "key-moved")  # type: ignore[arg-type]
        db.rollback()
        assert confirm(db, kept, user_id, "delivered", "key-kept").kind is ConfirmKind.created  # type: ignore[arg-type]
        db.commit()
    at = dt.datetime(2026, 12, 1, 18, 30, tzinfo=dt.UTC)
    with database.reader() as reading:
        asked = (("delivered", "key-kept"), ("no_answer", "key-kept"), ("delivered", "new"))
        answers = [confirmations.stored_answer(reading, stop=kept, user_id=user_id, outcome=outcome,  # type: ignore[arg-type]
                                               note=None, occurred_at=at, idempotency_key=key)
                   for outcome, key in asked]
    assert [a and a.kind for a in answers] == [ConfirmKind.replay, ConfirmKind.key_reused, None]


def test_the_key_is_scoped_per_user(program: Program, database: Database) -> None:
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        users = [db.get(Driver, d).user_id for d in day.driver_ids]  # type: ignore[union-attr]
        a_stop, b_stop = db.get(Stop, day.stop_ids[0][0]), db.get(Stop, day.stop_ids[1][0])
        a = confirm(db, a_stop, users[0], "delivered", "same-key")  # type: ignore[arg-type]
        b = confirm(db, b_stop, users[1], "refused", "same-key")  # type: ignore[arg-type]
        db.commit()
        assert (a.kind, b.kind) == (ConfirmKind.created, ConfirmKind.created)
        assert b.confirmation is not None and b.confirmation.outcome == "refused"


def test_timeline_events_in_the_same_transaction(program: Program, database: Database,
                                                  settings: Settings) -> None:
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        delivered, failed = (db.get(Stop, sid) for sid in day.stop_ids[0][:2])
        confirm(db, delivered, user_id, "delivered", "k1")  # type: ignore[arg-type]
        confirm(db, failed, user_id, "no_answer", "k2")  # type: ignore[arg-type]
        db.commit()
        told = {rid: timeline.history(db, rid) for rid in day.referral_ids[0][:2]}
        assert (told[day.referral_ids[0][0]][-1].kind, told[day.referral_ids[0][0]][-1].text) == (
            "delivered", "Delivered 2 boxes on Tue 1 Dec")
        lost = told[day.referral_ids[0][1]][-1]
        assert (lost.kind, lost.text) == ("attempt_failed", "Delivery attempt failed: no answer")
        assert lost.data.stop_id == failed.id  # type: ignore[attr-defined]
        assert db.get(Stop, failed.id).status == "failed"  # type: ignore[union-attr]
        # the follow-up is queued with the confirmation, for the worker
        queued = db.scalars(select(Job).where(Job.kind == followup.KIND)).one()
        assert queued.payload == {"stop_id": failed.id, "actor_id": user_id}
    assert run_due_jobs(database, settings, [followup.job_kind()]) == 1
    with database.reader() as db:
        assert timeline.history(db, day.referral_ids[0][1])[-1].kind == "rescheduled"

    with database.writer() as db:  # rolled back: neither the confirmation, the event nor its outbox row
        stop = db.get(Stop, day.stop_ids[0][2])
        confirm(db, stop, user_id, "delivered", "k3")  # type: ignore[arg-type]
        db.rollback()
    with database.reader() as db:
        assert db.scalar(select(func.count(Confirmation.id))) == 2
        # the route's stops out for delivery (its first confirmation), delivered, failed, rescheduled
        told = len(day.stop_ids[0]) + 3
        assert db.scalar(select(func.count(ReferralEvent.id))) == told
        assert db.scalar(select(func.count(OutboxMessage.id))) == told


@pytest.mark.req("R7.5")
def test_device_clock_is_kept_and_flagged(program: Program, database: Database) -> None:
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        now = utcnow()
        ahead = confirm(db, db.get(Stop, day.stop_ids[0][0]), user_id, "delivered", "a",  # type: ignore[arg-type]
                        occurred_at=now + dt.timedelta(hours=25))
        behind = confirm(db, db.get(Stop, day.stop_ids[0][1]), user_id, "delivered", "b",  # type: ignore[arg-type]
                         occurred_at=now - dt.timedelta(days=8))
        fine = confirm(db, db.get(Stop, day.stop_ids[0][2]), user_id, "delivered", "c",  # type: ignore[arg-type]
                       occurred_at=now - dt.timedelta(minutes=5))
        db.commit()
        flags = [confirmations.clock_flag(r.confirmation.occurred_at, r.confirmation.received_at)  # type: ignore[union-attr]
                 for r in (ahead, behind, fine)]
        assert flags[0] is not None and "ahead" in flags[0]
        assert flags[1] is not None and "past" in flags[1]
        assert flags[2] is None


def test_bad_requests_are_refused(program: Program, database: Database) -> None:
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        stop = db.get(Stop, day.stop_ids[0][0])
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        with pytest.raises(confirmations.ConfirmError, match="Unknown outcome"):
            confirm(db, stop, user_id, "amended", "k")  # type: ignore[arg-type]
        with pytest.raises(confirmations.ConfirmError, match="idempotency key"):
            confirm(db, stop, user_id, "delivered", "")  # type: ignore[arg-type]


def test_the_follow_up_runs_once_per_failed_attempt(program: Program, database: Database,
                                                    settings: Settings) -> None:
    """A follow-up run again (a worker killed after committing it) moves nothing twice; one for an
    attempt the driver undid before the worker came does nothing."""
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        failed, undone = (db.get(Stop, sid) for sid in day.stop_ids[0][:2])
        confirm(db, failed, user_id, "no_answer", "k1")  # type: ignore[arg-type]
        mistake = confirm(db, undone, user_id, "refused", "k2").confirmation  # type: ignore[arg-type]
        confirmations.undo(db, mistake, user_id=user_id)  # type: ignore[arg-type]
        db.commit()
    assert run_due_jobs(database, settings, [followup.job_kind()]) == 2
    with database.writer() as db:
        followup.after_attempt(db, db.get(Stop, failed.id), actor_id=user_id)  # type: ignore[arg-type]
        db.commit()
        retries = db.scalars(select(Stop).where(Stop.carried_from_id.is_not(None))).all()
        assert [r.carried_from_id for r in retries] == [failed.id]
        kinds = [e.kind for e in timeline.history(db, day.referral_ids[0][0])]
        assert kinds.count("rescheduled") == 1
        assert "rescheduled" not in [e.kind for e in timeline.history(db, day.referral_ids[0][1])]


def test_a_retry_on_a_day_already_opened_touches_only_its_own_stop(program: Program, database: Database,
                                                                  settings: Settings) -> None:
    """Next week is open already: the follow-up marks the order's stop there as the retry and leaves
    the rest of that day as the coordinator last saw it (no whole-day refresh under the writer)."""
    next_week = DAY + dt.timedelta(weeks=1)
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        food_bank = db.get(Organization, program.food_bank_id)
        opened = plan_day.prepare(db, food_bank, next_week)  # type: ignore[arg-type]
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        failed = db.get(Stop, day.stop_ids[0][0])
        confirm(db, failed, user_id, "no_answer", "k1")  # type: ignore[arg-type]
        db.commit()
        before = {s.id: s.order_id for s in db.scalars(select(Stop).where(Stop.plan_id == opened.id))}
        late = refer(db, program, "LATE", today=DAY)  # due next week too, but nobody refreshed the day
        db.commit()
    assert late.order is not None and late.order.status == "active"
    assert run_due_jobs(database, settings, [followup.job_kind()]) == 1
    with database.reader() as db:
        after = db.scalars(select(Stop).where(Stop.plan_id == opened.id)).all()
        assert {s.id: s.order_id for s in after} == before
        assert [s.order_id for s in after if s.carried_from_id == failed.id] == [failed.order_id]  # type: ignore[union-attr]
