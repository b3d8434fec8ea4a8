"""Confirmations: the one write path for a stop's outcome, whatever the channel (R7.3–R7.5).

- The first terminal outcome for a stop wins (write-once); the stop becomes delivered or failed.
- An idempotency key is stored on the row (unique per user), so a retry is recognised forever:
  the same key with the same body gets the stored result (a replay), with another body a conflict
  the HTTP layer answers with 422.
- A new key with the outcome already stored makes no new row; with a different outcome it is a
  conflict (409) that carries the stored outcome.
- `occurred_at` (the device's clock) and `received_at` (the server's) are both kept; a device time
  more than 24 h ahead of the server or more than 7 days behind is flagged (`clock_flag`).
- A confirmation is taken only inside its route's delivery window (`DeliveryWindow`): made while
  the route was open, received up to 72 hours after it closed (R8.3). Replays are answered whenever
  they come.
- While one request with a key is being handled, another with the same key gets `KeyInFlight`
  (409 with Retry-After): in-process, which is enough for the one app process SQLite allows.
- Its driver can undo a confirmation for 5 minutes: an amendment row, the original kept.
- The referral's timeline event is written in the same transaction, and a failed attempt's
  follow-up (rescheduled, or held for review: `delivery.field.followup`) is queued there as a job.
  Services do not commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import msgspec
from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, lazyload

from delivery.field import followup
from delivery.models import (
    Confirmation,
    ConfirmationAmendment,
    ConfirmationOutcome,
    EventKind,
    Order,
    Referral,
    Stop,
    StopStatus,
    utcnow,
)
from delivery.plans import stop_events
from delivery.platform.errors import FieldError
from delivery.timeline import events as timeline
from delivery.timeline import payloads

AHEAD_LIMIT = dt.timedelta(hours=24)
BEHIND_LIMIT = dt.timedelta(days=7)
MAX_KEY_LENGTH = 100
MAX_NOTE_LENGTH = 1000
REPLAY_WINDOW = dt.timedelta(hours=72)  # how long after the route closes a queued confirmation counts
UNDO_WINDOW = dt.timedelta(minutes=5)


class ConfirmError(FieldError):
    """A confirmation that cannot be taken at all (unknown outcome, removed stop, bad key)."""

    default_code = "confirmation_refused"


class OutsideWindow(ConfirmError):
    """Made after the route closed, or arrived more than 72 hours after that."""


class KeyInFlight(Exception):
    """The same key is being handled by another request right now: retry in a moment."""


class UndoError(ConfirmError):
    """The confirmation cannot be undone (too late, not yours, already undone)."""


@dataclass(frozen=True)
class DeliveryWindow:
    """When a confirmation of a route's stop is taken: made between the route's publication and its
    close (end of the route day plus the grace), and received no later than close + 72 hours."""

    opens: dt.datetime
    closes: dt.datetime

    @property
    def accepts_until(self) -> dt.datetime:
        return self.closes + REPLAY_WINDOW

    def check(self, occurred_at: dt.datetime, received_at: dt.datetime) -> None:
        if received_at > self.accepts_until:
            raise OutsideWindow("This confirmation arrived more than 72 hours after the route closed, "
                                "so it was not recorded: tell your coordinator what happened at this stop.")
        if received_at > self.closes and occurred_at > self.closes:
            raise OutsideWindow("The route closed before this confirmation was made: "
                                "tell your coordinator what happened at this stop.")


_in_flight: set[tuple[int, str]] = set()
_in_flight_lock = threading.Lock()


@contextmanager
def holding_key(user_id: int, idempotency_key: str) -> Iterator[None]:
    """Mark (user, key) as being handled for the duration; a second holder gets KeyInFlight."""
    claim = (user_id, idempotency_key)
    with _in_flight_lock:
        if claim in _in_flight:
            raise KeyInFlight("A request with this Idempotency-Key is still being handled.")
        _in_flight.add(claim)
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight.discard(claim)


class ConfirmKind(StrEnum):
    created = "created"  # a new row: 201
    replay = "replay"  # same key, same body: the stored result again
    same_outcome = "same_outcome"  # new key, the outcome already stored: 200, no new row
    outcome_conflict = "outcome_conflict"  # new key, another outcome already stored: 409
    key_reused = "key_reused"  # same key, another body: 422


STATUS_CODES = {ConfirmKind.created: 201, ConfirmKind.replay: 201, ConfirmKind.same_outcome: 200,
                ConfirmKind.outcome_conflict: 409, ConfirmKind.key_reused: 422}


@dataclass(frozen=True)
class ConfirmResult:
    kind: ConfirmKind
    stop: Stop
    confirmation: Confirmation | None  # the row this request made or found (None: no row on the stop)
    stored_outcome: str | None  # the stop's outcome after this call

    @property
    def status_code(self) -> int:
        return STATUS_CODES[self.kind]

    @property
    def ok(self) -> bool:
        return self.kind in (ConfirmKind.created, ConfirmKind.replay, ConfirmKind.same_outcome)

    @property
    def replayed(self) -> bool:
        return self.kind is ConfirmKind.replay


def request_hash(stop_id: int, outcome: str, note: str | None, occurred_at: dt.datetime) -> str:
    """A fingerprint of what a confirmation request asks for, to tell a retry from a reused key."""
    body = msgspec.json.encode({"stop_id": stop_id, "outcome": outcome, "note": note or None,
                                "occurred_at": occurred_at.astimezone(dt.UTC).isoformat()})
    return hashlib.sha256(body).hexdigest()


def clock_flag(occurred_at: dt.datetime, received_at: dt.datetime) -> str | None:
    """Why the device's time looks wrong (R7.5), or None when it is plausible."""
    if occurred_at - received_at > AHEAD_LIMIT:
        return "device clock more than 24 hours ahead"
    if received_at - occurred_at > BEHIND_LIMIT:
        return "device time more than 7 days in the past"
    return None


