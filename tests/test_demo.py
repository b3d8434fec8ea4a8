"""The demo program that scripts/run loads: what it holds, and that loading it twice changes nothing."""

from __future__ import annotations

import datetime as dt
import stat
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery import demo, demo_history
from delivery.models import (
    Base,
    BenefitsCase,
    Confirmation,
    Depot,
    Driver,
    Membership,
    Need,
    Order,
    OrderStatus,
    Organization,
    OrganizationKind,
    Outcome,
    Patient,
    Plan,
    PlanStatus,
    Referral,
    ReferralEvent,
    Role,
    Shift,
    Source,
    Stop,
    TextKind,
    TextMessage,
    User,
)
from delivery.models.timeline import EventKind
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.program.scheduling import is_due
from delivery.program.waitlist import recurrence
from delivery.reports import funder
from tests.builders import clock_on

TODAY = dt.date(2026, 3, 4)  # a Wednesday: the next delivery day (Tuesday) is six days away
NEXT_TUESDAY = dt.date(2026, 3, 10)
EAST_OAKLAND = {"lat": (37.73, 37.79), "lon": (-122.23, -122.15)}


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    return tmp_path / "var" / "demo-password"


def on_today(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, clock=clock_on(TODAY, hour=9))


@pytest.fixture
def loaded(database: Database, settings: Settings, password_file: Path) -> str:
    """The demo as its first delivery week looks (no past days): the shape of the program."""
    return demo.load(database, on_today(settings), password_file=password_file, history_weeks=0)


def _row_counts(db: Session) -> dict[str, int]:
    return {t.name: db.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}


def _in_east_oakland(lat: float | None, lon: float | None) -> bool:
    return (lat is not None and lon is not None and EAST_OAKLAND["lat"][0] <= lat <= EAST_OAKLAND["lat"][1]
            and EAST_OAKLAND["lon"][0] <= lon <= EAST_OAKLAND["lon"][1])


def test_demo_referrals_file_is_valid() -> None:
    """Every row of demo_patients.csv is a valid referral with its own point in East Oakland."""
    referrals = demo.demo_referrals()
    assert 55 <= len(referrals) <= 65
    assert len({(r.clinic, r.body.patient.mrn) for r in referrals}) == len(referrals)
    assert {r.clinic for r in referrals} == set(demo.CLINICS)
    assert all(_in_east_oakland(r.body.patient.address.lat, r.body.patient.address.lon) for r in referrals)
    assert {r.body.patient.language for r in referrals} >= {"en", "es", "yue", "vi"}


def test_demo_program_organizations_and_people(database: Database, settings: Settings, loaded: str,
                                               password_file: Path) -> None:
    """A food bank with two pick-up depots, two clinics, and every demo user with their role."""
    with database.reader() as db:
        food_bank = db.scalar(select(Organization).where(Organization.name == demo.FOOD_BANK))
        assert food_bank is not None
        assert food_bank.kind == OrganizationKind.food_bank
        assert food_bank.delivery_weekday == NEXT_TUESDAY.weekday()
        clinics = db.scalars(select(Organization).where(Organization.food_bank_id == food_bank.id)).all()
        assert sorted(c.name for c in clinics) == sorted(demo.CLINICS)
        assert all(c.kind == OrganizationKind.clinic for c in clinics)
        depots = db.scalars(select(Depot).where(Depot.organization_id == food_bank.id)).all()
        assert len(depots) == 2
        assert all(d.pickup and _in_east_oakland(d.lat, d.lon) for d in depots)

        roles = Counter(db.scalars(select(Membership.role)))
        assert roles == {Role.admin: 1, Role.coordinator: 1, Role.clinic_staff: 2, Role.benefits: 1,
                         Role.driver: 6}
        by_email = {u.email: u for u in db.scalars(select(User))}
        expected = {"admin@demo.test", "coordinator@demo.test", "clinic1@demo.test", "clinic2@demo.test",
                    "benefits@demo.test", *(f"driver{n}@demo.test" for n in range(1, 7))}
        assert set(by_email) == expected
        clinic_of = {c.name: c.id for c in clinics}
        assert [m.organization_id for m in by_email["clinic1@demo.test"].memberships] == [
            clinic_of[demo.CLINICS[0]]]
        assert [m.organization_id for m in by_email["clinic2@demo.test"].memberships] == [
            clinic_of[demo.CLINICS[1]]]

    password = password_file.read_text().strip()
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert auth.password_problems(password) == []
    assert auth.verify_password(by_email["clinic1@demo.test"].password_hash, password, settings)
    assert auth.verify_password(by_email["driver6@demo.test"].password_hash, password, settings)
    assert password in loaded
    assert all(email in loaded for email in expected)


