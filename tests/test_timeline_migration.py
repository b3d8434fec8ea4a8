"""Migration 0004 turns the free-text timeline into data without losing an event: old kinds map
to the closed set, the old sentence is kept in the payload and shown as it was, and sequences
follow (at, id)."""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from delivery.models import EventKind, Referral, UTCDateTime
from delivery.platform.db import Database, alembic_config
from delivery.timeline import events as timeline
from delivery.timeline import payloads as p
from tests.conftest import POSTGRES_URL

T0 = dt.datetime(2026, 11, 2, 17, 0, tzinfo=dt.UTC)
OLD_EVENTS = [  # (referral, minutes after T0, old kind, old sentence), in insertion (id) order
    (0, 0, "referred", "Referred by Fruitvale Clinic (web). Note: call first"),
    (0, 0, "order_created", "1 standard box(es), weekly, first delivery Tue 03 Nov 2026."),
    (0, 60, "delivered", "Delivered 1 box on Tue 3 Nov (left at the door)"),
    (0, -5, "postcard_sent", "A postcard was sent."),  # older than the rest, written last
    (1, 0, "delivery_failed", "Delivery attempt failed: no answer"),
    (1, 10, "waitlist_promoted", "Capacity freed: moved off the waitlist; first delivery Tue 10 Nov 2026."),
]
MIGRATION = importlib.import_module("delivery.migrations.versions.0004_events_as_data")
WEBHOOKS = importlib.import_module("delivery.migrations.versions.0012_webhooks")
CORRECTED_KINDS = importlib.import_module("delivery.migrations.versions.0011_patient_corrected_events")
DRIVER_KINDS = importlib.import_module("delivery.migrations.versions.0009_driver_phone")
NEWEST_KINDS = importlib.import_module("delivery.migrations.versions.0018_needs_and_benefits")
"""The newest migration that replaced the kinds' CHECK (0018 follows 0013, 0009 follows 0011, which
follows 0008; 0012 changed it before)."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema yet (the shared fixtures are migrated to head already)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("DELIVERY_TEST_POSTGRES_URL is not set")
    base = make_url(POSTGRES_URL)
    name = f"delivery_migration_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def old_timeline(url: str) -> list[int]:
    """A database at 0003 with two referrals and free-text events; returns the referral ids.

    Written with the tables as 0003 made them (reflected), not today's models: a column added to
    a model later must not break the setup of an older schema."""
    command.upgrade(alembic_config(url), "0003")
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine)
    t = tables.tables
    with engine.begin() as db:
        def add(table: str, **values: object) -> int:
            return db.execute(t[table].insert().values(**values)).inserted_primary_key[0]

        org = {"requires_language_match": False, "timezone": "America/Los_Angeles", "created_at": T0}
        food_bank = add("organizations", name="Eastside Food Bank", kind="food_bank", **org)
        clinic = add("organizations", name="Fruitvale Clinic", kind="clinic", food_bank_id=food_bank, **org)
        ids = []
        for mrn in ("M-1", "M-2"):
            patient = add("patients", clinic_id=clinic, mrn=mrn, given_name="Ana", family_name="Ruiz",
                          birth_date=dt.date(1950, 1, 1), language="en", address_line1="1 Main St",
                          city="Oakland", state="CA", postal_code="94601", geocode_status="pending",
                          geocode_attempts=0, floor=0, elevator=False, dietary=[], consent_to_share=True,
                          do_not_contact=False, created_at=T0, updated_at=T0)
            ids.append(add("referrals", clinic_id=clinic, food_bank_id=food_bank, patient_id=patient,
                           source="web", status="active", outcome="home_delivery", reason="Eligible.",
                           priority=0, created_at=T0))
        old = sa.table("referral_events", sa.column("referral_id"), sa.column("at", UTCDateTime()),
                       sa.column("kind"), sa.column("message"))
        for which, minutes, kind, message in OLD_EVENTS:
            db.execute(old.insert().values(referral_id=ids[which], at=T0 + dt.timedelta(minutes=minutes),
                                           kind=kind, message=message))
    engine.dispose()
    return ids


def test_old_events_become_data_without_loss(empty_url: str) -> None:
    first, second = old_timeline(empty_url)
    command.upgrade(alembic_config(empty_url), "head")
    database = Database(empty_url)
    try:
        with database.writer() as db:
            mine, theirs = timeline.history(db, first), timeline.history(db, second)
            assert [(e.sequence, e.kind, e.text) for e in mine] == [
                (1, EventKind.legacy, "A postcard was sent."),
                (2, EventKind.received, "Referred by Fruitvale Clinic (web). Note: call first"),
                (3, EventKind.order_created, "1 standard box(es), weekly, first delivery Tue 03 Nov 2026."),
                (4, EventKind.left_at_door, "Delivered 1 box on Tue 3 Nov (left at the door)")]
            assert mine[0].data == p.Migrated(old_kind="postcard_sent", message="A postcard was sent.")
            assert mine[3].at == mine[3].recorded_at == T0 + dt.timedelta(minutes=60)
            assert [(e.sequence, e.kind) for e in theirs] == [
                (1, EventKind.attempt_failed), (2, EventKind.moved_off_waitlist)]

            # New events carry on after the migrated ones, with their outbox row.
            referral = db.get(Referral, first)
            assert referral is not None
            event = timeline.record(db, referral, EventKind.ended, p.Ended(reason="Moved away"))
            assert event.sequence == 5
            db.commit()
            with pytest.raises(IntegrityError):  # the kind column is checked
                db.execute(sa.text("UPDATE referral_events SET kind = 'postcard_sent' WHERE id = :id"),
                           {"id": event.id})
            db.rollback()
    finally:
        database.dispose()

    command.downgrade(alembic_config(empty_url), "0003")
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        back = conn.execute(sa.text("SELECT kind, message FROM referral_events ORDER BY id")).all()
        assert "outbox_messages" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    assert [tuple(row) for row in back[:len(OLD_EVENTS)]] == [(k, m) for _, _, k, m in OLD_EVENTS]
    assert back[-1][0] == "ended" and "Moved away" in back[-1][1]


def test_the_migration_checks_exactly_the_kinds_the_code_knows() -> None:
    """The newest CHECK and the EventKind enum name the same kinds (a new kind needs both), and each
    migration that replaces the CHECK starts from the kinds of the one before it."""
    assert set(NEWEST_KINDS.KINDS) == {k.value for k in EventKind}
    assert set(NEWEST_KINDS.KINDS_BEFORE) == set(DRIVER_KINDS.KINDS)
    assert set(DRIVER_KINDS.KINDS_BEFORE) == set(CORRECTED_KINDS.KINDS)
    assert set(CORRECTED_KINDS.KINDS_BEFORE) == set(WEBHOOKS.KINDS)
    assert set(WEBHOOKS.KINDS_BEFORE) == set(MIGRATION.KINDS)
    assert set(MIGRATION.OLD_KINDS.values()) <= set(MIGRATION.KINDS)


def test_a_downgrade_below_0011_keeps_corrections_as_their_sentence(empty_url: str) -> None:
    """0011 lets `patient_corrected` through the CHECK; going back turns such an event into a legacy one
    with its sentence, which the free-text timeline of 0003 shows under its own kind again."""
    first, _ = old_timeline(empty_url)
    command.upgrade(alembic_config(empty_url), "head")
    correction = p.PatientCorrected(patient_id=1, source="api", changes=(
        p.FieldChange(field="floor", before="3", after="5"),))
    sentence = "Patient details corrected by a re-sent referral (api): floor 3 → 5."
    database = Database(empty_url)
    try:
        with database.writer() as db:
            referral = db.get(Referral, first)
            assert referral is not None
            event_id = timeline.record(db, referral, EventKind.patient_corrected, correction).id
            db.commit()
            assert timeline.history(db, first)[-1].text == sentence
    finally:
        database.dispose()

    command.downgrade(alembic_config(empty_url), CORRECTED_KINDS.down_revision)
    database = Database(empty_url)
    try:
        with database.writer() as db:
            last = timeline.history(db, first)[-1]
            assert (last.kind, last.text) == (EventKind.legacy, sentence)
            with pytest.raises(IntegrityError):  # the CHECK before 0011 does not know the kind
                db.execute(sa.text("UPDATE referral_events SET kind = 'patient_corrected' WHERE id = :id"),
                           {"id": event_id})
            db.rollback()
    finally:
        database.dispose()

    command.downgrade(alembic_config(empty_url), "0003")
    engine = sa.create_engine(empty_url)
    with engine.connect() as conn:
        back = conn.execute(sa.text("SELECT kind, message FROM referral_events WHERE id = :id"),
                            {"id": event_id}).one()
    engine.dispose()
    assert tuple(back) == ("patient_corrected", sentence)
