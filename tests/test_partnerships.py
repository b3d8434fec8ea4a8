"""Referral allocations in writing: intake holds each clinic to its weekly allocation, lending lets a
clinic use what others leave unused, the waitlist serves held referrals in a new week, and a clinic
far below its allocation for four weeks is flagged."""

from __future__ import annotations

import datetime as dt

import msgspec
from sqlalchemy import select

from delivery.models import AuditEvent, Order, OrderStatus, Organization, Referral, Source
from delivery.platform.audit import AuditContext
from delivery.program import partnerships, program_settings, waitlist
from delivery.referrals import intake
from delivery.referrals.schemas import ReferralIn
from delivery.timeline import events
from tests.builders import clock_on, referral_body

MONDAY = dt.date(2026, 11, 23)
ADMIN = AuditContext.for_command("test")


def agree(db, clinic_id: int, allocation: int, unit: str = "new_patients",
          starts_on: dt.date = MONDAY - dt.timedelta(weeks=8)) -> list[str]:
    clinic = db.get(Organization, clinic_id)
    return partnerships.save(db, ADMIN, clinic, partnerships.Terms(
        allocation=allocation, unit=unit, delivery_days=[1], days_to_first_box=7,
        food_bank_contact="Dana, (510) 555-0150", clinic_contact="Sam, (510) 555-0161",
        starts_on=starts_on), actor_id=None)


def refer(db, clinic_id: int, mrn: str, day: dt.date = MONDAY, boxes: int = 1) -> intake.IntakeResult:
    body = referral_body(patient__mrn=mrn, patient__given_name=f"P{mrn}") | {"order": {"boxes": boxes}}
    return intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=clinic_id, actor_id=None,
                        source=Source.api, clock=clock_on(day))


def lend(db, food_bank: Organization, on: bool) -> None:
    values = {c.name: getattr(food_bank, c.name) for c in program_settings.CHOICES}
    program_settings.update_choices(db, ADMIN, food_bank, values, require_upstairs=food_bank.require_upstairs,
                                    box_types=[b for b in food_bank.box_types or ["standard"]],
                                    lend_allocation=on)


def test_a_referral_past_the_weekly_allocation_waits_though_the_program_has_room(database, program) -> None:
    """Allocation 2 a week, capacity 100: the third referral is waitlisted, and says why on the
    referral, its timeline and the clinic's screen; another clinic's referral is not held behind it."""
    with database.writer() as db:
        agree(db, program.clinic1_id, 2)
        first, second, third = (refer(db, program.clinic1_id, f"M{n}") for n in range(3))
        other = refer(db, program.clinic2_id, "X1")
        db.commit()
        assert [r.order.status for r in (first, second, third, other)] == \
            [OrderStatus.active, OrderStatus.active, OrderStatus.waitlisted, OrderStatus.active]
        assert third.order.waitlist_reason == "allocation"
        assert "allocation this week is used (2 of 2 new patients placed this week)" in third.referral.reason
        assert "program has room" in third.referral.reason
        waitlisted = [e for e in events.history(db, third.referral.id) if e.kind == "waitlisted"]
        held = waitlisted[0].as_data()["allocation_used"]
        assert held == {"unit": "new_patients", "allocation": 2, "used": 2, "lending": False}
        assert "the clinic's allocation this week is used (2 of 2 new patients)" in waitlisted[0].text
        food_bank = db.get(Organization, program.food_bank_id)
        wait = waitlist.waits(db, food_bank, MONDAY)[0]
        assert not wait.moves_up_now and "allocation this week is used" in wait.reason()


def test_lending_lets_a_clinic_use_another_clinics_unused_allocation(database, program) -> None:
    """With lending on, clinic 1's third referral is placed on clinic 2's unused allocation; once
    that is spent too, the next one waits and says nothing was left to lend."""
    with database.writer() as db:
        agree(db, program.clinic1_id, 2)
        agree(db, program.clinic2_id, 1)
        lend(db, db.get(Organization, program.food_bank_id), True)
        results = [refer(db, program.clinic1_id, f"M{n}") for n in range(4)]
        db.commit()
        assert [r.order.status for r in results] == [OrderStatus.active] * 3 + [OrderStatus.waitlisted]
        assert "nothing is left to lend" in results[3].referral.reason
        rows = db.scalars(select(AuditEvent.detail).where(AuditEvent.resource == "program_settings")).all()
        assert "lend clinics' unused allocation: no → yes" in rows