def test_demo_drivers_and_shifts(database: Database, loaded: str) -> None:
    """Six drivers with varied cars and languages, shifts of 3-4 hours on the next two delivery days."""
    with database.reader() as db:
        drivers = db.scalars(select(Driver)).all()
        assert len(drivers) == 6
        assert {d.vehicle for d in drivers} == {"car", "van"}
        assert all(8 <= d.capacity_boxes <= 30 for d in drivers)
        assert sum(not d.carries_upstairs for d in drivers) == 1
        assert {lang for d in drivers for lang in d.languages} >= {"en", "es", "yue", "vi"}
        homes = {d.id for d in drivers if _in_east_oakland(d.home_lat, d.home_lon)}
        assert homes

        shifts = db.scalars(select(Shift)).all()
        assert {s.date for s in shifts} == {NEXT_TUESDAY, NEXT_TUESDAY + dt.timedelta(weeks=1)}
        assert sum(s.date == NEXT_TUESDAY for s in shifts) == 6
        for s in shifts:
            hours = (dt.datetime.combine(s.date, s.end) - dt.datetime.combine(s.date, s.start)).seconds / 3600
            assert 3 <= hours <= 4
            assert s.start_depot_id is not None
            assert s.end_depot_id is not None or s.driver_id in homes  # ends at home only with a home


def test_demo_patients_and_referrals(database: Database, loaded: str) -> None:
    """About 60 patients with points, all referred through intake with outcomes and timelines."""
    with database.reader() as db:
        patients = db.scalars(select(Patient)).all()
        assert 55 <= len(patients) <= 65
        assert all(_in_east_oakland(p.lat, p.lon) and p.geocode_status == "given" for p in patients)
        assert sum(p.floor > 0 and not p.elevator for p in patients) >= 3
        assert any(p.do_not_contact for p in patients)

        referrals = db.scalars(select(Referral)).all()
        assert len(referrals) == len(patients)
        assert {r.source for r in referrals} == {Source.demo}
        assert all(r.referred_by_id is not None for r in referrals)
        outcomes = Counter(r.outcome for r in referrals)
        assert set(outcomes) == set(Outcome)
        assert outcomes[Outcome.waitlisted] >= 3
        assert outcomes[Outcome.home_delivery] > len(referrals) * 0.7
        events = Counter(db.scalars(select(ReferralEvent.referral_id)))
        assert all(events[r.id] >= 2 for r in referrals)
        assert all(r.created_at.date() < TODAY for r in referrals)


def test_demo_needs_and_benefits_are_on_their_worklists(database: Database, loaded: str) -> None:
    """Patients of both clinics named other needs (a few already referred on or resolved), and the
    benefits staff have contacted, helped apply and enrolled some of the patients flagged."""
    with database.reader() as db:
        needs = db.scalars(select(Need)).all()
        assert len({n.clinic_id for n in needs}) == 2
        assert Counter(n.status for n in needs) == {"open": len(needs) - 4, "resolved": 2, "referred_on": 2}
        cases = db.scalars(select(BenefitsCase)).all()
        assert len(cases) >= 4
        assert {"flagged", "contacted", "applied", "enrolled"} <= {c.step for c in cases}
        assert all(c.patient.do_not_contact is False for c in cases)
        assert all(n.raised_at.date() < TODAY for n in needs)


def test_demo_orders_fill_the_next_delivery_day(database: Database, loaded: str) -> None:
    """A week of orders: about 50 stops due on the next delivery day, within the program's capacity."""
    with database.reader() as db:
        food_bank = db.scalar(select(Organization).where(Organization.name == demo.FOOD_BANK))
        assert food_bank is not None
        orders = db.scalars(select(Order)).all()
        due = [o for o in orders if o.status == OrderStatus.active and is_due(recurrence(o), NEXT_TUESDAY)]
        assert 45 <= len(due) <= 55
        assert sum(o.boxes for o in due) <= (food_bank.boxes_per_delivery_day or 0)
        assert sum(o.status == OrderStatus.waitlisted for o in orders) >= 3
        assert any(o.window_start is not None for o in due)
        assert any(o.cadence == "biweekly" for o in due)
        assert len({o.box_type for o in due}) >= 3
    assert f"{len(due)} stops" in loaded


def test_second_load_changes_nothing(database: Database, settings: Settings, password_file: Path,
                                     loaded: str) -> None:
    """Loading again adds no row, keeps the password and says the demo was already there."""
    password = password_file.read_text()
    with database.reader() as db:
        before = _row_counts(db)
    again = demo.load(database, on_today(settings), password_file=password_file, history_weeks=0)
    with database.reader() as db:
        assert _row_counts(db) == before
    assert "already loaded" in again
    assert password_file.read_text() == password
    assert password.strip() in again


