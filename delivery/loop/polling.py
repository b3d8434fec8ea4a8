"""For clinic systems that poll instead of taking webhooks: the clinic's referrals changed since a
time, oldest change first, a page at a time.

A referral changes exactly when an event is written for it, so "changed since" reads the events
(`recorded_at`), and the cursor is the id of the last change a page held: stable while new events
arrive (a referral changed again shows up again on a later page, with its newer state).
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.models import Referral, ReferralEvent
from delivery.platform.errors import FieldError

MAX_PAGE = 200


class CursorError(FieldError):
    pass


def encode_cursor(change_id: int) -> str:
    return base64.urlsafe_b64encode(f"c{change_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("c"):
            raise ValueError
        return int(raw[1:])
    except ValueError:
        raise CursorError("This cursor was not given by this API: start again without it.",
                          "cursor") from None


@dataclass(frozen=True)
class Page:
    referrals: list[tuple[Referral, dt.datetime]]  # with when each last changed
    next_cursor: str | None


def changed(db: Session, clinic_ids: list[int], *, since: dt.datetime | None, status: str | None,
            cursor: str | None, limit: int) -> Page:
    """One page of the clinics' referrals whose latest change is after `since` (and the cursor)."""
    after = decode_cursor(cursor) if cursor else 0
    last = (select(ReferralEvent.referral_id, func.max(ReferralEvent.id).label("change_id"),
                   func.max(ReferralEvent.recorded_at).label("changed_at"))
            .group_by(ReferralEvent.referral_id).subquery())
    query = (select(Referral, last.c.change_id, last.c.changed_at)
             .join(last, last.c.referral_id == Referral.id)
             .where(Referral.clinic_id.in_(clinic_ids), last.c.change_id > after)
             .order_by(last.c.change_id).limit(limit + 1))
    if since is not None:
        query = query.where(last.c.changed_at > since)
    if status is not None:
        query = query.where(Referral.status == status)
    rows = db.execute(query).unique().all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([(r, at) for r, _, at in rows], encode_cursor(rows[-1][1]) if more else None)