def test_a_boxes_allocation_counts_the_boxes_of_each_order(database, program) -> None:
    """3 boxes a week: a 2-box order then a 1-box order fit; the next 1-box order waits."""
    with database.writer() as db:
        agree(db, program.clinic1_id, 3, unit="boxes")
        results = [refer(db, program.clinic1_id, "B1", boxes=2), refer(db, program.clinic1_id, "B2"),
                   refer(db, program.clinic1_id, "B3")]
        assert [r.order.status for r in results] == [OrderStatus.active] * 2 + [OrderStatus.waitlisted]


def test_an_agreement_not_started_yet_holds_nobody(database, program) -> None:
    with database.writer() as db:
        agree(db, program.clinic1_id, 0, starts_on=MONDAY + dt.timedelta(days=7))
        assert refer(db, program.clinic1_id, "M1").order.status == OrderStatus.active


def test_the_waitlist_serves_a_held_referral_in_the_next_week(database, program) -> None:
    """Held on Friday; served when the coordinator serves the waitlist the next Monday, which uses
    the new week's allocation (the week is the program's, Monday to Sunday)."""
    friday = MONDAY + dt.timedelta(days=4)
    with database.writer() as db:
        agree(db, program.clinic1_id, 1)
        refer(db, program.clinic1_id, "M1", day=friday)
        held = refer(db, program.clinic1_id, "M2", day=friday)
        food_bank = db.get(Organization, program.food_bank_id)
        assert waitlist.promote(db, food_bank, friday) == []  # still this week: nothing moves
        next_monday = MONDAY + dt.timedelta(days=7)
        assert [o.id for o in waitlist.promote(db, food_bank, next_monday)] == [held.order.id]
        assert (held.order.accepted_on, held.order.waitlist_reason) == (next_monday, None)
        left = partnerships.allowance(db, food_bank, program.clinic1_id, next_monday)
        assert (left.used, left.remaining) == (1, 0)
        assert db.get(Referral, held.referral.id).status == "active"


def test_a_new_weeks_referral_serves_the_clinics_held_ones_first(database, program) -> None:
    """Allocation 1: held on Friday; the clinic's next referral on Monday places the held one first
    (the new week's allocation) and itself waits, for the allocation, not for room."""
    friday, monday = MONDAY + dt.timedelta(days=4), MONDAY + dt.timedelta(days=7)
    with database.writer() as db:
        agree(db, program.clinic1_id, 1)
        refer(db, program.clinic1_id, "M1", day=friday)
        held = refer(db, program.clinic1_id, "M2", day=friday)
        later = refer(db, program.clinic1_id, "M3", day=monday)
        assert (held.order.status, held.order.accepted_on) == (OrderStatus.active, monday)
        assert (later.order.status, later.order.waitlist_reason) == (OrderStatus.waitlisted, "allocation")
        moved = [e for e in events.history(db, held.referral.id) if e.kind == "moved_off_waitlist"]
        assert moved[0].text.startswith("The clinic's allocation for a new week: moved off the waitlist")


def test_a_clinic_far_below_its_allocation_for_four_weeks_is_flagged(database, program) -> None:
    """Clinic 1 (10 a week) referred 1 a week for four weeks: flagged; clinic 2 (2 a week, 1 a week)
    referred at half its allocation: not."""
    today = MONDAY + dt.timedelta(weeks=4, days=2)
    with database.writer() as db:
        agree(db, program.clinic1_id, 10)
        agree(db, program.clinic2_id, 2)
        for week in range(4):
            day = MONDAY + dt.timedelta(weeks=week, days=1)
            refer(db, program.clinic1_id, f"A{week}", day=day)
            refer(db, program.clinic2_id, f"B{week}", day=day)
        quiet = partnerships.quiet_clinics(db, db.get(Organization, program.food_bank_id), today)
        found = [(q.clinic.id, [w.referred for w in q.weeks]) for q in quiet]
        assert found == [(program.clinic1_id, [1] * 4)]


def test_each_change_to_the_agreement_is_audited_with_before_and_after(database, program) -> None:
    with database.writer() as db:
        agree(db, program.clinic1_id, 2)
        changes = agree(db, program.clinic1_id, 3)
        db.commit()
        assert changes == ["allocation per week 2 → 3"]
        history = partnerships.history(db, program.clinic1_id)
        assert history[0].what == "allocation per week 2 → 3"
        assert history[-1].what.startswith("agreement written: 2 new patients per week, delivered Tuesday")
        assert db.scalar(select(Order.id)) is None
