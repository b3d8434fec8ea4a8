"""One write path per fact: a shift, a patient's address and point, a referral's closing each have
one function, and every channel that changes them goes through it (with its checks and events)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from delivery.models import (
    GeocodeStatus,
    Holiday,
    Order,
    OrderStatus,
    Organization,
    Plan,
    ReferralStatus,
    ReviewItem,
    ReviewKind,
    Shift,
)
from delivery.plans import day as days
from delivery.plans import edits as plan_edits
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.program import orders, roster
from delivery.referrals import reviews
from delivery.referrals.schemas import AddressIn
from tests.builders import Program
from tests.coordinator_builders import refer, timeline
from tests.day_builders import DAY, add_driver, make_day

TODAY = dt.date(2030, 3, 1)


# --- shifts: a driver added to a day gets a shift through the roster's checks ----------------------


@pytest.fixture
def day_without_driver3(database: Database, program: Program) -> tuple[int, int]:
    with database.writer() as db:
        make_day(db, program, stops=2, drivers=1)
        newcomer = add_driver(db, program, 3, date=None)  # offered no shift that day
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        db.commit()
        return plan.id, newcomer.id


def test_adding_a_driver_to_a_past_day_is_refused_like_any_past_shift(
        database: Database, settings: Settings, day_without_driver3: tuple[int, int]) -> None:
    plan_id, driver_id = day_without_driver3
    with database.writer() as db:
        version = db.get(Plan, plan_id).version
        with pytest.raises(roster.RosterError, match="in the past") as refused:
            plan_edits.add_driver(db, plan_id, version, driver_id, settings, today=DAY + dt.timedelta(days=1))
        assert refused.value.field == "date"
        db.rollback()
        assert db.scalar(select(func.count(Shift.id)).where(Shift.driver_id == driver_id)) == 0


def test_adding_a_driver_on_a_day_since_closed_is_refused(database: Database, settings: Settings,
                                                         program: Program,
                                                         day_without_driver3: tuple[int, int]) -> None:
    plan_id, driver_id = day_without_driver3
    with database.writer() as db:
        db.add(Holiday(food_bank_id=program.food_bank_id, date=DAY, name="Storm"))
        db.flush()
        version = db.get(Plan, plan_id).version
        with pytest.raises(roster.RosterError, match=r"closed on .*Storm"):
            plan_edits.add_driver(db, plan_id, version, driver_id, settings, today=TODAY)


def test_adding_a_driver_gives_them_a_roster_shift_in_the_depots_hours(
        database: Database, settings: Settings, day_without_driver3: tuple[int, int]) -> None:
    plan_id, driver_id = day_without_driver3
    with database.writer() as db:
        plan_edits.add_driver(db, plan_id, db.get(Plan, plan_id).version, driver_id, settings, today=TODAY)
        db.commit()
        shift = db.scalar(select(Shift).where(Shift.driver_id == driver_id))
        assert (shift.date, shift.start, shift.end, shift.offered_by) == (
            DAY, dt.time(9), dt.time(17), "coordinator")


# --- a patient's address and point ---------------------------------------------------------------------


def test_a_resent_referral_with_a_new_address_tells_the_timeline_before_and_after(
        database: Database, program: Program) -> None:
    with database.writer() as db:
        first = refer(db, program, "M1", today=TODAY)
        db.commit()
        refer(db, program, "M1", today=TODAY, point=False,
              address={"line1": "55 Elm St", "city": "Oakland", "state": "CA", "postal_code": "94601"})
        db.commit()
        patient = first.referral.patient
        assert patient.address_line1 == "55 Elm St"
        assert patient.geocode_status == GeocodeStatus.pending and patient.lat is None  # located again
        changes = [text for kind, text in timeline(db, first.referral.id) if kind == "address_changed"]
        assert changes == ["Address changed from 1234 98th Ave 3B, Oakland, CA 94603 to "
                           "55 Elm St, Oakland, CA 94601; it is being located on the map again."]


def test_only_the_unit_changing_keeps_the_point(database: Database, program: Program) -> None:
    with database.writer() as db:
        first = refer(db, program, "M2", today=TODAY, point=False)
        patient = first.referral.patient
        reviews.correct_address(db, patient, AddressIn(line1="1234 98th Ave", unit="3B", city="Oakland",
                                                       state="CA", postal_code="94603", lat=37.75,
                                                       lon=-122.17), actor_id=None)  # type: ignore[arg-type]
        unit_only = AddressIn(line1="1234 98th Ave", unit="4C", city="Oakland", state="CA",
                              postal_code="94603")
        said = reviews.correct_address(db, patient, unit_only, actor_id=None)  # type: ignore[arg-type]
        assert said == "the point on the map stays (only the unit changed)."
        assert (patient.lat, patient.lon, patient.unit) == (37.75, -122.17, "4C")


def test_accepting_a_clinics_address_is_an_address_change_on_the_timeline(database: Database,
                                                                        program: Program) -> None:
    with database.writer() as db:
        first = refer(db, program, "M3", today=TODAY)
        patient = first.referral.patient
        reviews.set_point(db, _geocode_item(db, program, patient.id), 37.7501, -122.1701,
                          actor_id=None)  # type: ignore[arg-type]
        refer(db, program, "M3", today=TODAY, point=False,
              address={"line1": "55 Elm St", "city": "Oakland", "state": "CA", "postal_code": "94601"})
        item = db.scalar(select(ReviewItem).where(ReviewItem.kind == ReviewKind.address_change))
        reviews.accept_address_change(db, item, actor_id=None)  # type: ignore[arg-type]
        db.commit()
        kinds = [(kind, text) for kind, text in timeline(db, first.referral.id) if kind == "address_changed"]
        assert kinds == [
            ("address_changed", "Point on the map for 1234 98th Ave 3B, Oakland, CA 94603: placed on the "
                                "map by hand."),
            ("address_changed", "Address changed from 1234 98th Ave 3B, Oakland, CA 94603 to "
                                "55 Elm St, Oakland, CA 94601; it is being located on the map again.")]
        assert patient.address_corrected_at is None and patient.geocode_status == GeocodeStatus.pending


def _geocode_item(db, program: Program, patient_id: int) -> ReviewItem:  # type: ignore[no-untyped-def]
    item = ReviewItem(kind=ReviewKind.geocode_failed, patient_id=patient_id,
                      food_bank_id=program.food_bank_id, message="not found", details={})
    db.add(item)
    db.flush()
    return item


# --- closing a referral ----------------------------------------------------------------------------


def test_closing_a_referral_ends_its_order_and_moves_the_waitlist(database: Database,
                                                                  program: Program) -> None:
    with database.writer() as db:
        db.get(Organization, program.food_bank_id).boxes_per_delivery_day = 1
        served = refer(db, program, "K1", today=TODAY)
        waiting = refer(db, program, "K2", today=TODAY)
        assert waiting.referral.status == ReferralStatus.waitlisted
        moved = orders.close_referral(db, served.referral, "  moved away ", None, TODAY)
        db.commit()
        assert [o.id for o in moved] == [waiting.order.id]
        assert served.referral.status == ReferralStatus.closed
        assert db.get(Order, served.order.id).status == OrderStatus.ended
        assert ("ended", "Deliveries ended. Reason: moved away") in timeline(db, served.referral.id)
        with pytest.raises(orders.OrderError, match="already closed"):
            orders.close_referral(db, served.referral, "again", None, TODAY)


def test_a_duplicate_without_an_order_is_closed_by_the_same_function(database: Database,
                                                                    program: Program) -> None:
    with database.writer() as db:
        older = refer(db, program, "D1", today=TODAY, given="Ana")
        newer = refer(db, program, "D2", today=TODAY, given="Ana")
        db.delete(newer.order)  # e.g. a pickup referral: no order to end
        db.flush()
        item = db.scalar(select(ReviewItem).where(ReviewItem.kind == ReviewKind.possible_duplicate))
        reviews.same_person(db, item, "same phone and address", actor_id=None, today=TODAY)  # type: ignore[arg-type]
        db.commit()
        assert newer.referral.status == ReferralStatus.closed
        assert older.referral.status != ReferralStatus.closed
        assert ("ended", f"Referral closed. Reason: Same person as referral #{older.referral.id}: "
                                   "same phone and address") in timeline(db, newer.referral.id)