def timeline_event(stop: Stop, confirmation: Confirmation) -> tuple[EventKind, payloads.Payload]:
    """The referral's event for a confirmation: delivered, left at the door, or a failed attempt."""
    ids = {"order_id": stop.order_id, "stop_id": stop.id, "plan_id": stop.plan_id,
           "confirmation_id": confirmation.id, "date": stop.date}
    outcome = ConfirmationOutcome(confirmation.outcome)
    if outcome.delivered_food:
        kind = EventKind.delivered if outcome is ConfirmationOutcome.delivered else EventKind.left_at_door
        return kind, payloads.Delivered(**ids, boxes=stop.boxes)
    return EventKind.attempt_failed, payloads.AttemptFailed(**ids, reason=outcome, note=confirmation.note)


def valid_key(key: str | None) -> bool:
    """An Idempotency-Key is 1–100 visible ASCII characters (a UUID is the usual choice)."""
    return bool(key) and len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable() \
        and " " not in key  # type: ignore[union-attr]


def confirm_stop(db: Session, *, stop: Stop, user_id: int, outcome: str, note: str | None,
                 occurred_at: dt.datetime, idempotency_key: str,
                 window: DeliveryWindow | None = None, now: dt.datetime | None = None) -> ConfirmResult:
    """Record what happened at a stop. The caller has checked that this user may confirm this stop
    (their own published route) and commits afterwards. With a `window`, a new confirmation is
    refused outside it (OutsideWindow); a replay of a stored one is answered regardless.

    `stop` may come from an earlier read (another session, before the writer was taken): the stop
    is read again here under its lock, and refused if it has moved to another route since."""
    wanted, note, fingerprint = _checked(stop.id, outcome, note, occurred_at, idempotency_key)
    route_id = stop.route_id  # as the caller saw it (the locked read below refreshes `stop` itself)

    # Lock the stop (PostgreSQL; SQLite's single writer already serialises) so two confirmations
    # of one stop are decided one after the other. Its patient is not needed here: no join.
    locked = db.scalars(select(Stop).where(Stop.id == stop.id).with_for_update(of=Stop)
                        .options(lazyload(Stop.patient))
                        .execution_options(populate_existing=True)).unique().one()

    earlier = _answered(db, locked, user_id, idempotency_key, fingerprint)
    if earlier is not None:
        return earlier

    received_at = now or utcnow()  # the caller's clock (settings.clock) when it has one
    if window is not None:
        window.check(occurred_at, received_at)
    if locked.status == StopStatus.removed:
        raise ConfirmError("This stop was taken off the day by the coordinator.")
    if locked.route_id != route_id:
        raise ConfirmError("This stop was moved to another route: reload your route.")
    if locked.outcome is not None:
        first = db.scalar(select(Confirmation).where(Confirmation.stop_id == locked.id,
                                                     Confirmation.undone_at.is_(None))
                          .order_by(Confirmation.id).limit(1))
        kind = ConfirmKind.same_outcome if locked.outcome == wanted else ConfirmKind.outcome_conflict
        return ConfirmResult(kind, locked, first, locked.outcome)

    confirmation = Confirmation(stop_id=locked.id, user_id=user_id, idempotency_key=idempotency_key,
                                request_hash=fingerprint, outcome=wanted, note=note,
                                occurred_at=occurred_at, received_at=received_at)
    db.add(confirmation)
    db.flush()  # the event names the confirmation's id
    locked.outcome = wanted
    locked.status = StopStatus.delivered if wanted.delivered_food else StopStatus.failed
    # The event and its webhook need the referral's ids and status, not its patient or screening.
    referral = db.scalar(select(Referral).join(Order, Order.referral_id == Referral.id)
                         .where(Order.id == locked.order_id).options(lazyload("*")))
    if referral is not None:
        kind, data = timeline_event(locked, confirmation)
        # The door's time is the device's, unless that clock looks wrong (R7.5): then ours.
        at = confirmation.received_at if clock_flag(occurred_at, confirmation.received_at) else occurred_at
        if locked.route_id is not None:
            stop_events.route_started(db, locked.route_id, actor_id=user_id, occurred_at=at)
        timeline.record(db, referral, kind, data, actor_id=user_id, occurred_at=at)
        if not wanted.delivered_food:
            followup.enqueue(db, locked, actor_id=user_id)
    db.flush()
    return ConfirmResult(ConfirmKind.created, locked, confirmation, locked.outcome)


