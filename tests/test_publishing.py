"""Publish a day: each driver gets a personal link (256 random bits, only the hash stored, expiring
the morning after, revocable, re-issuable); republishing after an edit flags the changed routes only
and tells those drivers; `delivery route-link` prints a fresh link."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from sqlalchemy import select

from delivery.field.confirmations import confirm_stop
from delivery.models import (
    AuditEvent,
    Driver,
    EventKind,
    Order,
    Organization,
    Plan,
    ReferralEvent,
    Route,
    RouteLink,
    Stop,
)
from delivery.plans import day as days
from delivery.plans import edits as plan_edits
from delivery.plans import planning, publishing
from delivery.platform.audit import AuditContext
from delivery.platform.auth import token_hash
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.timeline import events as timeline
from tests.builders import Program
from tests.day_builders import DAY, add_driver, make_day

ACTOR = AuditContext.for_command("publish")


@pytest.fixture
def planned(database: Database, program: Program, settings: Settings) -> int:
    with database.writer() as db:
        make_day(db, program, stops=8, drivers=2, capacity=4)
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)
        db.commit()
        plan_id = plan.id
    planning.plan_now(database, settings, plan_id, 1.0)
    return plan_id


def test_publish_gives_each_driver_a_hashed_personal_link(database: Database, planned: int,
                                                           settings: Settings) -> None:
    with database.writer() as db:
        published = publishing.publish(db, db.get(Plan, planned), ACTOR, settings)
        db.commit()
        assert len(published) == 2 and all(p.first and not p.changed for p in published)
        raws = [p.link.rsplit("/", 1)[1] for p in published]
        assert all(p.link.startswith(f"{settings.base_url}/r/") for p in published)
        assert all(len(raw) >= 43 for raw in raws)  # 32 bytes, base64url
        stored = db.scalars(select(RouteLink.token_hash)).all()
        assert sorted(stored) == sorted(token_hash(raw) for raw in raws)
        assert not any(raw in h for raw in raws for h in stored)
        link = publishing.route_for_link(db, raws[0], dt.datetime.now(dt.UTC))
        assert link is not None and link.route_id == published[0].route_id
        # 06:00 the next morning in the program's time zone (America/Los_Angeles, PST in March 2030)
        assert link.expires_at == dt.datetime(2030, 3, 6, 14, 0, tzinfo=dt.UTC)
        assert publishing.route_for_link(db, "not-a-token", dt.datetime.now(dt.UTC)) is None

        # re-issuing revokes the previous link
        route = db.get(Route, published[0].route_id)
        fresh = publishing.issue_link(db, route, settings)
        db.commit()
        assert publishing.route_for_link(db, raws[0], dt.datetime.now(dt.UTC)) is None
        assert publishing.route_for_link(db, fresh.rsplit("/", 1)[1], dt.datetime.now(dt.UTC)) is not None
        publishing.revoke_links(db, route)
        assert publishing.route_for_link(db, fresh.rsplit("/", 1)[1], dt.datetime.now(dt.UTC)) is None
    with time_machine.travel(dt.datetime(2030, 3, 6, 14, 1, tzinfo=dt.UTC)), database.reader() as db:
        assert publishing.route_for_link(db, raws[1], dt.datetime.now(dt.UTC)) is None  # expired


def test_republishing_after_an_edit_flags_the_changed_route_only(database: Database, planned: int,
                                                                  settings: Settings) -> None:
    with database.writer() as db:
        plan = db.get(Plan, planned)
        first = publishing.publish(db, plan, ACTOR, settings)
        db.commit()
        a, b = (db.get(Route, p.route_id) for p in first)
        stops = db.scalars(select(Stop).where(Stop.route_id == a.id).order_by(Stop.seq)).all()
        # swap the first two stops of route a: only a changes
        plan_edits.move_stop(db, planned, plan.version, stops[0].id, a.id, 2, settings)
        db.commit()
        again = publishing.publish(db, plan, ACTOR, settings)
        db.commit()
        changed = {p.route_id: p.changed for p in again}
        assert changed == {a.id: True, b.id: False}
        assert all(p.link is None for p in again)  # the drivers keep their links
        assert a.published_version == plan.version == plan.published_version
        assert b.published_version < plan.version
        told = publishing.notices(db, a.id)
        assert len(told) == 1 and "changed" in told[0].message
        assert publishing.notices(db, b.id) == []
        audited = db.scalars(select(AuditEvent.resource_id)
                             .where(AuditEvent.action == publishing.PUBLISH)).all()
        # the changed route is disclosed again to its driver; the unchanged one only once, at first
        assert sorted(audited) == sorted([str(a.id), str(a.id), str(b.id)])


def test_route_link_command(database: Database, planned: int, settings: Settings,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert publishing.route_link_command(database, settings, "driver1@example.org", DAY) == 2
    assert "no published route" in capsys.readouterr().err
    with database.writer() as db:
        publishing.publish(db, db.get(Plan, planned), ACTOR, settings)
        db.commit()
    with database.reader() as db:
        assert len(db.scalars(select(Route.driver_id)).all()) == 2  # driver1 has a route
    assert publishing.route_link_command(database, settings, "Driver1@Example.org", DAY) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith(f"{settings.base_url}/r/")
    with database.reader() as db:
        assert publishing.route_for_link(db, link.rsplit("/", 1)[1], dt.datetime.now(dt.UTC)) is not None
    assert publishing.route_link_command(database, settings, "nobody@example.org", DAY) == 2
    assert "no driver" in capsys.readouterr().err


def test_route_link_for_a_driver_without_stops_on_a_published_day_says_so(
        database: Database, planned: int, program: Program, settings: Settings,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A volunteer with nothing on the published day is told that, not to publish the plan first."""
    with database.writer() as db:
        add_driver(db, program, 3)  # offered a shift after the day was planned
        publishing.publish(db, db.get(Plan, planned), ACTOR, settings)
        db.commit()
    assert publishing.route_link_command(database, settings, "driver3@example.org", DAY) == 2
    err = capsys.readouterr().err
    assert "Driver 3 has no stops on Tue 5 Mar" in err and "publish" not in err


