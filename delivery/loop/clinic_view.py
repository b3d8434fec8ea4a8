"""What clinic staff read: where each referral stands, in plain words, and the filters of their list.

Everything is derived from the timeline events (never from prose), so the screen, the API and the
webhooks agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.models import EventKind, Referral, ReferralEvent, ReferralStatus, User
from delivery.timeline.events import Entry

DELIVERED = (EventKind.delivered, EventKind.left_at_door)
RECEIPTS = (EventKind.receipt_confirmed, EventKind.receipt_denied)
# Events that change where a referral stands (others, like a priority change, do not).
STATE_KINDS = (EventKind.outcome, EventKind.override, EventKind.waitlisted, EventKind.moved_off_waitlist,
               EventKind.order_created, EventKind.scheduled, EventKind.out_for_delivery, *DELIVERED,
               EventKind.attempt_failed, EventKind.rescheduled, *RECEIPTS, EventKind.paused,
               EventKind.resumed, EventKind.ended, EventKind.held_for_review)


class Filter(StrEnum):
    waiting = "waiting"  # waitlisted, or referred and not yet decided
    active = "active"
    awaiting_receipt = "awaiting_receipt"  # delivered this week, receipt not recorded
    failed = "failed"  # the last attempt failed, or deliveries are held after failures
    ended = "ended"


def first_name(display_name: str) -> str:
    return display_name.split()[0] if display_name.strip() else "the driver"


def local(at: dt.datetime, tz: str) -> dt.datetime:
    return at.astimezone(ZoneInfo(tz))


def _when(at: dt.datetime, tz: str) -> str:
    moment = local(at, tz)
    return f"{moment:%A} {moment:%H:%M}"


def current_state(entries: Sequence[Entry], tz: str, drivers: dict[int, str]) -> str:
    """One sentence for the top of the patient page, e.g. "Delivered Tuesday 10:42 by Ana — receipt
    not yet confirmed". `entries` oldest first; `drivers` maps actor ids to display names."""
    state = [e for e in entries if e.kind in STATE_KINDS]
    if not state:
        return "Referral received; the program has not decided yet."
    last = state[-1]
    if last.kind in RECEIPTS:
        delivered = next((e for e in reversed(state) if e.kind in DELIVERED), None)
        said = ("confirmed" if last.kind == EventKind.receipt_confirmed
                else "NOT received — the food bank is looking into it")
        when = f"Delivered {_when(delivered.at, tz)}" if delivered else "Delivered"
        return f"{when} — receipt {said}"
    if last.kind in DELIVERED:
        by = f" by {first_name(drivers[last.actor_id])}" if last.actor_id in drivers else ""
        door = " (left at the door)" if last.kind == EventKind.left_at_door else ""
        return f"Delivered {_when(last.at, tz)}{by}{door} — receipt not yet confirmed"
    if last.kind == EventKind.rescheduled:
        failed = next((e for e in reversed(state) if e.kind == EventKind.attempt_failed), None)
        reason = f" ({failed.data.reason.replace('_', ' ')})" if failed else ""  # type: ignore[attr-defined]
        return f"Couldn't deliver{reason} — rescheduled for {last.data.to_date:%A %d %b}"  # type: ignore[attr-defined]
    if last.kind == EventKind.out_for_delivery:
        return f"Out for delivery {_when(last.at, tz)}"
    return last.text


def drivers_of(db: Session, entries: Sequence[Entry]) -> dict[int, str]:
    ids = {e.actor_id for e in entries if e.kind in DELIVERED and e.actor_id is not None}
    if not ids:
        return {}
    return dict(db.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())  # type: ignore[arg-type]


def last_kinds(db: Session, referral_ids: Sequence[int]) -> dict[int, ReferralEvent]:
    """Each referral's latest state-changing event (one query)."""
    if not referral_ids:
        return {}
    newest = (select(ReferralEvent.referral_id, func.max(ReferralEvent.sequence).label("seq"))
              .where(ReferralEvent.referral_id.in_(referral_ids), ReferralEvent.kind.in_(STATE_KINDS))
              .group_by(ReferralEvent.referral_id).subquery())
    rows = db.scalars(select(ReferralEvent).join(newest, (newest.c.referral_id == ReferralEvent.referral_id)
                                                 & (newest.c.seq == ReferralEvent.sequence)))
    return {e.referral_id: e for e in rows}


def matches(which: Filter, referral: Referral, last: ReferralEvent | None, week_start: dt.date) -> bool:
    kind = last.kind if last is not None else None
    if which is Filter.waiting:
        return referral.status == ReferralStatus.waitlisted or kind is None
    if which is Filter.ended:
        return referral.status in (ReferralStatus.closed, ReferralStatus.not_eligible)
    if which is Filter.failed:
        return kind in (EventKind.attempt_failed, EventKind.rescheduled, EventKind.held_for_review)
    if which is Filter.awaiting_receipt:
        return kind in DELIVERED and last is not None and last.at.date() >= week_start
    return referral.status == ReferralStatus.active


@dataclass(frozen=True)
class WeekShare:
    week_start: dt.date
    referred: int  # patients with an active order in the week
    received: int  # of them, patients with a delivery in the week

    @property
    def share(self) -> float | None:
        return self.received / self.referred if self.referred else None


def weekly_share(db: Session, clinic_id: int, today: dt.date, weeks: int = 8) -> list[WeekShare]:
    """Per week (Monday first), the clinic's patients on home delivery and how many got boxes."""
    start = today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=weeks - 1)
    rows = db.execute(select(ReferralEvent.referral_id, ReferralEvent.kind, ReferralEvent.at)
                      .join(Referral, Referral.id == ReferralEvent.referral_id)
                      .where(Referral.clinic_id == clinic_id,
                             ReferralEvent.kind.in_([*DELIVERED, EventKind.order_created,
                                                     EventKind.moved_off_waitlist, EventKind.ended]))
                      .order_by(ReferralEvent.referral_id, ReferralEvent.sequence)).all()
    served: dict[int, tuple[dt.date, dt.date | None]] = {}
    got: dict[dt.date, set[int]] = {}
    for referral_id, kind, at in rows:
        day = at.date()
        if kind in (EventKind.order_created, EventKind.moved_off_waitlist):
            served.setdefault(referral_id, (day, None))
        elif kind == EventKind.ended and referral_id in served:
            served[referral_id] = (served[referral_id][0], day)
        elif kind in DELIVERED:
            got.setdefault(day - dt.timedelta(days=day.weekday()), set()).add(referral_id)
    out = []
    for n in range(weeks):
        monday = start + dt.timedelta(weeks=n)
        sunday = monday + dt.timedelta(days=6)
        active = {rid for rid, (begin, end) in served.items()
                  if begin <= sunday and (end is None or end >= monday)} | got.get(monday, set())
        out.append(WeekShare(monday, len(active), len(got.get(monday, set()) & active)))
    return out