def stored_answer(db: Session, *, stop: Stop, user_id: int, outcome: str, note: str | None,
                  occurred_at: dt.datetime, idempotency_key: str) -> ConfirmResult | None:
    """The answer to a request whose key is already stored (a replay, or the key reused with
    another body), or None for a new key. Only reads: the caller can answer a retry without
    taking the writer, and take it for `confirm_stop` only when there is something to write."""
    _wanted, _note, fingerprint = _checked(stop.id, outcome, note, occurred_at, idempotency_key)
    return _answered(db, stop, user_id, idempotency_key, fingerprint)


def _checked(stop_id: int, outcome: str, note: str | None, occurred_at: dt.datetime,
             idempotency_key: str) -> tuple[ConfirmationOutcome, str | None, str]:
    """The request's outcome and note as stored, and its fingerprint; ConfirmError if malformed."""
    if not valid_key(idempotency_key):
        raise ConfirmError(f"The idempotency key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters.")
    try:
        wanted = ConfirmationOutcome(outcome)
    except ValueError:
        choices = ", ".join(o.value for o in ConfirmationOutcome)
        raise ConfirmError(f"Unknown outcome {outcome!r}: use one of {choices}.") from None
    if occurred_at.tzinfo is None:
        raise ConfirmError("occurred_at needs a time zone offset.")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_LENGTH:
        raise ConfirmError(f"Keep the note under {MAX_NOTE_LENGTH} characters.")
    return wanted, note, request_hash(stop_id, wanted, note, occurred_at)