def _kinds(db, kind: EventKind) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """(referral, stop) of every event of this kind."""
    return sorted((e.referral_id, e.data["stop_id"])
                  for e in db.scalars(select(ReferralEvent).where(ReferralEvent.kind == kind)))


def test_publishing_schedules_each_stop_once_and_the_first_confirmation_sends_its_route_out(
        database: Database, planned: int, settings: Settings) -> None:
    """`scheduled` (with the day) per stop at publication, none again on republishing; the route's
    first confirmation puts every stop of that route, and only that route, out for delivery, once."""
    with database.writer() as db:
        plan = db.get(Plan, planned)
        first = publishing.publish(db, plan, ACTOR, settings)
        db.commit()
        stops = db.scalars(select(Stop).where(Stop.plan_id == planned, Stop.route_id.is_not(None))).all()
        referral_of = {s.id: db.get(Order, s.order_id).referral_id for s in stops}
        assert _kinds(db, EventKind.scheduled) == sorted((r, s) for s, r in referral_of.items())
        assert {e.data["date"] for e in db.scalars(select(ReferralEvent).where(
            ReferralEvent.kind == EventKind.scheduled))} == {DAY.isoformat()}
        a = db.get(Route, first[0].route_id)
        on_a = db.scalars(select(Stop).where(Stop.route_id == a.id).order_by(Stop.seq)).all()
        plan_edits.move_stop(db, planned, plan.version, on_a[0].id, a.id, 2, settings)
        db.commit()
        publishing.publish(db, plan, ACTOR, settings)
        db.commit()
        assert len(_kinds(db, EventKind.scheduled)) == len(stops), "republishing schedules nothing again"

        driver = db.get(Driver, a.driver_id)
        at = dt.datetime(2030, 3, 5, 17, tzinfo=dt.UTC)
        for n, stop in enumerate(on_a[:2]):
            confirm_stop(db, stop=stop, user_id=driver.user_id, outcome="delivered", note=None,
                         occurred_at=at + dt.timedelta(minutes=n), idempotency_key=f"k-{n}",
                         now=at + dt.timedelta(minutes=n))
            db.commit()
        assert _kinds(db, EventKind.out_for_delivery) == sorted((referral_of[s.id], s.id) for s in on_a)
        kinds = [e.kind for e in timeline.history(db, referral_of[on_a[0].id])]
        assert kinds[-3:] == [EventKind.scheduled, EventKind.out_for_delivery, EventKind.delivered]
