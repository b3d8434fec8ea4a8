"""Timeline events for stops on a day: `scheduled` when the day is published, `out_for_delivery`
when its route gets going. Once per stop and kind: republishing or a second confirmation adds none.

Services do not commit; callers do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import EventKind, Order, Referral, ReferralEvent, Stop, StopStatus
from delivery.timeline import events as timeline
from delivery.timeline import payloads


def announce(db: Session, stops: Iterable[Stop], kind: EventKind, *, actor_id: int | None = None,
             occurred_at: dt.datetime | None = None) -> int:
    """Record `kind` (scheduled or out_for_delivery) for each stop's referral, unless that stop's
    referral already has it; returns how many were recorded."""
    stops = [s for s in stops if s.status != StopStatus.removed]
    if not stops:
        return 0
    referrals = {order_id: referral for order_id, referral in db.execute(
        select(Order.id, Referral).join(Referral, Referral.id == Order.referral_id)
        .where(Order.id.in_({s.order_id for s in stops})))}
    told = {(e.referral_id, e.data.get("stop_id")) for e in db.scalars(
        select(ReferralEvent).where(ReferralEvent.kind == kind,
                                    ReferralEvent.referral_id.in_([r.id for r in referrals.values()])))}
    recorded = 0
    for stop in stops:
        referral = referrals.get(stop.order_id)
        if referral is None or (referral.id, stop.id) in told:
            continue
        timeline.record(db, referral, kind, payloads.StopPlanned(
            order_id=stop.order_id, stop_id=stop.id, plan_id=stop.plan_id, date=stop.date,
            route_id=stop.route_id), actor_id=actor_id, occurred_at=occurred_at)
        told.add((referral.id, stop.id))
        recorded += 1
    return recorded


def route_started(db: Session, route_id: int, *, actor_id: int | None,
                  occurred_at: dt.datetime | None = None) -> int:
    """The route is on its way (drivers have no separate start: their first confirmation on it
    says so): every stop still on it is out for delivery. Called on each confirmation; stops
    already told (or added to the route later and told at the next one) are left alone."""
    stops = db.scalars(select(Stop).where(Stop.route_id == route_id).order_by(Stop.seq)).unique().all()
    return announce(db, stops, EventKind.out_for_delivery, actor_id=actor_id, occurred_at=occurred_at)