def _answered(db: Session, stop: Stop, user_id: int, key: str, fingerprint: str) -> ConfirmResult | None:
    earlier = db.scalar(select(Confirmation).where(Confirmation.user_id == user_id,
                                                   Confirmation.idempotency_key == key))
    if earlier is None:
        return None
    kind = ConfirmKind.replay if earlier.request_hash == fingerprint else ConfirmKind.key_reused
    return ConfirmResult(kind, stop, earlier, stop.outcome)


def undo(db: Session, confirmation: Confirmation, *, user_id: int, reason: str = "undone by the driver",
         now: dt.datetime | None = None) -> Stop:
    """Withdraw a confirmation its own driver made less than 5 minutes ago: the stop is pending
    again, the row stays as it was with `undone_at`, and an amendment row and a timeline event say
    so. The caller commits."""
    now = now or utcnow()
    if confirmation.user_id != user_id:
        raise UndoError("Only the driver who confirmed this stop can undo it.")
    if confirmation.undone_at is not None:
        raise UndoError("This confirmation was already undone.")
    if now - confirmation.received_at > UNDO_WINDOW:
        raise UndoError("A confirmation can be undone for 5 minutes; ask your coordinator to correct it.")
    stop = db.scalars(select(Stop).where(Stop.id == confirmation.stop_id).with_for_update(of=Stop)
                      .execution_options(populate_existing=True)).unique().one()
    confirmation.undone_at = now
    db.add(ConfirmationAmendment(confirmation_id=confirmation.id, user_id=user_id, action="undo",
                                 reason=reason[:300], created_at=now))
    stop.outcome = None
    stop.status = StopStatus.pending
    # A failed attempt was retried on a later day (followup): that retry goes too while no route has
    # it yet. A hold for review stays for the coordinator, whom the timeline event tells.
    for retry in db.scalars(select(Stop).where(Stop.carried_from_id == stop.id, Stop.route_id.is_(None),
                                               Stop.status == StopStatus.pending)).unique():
        retry.status = StopStatus.removed
        retry.removed_reason = "The failed attempt it retried was undone by the driver."
    referral = db.scalar(select(Referral).join(Order, Order.referral_id == Referral.id)
                         .where(Order.id == stop.order_id))
    if referral is not None:
        timeline.record(db, referral, EventKind.confirmation_undone, payloads.ConfirmationUndone(
            order_id=stop.order_id, stop_id=stop.id, plan_id=stop.plan_id, confirmation_id=confirmation.id,
            date=stop.date, outcome=confirmation.outcome), actor_id=user_id, occurred_at=now)
    db.flush()
    return stop


def is_exception(confirmation: Confirmation) -> bool:
    """What a coordinator should look at: a failed attempt, or any note from the driver."""
    return not ConfirmationOutcome(confirmation.outcome).delivered_food or bool(confirmation.note)


FOOD_DELIVERED = [o.value for o in ConfirmationOutcome if o.delivered_food]


def waiting_exception() -> ColumnElement[bool]:
    """`is_exception` in SQL, for the ones no coordinator has handled (or the driver undone) yet."""
    return and_(Confirmation.handled_at.is_(None), Confirmation.undone_at.is_(None),
                or_(Confirmation.outcome.not_in(FOOD_DELIVERED), Confirmation.note.is_not(None)))


def mark_handled(db: Session, confirmation: Confirmation, *, user_id: int) -> None:
    """A coordinator has worked this exception; handling twice keeps the first time and person."""
    if confirmation.handled_at is None:
        confirmation.handled_at = utcnow()
        confirmation.handled_by_id = user_id
        db.flush()