def test_lost_password_file_is_reported_not_replaced(database: Database, settings: Settings,
                                                     password_file: Path, loaded: str) -> None:
    """Without var/demo-password a second load says how to start over instead of inventing a password."""
    password_file.unlink()
    again = demo.load(database, on_today(settings), password_file=password_file, history_weeks=0)
    assert "already loaded" in again
    assert "not the one in" in again
    assert not password_file.exists()


def test_demo_password_is_made_once(tmp_path: Path) -> None:
    """The first call makes a private, uncommon password; later calls read the same one."""
    path = tmp_path / "sub" / "demo-password"
    first = demo.demo_password(path)
    assert demo.demo_password(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 16
    assert auth.password_problems(first) == []


def test_sign_in_text_uses_a_loopback_address() -> None:
    """The printed link uses 127.0.0.1 (the __Host- cookie works there on http) and the chosen port."""
    text = demo.sign_in_text(Settings(host="0.0.0.0", port=8765), "pw-example-123")
    assert "http://127.0.0.1:8765/login" in text
    assert "pw-example-123" in text
    assert "clinic2@demo.test" in text
    assert "token create --user clinic1@demo.test" in text


def test_demo_history_looks_like_a_running_program(database: Database, settings: Settings,
                                                   password_file: Path) -> None:
    """`delivery demo load` plays eight past delivery days through the real services: published
    routes, confirmations with a mix of outcomes, failed attempts rescheduled, receipts; every event
    dated in the past (none stamped with the wall clock), and the funder report of the last four
    weeks counts what happened."""
    today = on_today(settings)
    said = demo.load(database, today, password_file=password_file)
    past = demo_history.past_delivery_days(demo.DELIVERY_WEEKDAY, TODAY, demo.HISTORY_WEEKS)
    assert past[-1] == dt.date(2026, 3, 3) and len(past) == 8 and past[0] == dt.date(2026, 1, 13)
    assert "8 past delivery days since 13 Jan" in said
    with database.reader() as db:
        plans = db.scalars(select(Plan).where(Plan.date < TODAY).order_by(Plan.date)).all()
        assert [p.date for p in plans] == past
        assert all(p.status == PlanStatus.published for p in plans)
        stops_per_day = [db.scalar(select(func.count()).select_from(Stop).where(
            Stop.plan_id == p.id, Stop.route_id.is_not(None))) for p in plans]
        assert stops_per_day[0] < stops_per_day[-1]  # the program grew week by week
        confirmed = Counter(db.scalars(select(Confirmation.outcome)))
        assert sum(confirmed.values()) == sum(stops_per_day)  # every routed stop was driven
        assert confirmed["delivered"] > 0.7 * sum(confirmed.values())
        assert confirmed["left_at_door"] > 0 and confirmed["no_answer"] > 0
        kinds = Counter(db.scalars(select(ReferralEvent.kind)))
        assert kinds[EventKind.rescheduled] > 0 and kinds[EventKind.receipt_confirmed] > 0
        retried = db.scalars(select(Stop).where(Stop.carried_from_id.is_not(None))).all()
        assert retried and all(s.date > db.get(Stop, s.carried_from_id).date for s in retried)  # type: ignore[union-attr]
        texts = Counter(db.scalars(select(TextMessage.kind)))  # what the program would have texted
        assert texts[TextKind.day_before] > 0 and texts[TextKind.missed] > 0
        assert texts[TextKind.delivered] + texts[TextKind.left_at_door] > 0
        made = db.scalar(select(func.max(TextMessage.created_at)))
        assert made is not None and made.replace(tzinfo=dt.UTC) <= today.clock.now()
        latest = db.scalar(select(func.max(ReferralEvent.at)))
        assert latest is not None and latest.replace(tzinfo=dt.UTC) <= today.clock.now()

        food_bank = db.scalar(select(Organization).where(Organization.name == demo.FOOD_BANK))
        month = funder.build(db, food_bank, TODAY - dt.timedelta(days=28), TODAY - dt.timedelta(days=1))  # type: ignore[arg-type]
    assert month.boxes_delivered > 0 and month.receipts_confirmed > 0 and month.volunteer_hours > 0
    assert month.success_rate is not None and 0.8 <= month.success_rate < 1


def test_referral_dates_spread_over_the_history() -> None:
    """With a history, older referrals move back by whole weeks, oldest furthest, in the same order;
    the newest stay where they are so they still meet the waitlist."""
    referrals = demo.demo_referrals()
    days = demo.referred_days_ago(referrals, 8)
    assert max(days) >= 56 and max(days) - 56 <= 7
    recent = [d for r, d in zip(referrals, days, strict=True) if r.days_ago <= demo.RECENT_DAYS]
    assert recent and all(d <= demo.RECENT_DAYS for d in recent)
    order = sorted(range(len(referrals)), key=lambda i: -referrals[i].days_ago)
    assert [days[i] for i in order] == sorted(days, reverse=True)
    assert demo.referred_days_ago(referrals, 0) == [r.days_ago for r in referrals]
