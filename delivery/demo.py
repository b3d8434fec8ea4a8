"""The demo program: a food bank and two clinics in East Oakland, its people, drivers and patients.

`load()` builds it in one transaction and only once: when the demo food bank is already there it
changes nothing. It then plays the program's past delivery days (`delivery.demo_history`), so the
demo opens on a program that has been running for `HISTORY_WEEKS` weeks.

Patients come from `delivery/data/demo_patients.csv` (invented people at invented addresses with
their own coordinates, so no geocoder is needed) and enter through `intake.refer()`, the one write
path for referrals, so every demo referral has a real outcome, Order and timeline.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery import demo_history
from delivery.models import (
    BenefitsCase,
    ConfirmationOutcome,
    Depot,
    Driver,
    Need,
    Order,
    OrderStatus,
    Organization,
    OrganizationKind,
    Patient,
    ReferralEvent,
    Role,
    Shift,
    Source,
    User,
)
from delivery.platform import auth
from delivery.platform.audit import AuditContext
from delivery.platform.clock import Clock, FixedClock, zone
from delivery.platform.db import Database
from delivery.platform.settings import VAR, Settings
from delivery.program import benefits, partnerships
from delivery.program.scheduling import is_due, next_weekday
from delivery.program.waitlist import recurrence
from delivery.referrals import intake, needs
from delivery.referrals.schemas import ReferralIn

PATIENTS_CSV = Path(__file__).parent / "data" / "demo_patients.csv"
PASSWORD_FILE = VAR / "demo-password"

FOOD_BANK = "Eastside Community Food Bank"
DELIVERY_WEEKDAY = 1  # Tuesday
TIMEZONE = "America/Los_Angeles"  # the program's local time decides "today" and the delivery day
# A little under what the demo's clinics ask for, so the newest referrals show the waitlist.
BOXES_PER_DELIVERY_DAY = 52
CLINICS = ("Elmhurst Community Health Center", "Fruitvale Family Clinic")
HISTORY_WEEKS = 8
RECENT_DAYS = 2  # referrals this recent stay where the CSV puts them: they meet the waitlist


@dataclass(frozen=True)
class DemoDepot:
    name: str
    address: str
    lat: float
    lon: float
    opens: dt.time
    closes: dt.time
    hours: str


DEPOTS = (
    DemoDepot("Eastside warehouse", "8300 San Leandro St, Oakland, CA 94621", 37.74829, -122.18746,
              dt.time(8), dt.time(17), "Mon–Fri 8am–5pm"),
    DemoDepot("Fruitvale community pantry", "3340 Foothill Blvd, Oakland, CA 94601", 37.78218, -122.21891,
              dt.time(10), dt.time(14), "Tue & Sat 10am–2pm"),
)


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    role: Role
    organization: str  # FOOD_BANK or one of CLINICS


STAFF = (
    DemoUser("admin@demo.test", "Denise Walker", Role.admin, FOOD_BANK),
    DemoUser("coordinator@demo.test", "Marisol Reyes", Role.coordinator, FOOD_BANK),
    DemoUser("clinic1@demo.test", "Kevin Huang", Role.clinic_staff, CLINICS[0]),
    DemoUser("clinic2@demo.test", "Lucía Navarro", Role.clinic_staff, CLINICS[1]),
    DemoUser("benefits@demo.test", "Teresa Lim", Role.benefits, FOOD_BANK),
)


@dataclass(frozen=True)
class DemoShift:
    start: dt.time
    end: dt.time
    depot: int  # index into DEPOTS: where the boxes are loaded
    ends_at_home: bool  # otherwise back at the depot
    offered_by: str = "coordinator"


@dataclass(frozen=True)
class DemoDriver:
    email: str
    name: str
    phone: str
    vehicle: str
    capacity_boxes: int
    languages: tuple[str, ...]
    carries_upstairs: bool
    home: tuple[float, float] | None
    this_week: DemoShift | None  # on the next delivery day
    next_week: DemoShift | None  # a week later


def _t(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


DRIVERS = (
    DemoDriver("driver1@demo.test", "Jamal Carter", "+15105550181", "car", 10, ("en",), True,
               (37.75825, -122.15858),
               DemoShift(_t("09:00"), _t("12:30"), 0, True, "driver"),
               DemoShift(_t("08:30"), _t("12:00"), 0, True, "driver")),
    DemoDriver("driver2@demo.test", "Araceli Ortiz", "+15105550182", "van", 28, ("es", "en"), True, None,
               DemoShift(_t("08:30"), _t("12:00"), 0, False),
               DemoShift(_t("08:30"), _t("12:00"), 0, False)),
    DemoDriver("driver3@demo.test", "Kenneth Yee", "+15105550183", "car", 8, ("yue", "en"), True,
               (37.78761, -122.21759),
               DemoShift(_t("10:00"), _t("13:00"), 1, True),
               None),  # away the week after
    DemoDriver("driver4@demo.test", "Linh Vu", "+15105550184", "car", 12, ("vi", "en"), True,
               (37.77979, -122.21221),
               DemoShift(_t("09:30"), _t("13:30"), 0, True, "driver"),
               DemoShift(_t("10:00"), _t("13:30"), 1, True, "driver")),
    DemoDriver("driver5@demo.test", "Robert Greene", "+15105550185", "van", 24, ("en",), False, None,
               DemoShift(_t("12:00"), _t("16:00"), 0, False),
               DemoShift(_t("12:00"), _t("16:00"), 0, False)),
    DemoDriver("driver6@demo.test", "Elena Soto", "+15105550186", "car", 10, ("es", "en"), True,
               (37.77041, -122.18011),
               DemoShift(_t("12:30"), _t("16:00"), 0, True, "driver"),
               DemoShift(_t("13:00"), _t("16:00"), 0, True, "driver")),
)


# --- the password ---------------------------------------------------------------------------


def read_demo_password(path: Path = PASSWORD_FILE) -> str | None:
    """The installation's demo password, or None when it has not been made yet."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def demo_password(path: Path = PASSWORD_FILE) -> str:
    """The installation's demo password: made once at random, kept in var/ (mode 0600), reused."""
    existing = read_demo_password(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    # O_EXCL: two loads at once cannot each write their own; 0600 from the start, never readable.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return demo_password(path)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


# --- the patients ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoReferral:
    clinic: str
    body: ReferralIn
    days_ago: int  # referred this many days before the load, for a believable timeline


def _yes(value: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(f"expected yes or no, got {value!r}")
    return value == "yes"


def _referral_body(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row (the columns of `delivery import referrals`, plus the clinic) as the API's body."""
    address: dict[str, Any] = {"line1": row["address_line1"], "unit": row["unit"] or None,
                               "city": row["city"], "state": row["state"],
                               "postal_code": row["postal_code"],
                               "lat": float(row["lat"]), "lon": float(row["lon"])}
    patient = {"mrn": row["mrn"], "given_name": row["given_name"], "family_name": row["family_name"],
               "birth_date": row["birth_date"], "phone": row["phone"] or None,
               "language": row["language"], "address": address, "floor": int(row["floor"]),
               "elevator": _yes(row["elevator"]), "access_notes": row["access_notes"] or None,
               "dietary": [d for d in row["dietary"].split(";") if d],
               "do_not_contact": _yes(row["do_not_contact"]),
               # Every demo patient with a phone agreed to texts, so the coordinators' texts page
               # shows what the program would send (texting itself stays off in the demo).
               "consent_to_text": bool(row["phone"]) and not _yes(row["do_not_contact"])}
    screening = {"hunger_worried": row["hunger_worried"], "hunger_ran_out": row["hunger_ran_out"],
                 "transportation_barrier": _yes(row["transportation_barrier"]),
                 "mobility_barrier": _yes(row["mobility_barrier"]),
                 "errands_barrier": _yes(row["errands_barrier"]),
                 "snap_enrolled": row["snap_enrolled"] or "unknown"}
    order = {"boxes": int(row["boxes"]), "box_type": row["box_type"], "cadence": row["cadence"],
             "window_start": row["window_start"] or None, "window_end": row["window_end"] or None}
    body = {"patient": patient, "screening": screening, "order": order,
            "priority": int(row["priority"]), "note": row["note"] or None}
    if row["needs"] or row["needs_words"]:
        body["needs"] = {"picks": [n for n in row["needs"].split(";") if n],
                         "words": row["needs_words"] or None}
    return body


def demo_referrals(path: Path = PATIENTS_CSV) -> list[DemoReferral]:
    """The demo's referrals as the clinics would send them; a bad row names its line."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    referrals = []
    for line, row in enumerate(rows, start=2):
        try:
            if row["clinic"] not in CLINICS:
                raise ValueError(f"unknown clinic {row['clinic']!r}")
            body = msgspec.convert(_referral_body(row), ReferralIn)
            referrals.append(DemoReferral(row["clinic"], body, int(row["referred_days_ago"])))
        except (KeyError, ValueError, msgspec.ValidationError) as exc:
            raise ValueError(f"{path.name} line {line}: {exc}") from exc
    return referrals


# --- loading --------------------------------------------------------------------------------


def load(database: Database, settings: Settings, *, password_file: Path = PASSWORD_FILE,
         history_weeks: int = HISTORY_WEEKS) -> str:
    """Load the demo program once; returns what was done (or found) and how to sign in."""
    today = settings.clock.today(TIMEZONE)
    past_days = demo_history.past_delivery_days(DELIVERY_WEEKDAY, today, history_weeks)
    with database.writer() as db:
        loaded = db.scalar(select(Organization.id).where(Organization.name == FOOD_BANK)) is not None
        if not loaded:
            password = demo_password(password_file)
            food_bank = _build(db, auth.hash_password(password, settings), settings.clock, past_days)
            food_bank_id = food_bank.id
            db.commit()
    if loaded:  # outside the writer: checking the password takes a while and needs no lock
        with database.reader() as db:
            return _already_loaded(db, settings, password_file, today)
    played = demo_history.play(database, settings, food_bank_id, past_days)
    with database.reader() as db:
        summary = _summary(db, db.get(Organization, food_bank_id), today)  # type: ignore[arg-type]
    if played:
        delivered = sum(n for day in played for outcome, n in day.outcomes.items()
                        if ConfirmationOutcome(outcome).delivered_food)
        summary += (f"\n  {len(played)} past delivery days since {played[0].date:%d %b}: "
                    f"{sum(day.stops for day in played)} stops, {delivered} delivered")
    return f"Loaded the demo program.\n{summary}\n\n{sign_in_text(settings, password)}"


def _already_loaded(db: Session, settings: Settings, password_file: Path, today: dt.date) -> str:
    food_bank = db.scalar(select(Organization).where(Organization.name == FOOD_BANK))
    assert food_bank is not None
    text = f"The demo program is already loaded; nothing changed.\n{_summary(db, food_bank, today)}"
    password = read_demo_password(password_file)
    admin = db.scalar(select(User).where(User.email == STAFF[0].email))
    if password is None or admin is None or not auth.verify_password(admin.password_hash, password, settings):
        # Never write a new password over the one the demo users have: say what to do instead.
        return (f"{text}\n\nThe demo users' password is not the one in {password_file} (the file is "
                "missing or was made again). To start over, load the demo into a new database (by default "
                "delete var/delivery.db) and run this again.")
    return f"{text}\n\n{sign_in_text(settings, password)}"


def _build(db: Session, password_hash: str, clock: Clock, past_days: list[dt.date]) -> Organization:
    today = clock.today(TIMEZONE)
    food_bank = Organization(name=FOOD_BANK, kind=OrganizationKind.food_bank, timezone=TIMEZONE,
                             boxes_per_delivery_day=BOXES_PER_DELIVERY_DAY,
                             delivery_weekday=DELIVERY_WEEKDAY)
    db.add(food_bank)
    db.flush()
    orgs = {FOOD_BANK: food_bank}
    for name in CLINICS:
        orgs[name] = Organization(name=name, kind=OrganizationKind.clinic, food_bank_id=food_bank.id)
        db.add(orgs[name])
    depots = [Depot(organization_id=food_bank.id, name=d.name, address=d.address, lat=d.lat, lon=d.lon,
                    opens=d.opens, closes=d.closes, hours=d.hours, pickup=True) for d in DEPOTS]
    db.add_all(depots)
    db.flush()

    staff = {}
    for u in STAFF:
        staff[u.organization] = _create_user(db, u.email, u.name, password_hash,
                                             (orgs[u.organization].id, u.role))
    _add_drivers(db, food_bank, depots, password_hash, today, past_days)
    _refer_patients(db, orgs, staff, clock, history_weeks=len(past_days))
    admin = db.scalar(select(User).where(User.email == STAFF[0].email))
    assert admin is not None
    began = min([today - dt.timedelta(weeks=4), *(day - dt.timedelta(weeks=1) for day in past_days[:1])])
    _write_agreements(db, orgs, admin, began, today)
    _work_the_lists(db, orgs, staff, clock)
    return food_bank


@dataclass(frozen=True)
class DemoAgreement:
    clinic: str
    allocation: int
    unit: str
    days_to_first_box: int
    food_bank_contact: str
    clinic_contact: str


FOOD_BANK_CONTACT = "Dana Okafor, programs, (510) 555-0150, dana@eastside.example"
AGREEMENTS = (
    DemoAgreement(CLINICS[0], 35, "new_patients", 7, FOOD_BANK_CONTACT,
                  "Kevin Huang, care coordination, (510) 555-0161, khuang@elmhurst.example"),
    DemoAgreement(CLINICS[1], 30, "boxes", 10, FOOD_BANK_CONTACT,
                  "Lucía Navarro, social work, (510) 555-0172, lnavarro@fruitvale.example"),
)


def _write_agreements(db: Session, orgs: dict[str, Organization], admin: User, began: dt.date,
                      today: dt.date) -> None:
    """Each clinic's written allocation, by the food bank's admin: a pilot that began before the first
    delivery day, reviewed after six months. Written after the referrals, so the demo's waitlist stays
    as it was."""
    ctx = AuditContext.for_command("demo load", user_id=admin.id)
    for a in AGREEMENTS:
        terms = partnerships.Terms(allocation=a.allocation, unit=a.unit, delivery_days=[DELIVERY_WEEKDAY],
                                   days_to_first_box=a.days_to_first_box,
                                   food_bank_contact=a.food_bank_contact,
                                   clinic_contact=a.clinic_contact, starts_on=began,
                                   review_on=today + dt.timedelta(weeks=22))
        partnerships.save(db, ctx, orgs[a.clinic], terms, actor_id=admin.id)


def _create_user(db: Session, email: str, name: str, password_hash: str,
                 membership: tuple[int, Role]) -> User:
    # The demo users share one password: hash it once (argon2 takes a good part of a second).
    return auth.create_user(db, email=email, display_name=name, memberships=[membership],
                            password_hash=password_hash)


def _add_drivers(db: Session, food_bank: Organization, depots: list[Depot], password_hash: str,
                 today: dt.date, past_days: list[dt.date]) -> None:
    """The drivers and their shifts: the next two delivery days, and on past days their two weekly
    patterns in turn (written directly: the roster refuses shifts in the past, and these are history)."""
    first_day = next_weekday(DELIVERY_WEEKDAY, today)
    days = [(day, n % 2) for n, day in enumerate(reversed(past_days), start=1)]
    days += [(first_day, 0), (first_day + dt.timedelta(weeks=1), 1)]
    for d in DRIVERS:
        user = _create_user(db, d.email, d.name, password_hash, (food_bank.id, Role.driver))
        driver = Driver(user_id=user.id, food_bank_id=food_bank.id, phone=d.phone, vehicle=d.vehicle,
                        capacity_boxes=d.capacity_boxes, languages=list(d.languages),
                        carries_upstairs=d.carries_upstairs,
                        home_lat=d.home[0] if d.home else None, home_lon=d.home[1] if d.home else None)
        db.add(driver)
        db.flush()
        for date, pattern in days:
            shift = (d.this_week, d.next_week)[pattern]
            if shift is None:
                continue
            depot = depots[shift.depot]
            db.add(Shift(driver_id=driver.id, date=date,
                         start=shift.start, end=shift.end, start_depot_id=depot.id,
                         end_depot_id=None if shift.ends_at_home else depot.id,
                         offered_by=shift.offered_by))
    db.flush()


def referred_days_ago(referrals: list[DemoReferral], history_weeks: int) -> list[int]:
    """When each referral was made, in days before the load. With a history, the referrals older than
    RECENT_DAYS spread over its weeks (oldest first, a few each week), so the program grew week by week."""
    days = [r.days_ago for r in referrals]
    older = sorted((i for i, r in enumerate(referrals) if r.days_ago > RECENT_DAYS), key=lambda i: -days[i])
    for rank, i in enumerate(older):
        days[i] += 7 * (history_weeks - rank * history_weeks // len(older))
    return days


def _refer_patients(db: Session, orgs: dict[str, Organization], staff: dict[str, User],
                    clock: Clock, *, history_weeks: int) -> None:
    """Each clinic refers its patients, oldest referral first, so the newest ones meet the waitlist."""
    demos = demo_referrals()
    referrals = sorted(zip(referred_days_ago(demos, history_weeks), demos, strict=True), key=lambda p: -p[0])
    per_day: Counter[int] = Counter()
    today = clock.today(TIMEZONE)
    for days_ago, demo in referrals:
        clinic = orgs[demo.clinic]
        at = _clinic_hours(today - dt.timedelta(days=days_ago), per_day[days_ago], orgs[FOOD_BANK].timezone)
        per_day[days_ago] += 1
        # With a history, the referral is decided as it was then (its first delivery day, the room
        # on the days after); without one, every order starts from the next delivery day.
        result = intake.refer(db, demo.body, clinic_id=clinic.id, actor_id=staff[demo.clinic].id,
                              source=Source.demo, clock=FixedClock(at) if history_weeks else clock)
        # Back-date what intake just wrote to the clinic's working hours on the day the patient was
        # referred, so lists and timelines read like a program under way.
        result.referral.created_at = at
        patient = db.get(Patient, result.referral.patient_id)
        assert patient is not None
        patient.created_at = patient.updated_at = at
        events = db.scalars(select(ReferralEvent).where(ReferralEvent.referral_id == result.referral.id))
        for event in events:
            event.at = at
        for need in db.scalars(select(Need).where(Need.referral_id == result.referral.id)):
            need.raised_at = at
        for case in db.scalars(select(BenefitsCase).where(BenefitsCase.referral_id == result.referral.id)):
            case.flagged_at = at
        if result.order is not None:
            result.order.created_at = at
            result.order.placed_on = at.astimezone(zone(TIMEZONE)).date()
            if result.order.accepted_on is not None:
                result.order.accepted_on = result.order.placed_on
            if result.order.waitlisted_at is not None:
                result.order.waitlisted_at = at
        db.flush()


def _work_the_lists(db: Session, orgs: dict[str, Organization], staff: dict[str, User], clock: Clock) -> None:
    """Clinic staff have already referred on and resolved a few needs, and the benefits staff have
    reached a few patients (one enrolled), through the same services as the pages."""
    now, today = clock.now(), clock.today(TIMEZONE)
    for clinic in CLINICS:
        who = AuditContext.for_command("demo", staff[clinic].id)
        rows = needs.worklist(db, orgs[clinic].id)
        oldest = sorted(rows, key=lambda n: n.raised_at)
        if oldest:
            needs.mark(db, who, oldest[0], status="resolved",
                       note="Connected with the clinic's social worker.", now=now)
        if len(oldest) > 1:
            needs.mark(db, who, oldest[1], status="referred_on", note="Referred to the county's utility "
                       "assistance program.", now=now)
    worker = AuditContext.for_command("demo", staff[FOOD_BANK].id)  # the food bank's last: benefits staff
    steps = [("contacted", 5), ("applied", 3), ("enrolled", 1)]
    for n, case in enumerate(benefits.worklist(db, [orgs[FOOD_BANK].id])[:3]):
        for step, days_ago in steps[:len(steps) - n]:
            benefits.record_step(db, worker, case, step=step, on=today - dt.timedelta(days=days_ago), note="",
                                 today=today, now=now)


def _clinic_hours(day: dt.date, nth: int, timezone: str) -> dt.datetime:
    """The nth referral of a day: from 9:00 local time, one every 40 minutes."""
    try:
        zone: dt.tzinfo = ZoneInfo(timezone)
    except ZoneInfoNotFoundError:
        zone = dt.UTC
    local = dt.datetime.combine(day, dt.time(9), tzinfo=zone) + dt.timedelta(minutes=40 * nth)
    return local.astimezone(dt.UTC)


# --- what to tell people --------------------------------------------------------------------


def _summary(db: Session, food_bank: Organization, today: dt.date) -> str:
    clinics = db.scalars(select(Organization.id).where(Organization.food_bank_id == food_bank.id)).all()
    patients = db.scalars(select(Patient.id).where(Patient.clinic_id.in_(clinics))).all()
    orders = db.scalars(select(Order).where(Order.food_bank_id == food_bank.id)).all()
    statuses = Counter(o.status for o in orders)
    drivers = db.scalars(select(Driver.id).where(Driver.food_bank_id == food_bank.id)).all()
    shifts = db.scalars(select(Shift).where(Shift.driver_id.in_(drivers))).all()
    next_day = next_weekday(food_bank.delivery_weekday or 0, today)
    due = [o for o in orders if o.status == OrderStatus.active and is_due(recurrence(o), next_day)]
    return (f"  {food_bank.name} and its clinics: {', '.join(CLINICS)}\n"
            f"  {len(patients)} patients, {statuses[OrderStatus.active]} on home delivery, "
            f"{statuses[OrderStatus.waitlisted]} on the waitlist\n"
            f"  {len(drivers)} drivers with {len(shifts)} shifts\n"
            f"  next delivery day {next_day:%a %d %b %Y}: {len(due)} stops, "
            f"{sum(o.boxes for o in due)} boxes")


def sign_in_text(settings: Settings, password: str) -> str:
    """Where to sign in, as whom, with which password (for scripts/run and `delivery demo load`)."""
    # Browsers keep the Secure __Host- session cookie on http only for loopback names.
    host = settings.host if settings.host in ("localhost", "127.0.0.1") else "127.0.0.1"
    login = f"http://{host}:{settings.port}/login"
    lines = [f"Sign in with password {password} (every demo user has it):"]
    people = [(u.email, u.role, u.organization) for u in STAFF]
    people += [(d.email, Role.driver, f"{d.vehicle}, {d.capacity_boxes} boxes") for d in DRIVERS]
    rows = [(f"{role.replace('_', ' ')} ({where})", email) for email, role, where in people]
    width = max(len(label) for label, _ in rows)
    lines += [f"  {label:<{width}}  {login}?email={email}" for label, email in rows]
    lines.append("An API token for a clinic's system: .venv/bin/delivery token create --user "
                 "clinic1@demo.test")
    return "\n".join(lines)
