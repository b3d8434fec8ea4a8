""""What else do you need?": the referring clinic's worklist of patients' needs besides food.

A need comes from the referral (the patient's quick picks and own words, on any channel) or from a
driver's flag at the door ("asked for help", "no working fridge"). It belongs to the referring
clinic alone (the food bank has no worklist of it); clinic staff refer it on or resolve it, with a
note that shows on the referral's timeline. Plain rules first, then the writes; services do not commit.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from delivery.models import (
    EventKind,
    FieldReport,
    FieldReportKind,
    Need,
    NeedKind,
    NeedStatus,
    Order,
    Referral,
    Stop,
)
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.errors import FieldError, NotFoundError
from delivery.referrals.schemas import NEED_WORDS_MAX, NeedsIn
from delivery.timeline import events as timeline
from delivery.timeline import payloads

DRIVER = "driver"
"""A need's source when a driver noted it (the others are the referral's Source)."""
DRIVER_FLAGS = {FieldReportKind.no_fridge: NeedKind.fridge_stove,
                FieldReportKind.asked_for_help: NeedKind.other}
"""The driver's quick flags at a stop that are needs for the clinic (the rest are the coordinator's)."""
MOVES = {NeedStatus.open: (NeedStatus.referred_on, NeedStatus.resolved),
         NeedStatus.referred_on: (NeedStatus.resolved,), NeedStatus.resolved: ()}
"""Where a need can go from each status: referred on may still be resolved; resolved is the end."""
NOTE_MAX = 500
CLINIC_ONLY = (EventKind.need_raised, EventKind.need_referred_on, EventKind.need_resolved)
"""Timeline events the food bank's pages leave out: a patient's other needs are the clinic's business."""


# --- rules ----------------------------------------------------------------------------------


def answer(picks: list[str], words: str | None) -> tuple[list[str], str | None] | None:
    """The answer kept: picks once each in the form's order, the words on one tidy run of text
    (bounded); None when the patient named nothing."""
    chosen = set(picks)
    kinds = [k.value for k in NeedKind if k in chosen]
    text = " ".join((words or "").split())[:NEED_WORDS_MAX] or None
    if not kinds and text is None:
        return None
    return kinds, text


def check_move(before: str, after: str) -> NeedStatus:
    """The new status, if a need in `before` may take it; FieldError says why not."""
    try:
        wanted = NeedStatus(after)
    except ValueError:
        raise FieldError("Choose referred on or resolved.", "status") from None
    if wanted not in MOVES[NeedStatus(before)]:
        said = before.replace("_", " ")
        raise FieldError(f"This need is already {said}: it cannot become {wanted.replace('_', ' ')}.",
                         "status", code="need_status")
    return wanted


# --- writes ---------------------------------------------------------------------------------


def raise_need(db: Session, referral: Referral, *, kinds: list[str], words: str | None, source: str,
               actor_id: int | None, now: dt.datetime, field_report_id: int | None = None) -> Need | None:
    """Put a need on the referring clinic's worklist and the referral's timeline. The same need
    still open on the referral (a re-sent referral, a flag tapped twice) is not added again."""
    # Compared here, not in SQL: JSON has no equality on PostgreSQL, and a referral has few needs.
    still_open = db.execute(select(Need.kinds, Need.words).where(
        Need.referral_id == referral.id, Need.source == source, Need.status != NeedStatus.resolved)).all()
    if (kinds, words) in [(k, w) for k, w in still_open]:
        return None
    need = Need(referral_id=referral.id, patient_id=referral.patient_id, clinic_id=referral.clinic_id,
                kinds=kinds, words=words, source=source, field_report_id=field_report_id, raised_at=now,
                raised_by_id=actor_id, status=NeedStatus.open)
    db.add(need)
    db.flush()
    timeline.record(db, referral, EventKind.need_raised,
                    payloads.NeedRaised(need_id=need.id, source=source, kinds=kinds),
                    actor_id=actor_id, occurred_at=now)
    return need


def from_referral(db: Session, referral: Referral, given: NeedsIn | None, *, source: str,
                  actor_id: int | None, now: dt.datetime) -> Need | None:
    """The referral's answer to "what else do you need?", when the patient named something."""
    kept = answer([str(p) for p in given.picks], given.words) if given is not None else None
    if kept is None:
        return None
    return raise_need(db, referral, kinds=kept[0], words=kept[1], source=source, actor_id=actor_id, now=now)


def from_driver_flag(db: Session, report: FieldReport, stop: Stop, *, now: dt.datetime) -> Need | None:
    """A driver's flag that is a need ("no working fridge", "asked for help") joins the clinic's list."""
    kind = DRIVER_FLAGS.get(FieldReportKind(report.kind))
    if kind is None:
        return None
    referral = db.scalar(select(Referral).join(Order, Order.referral_id == Referral.id)
                         .where(Order.id == stop.order_id))
    if referral is None:
        return None
    return raise_need(db, referral, kinds=[kind.value], words=report.detail, source=DRIVER,
                      actor_id=report.user_id, now=now, field_report_id=report.id)


def mark(db: Session, ctx: AuditContext, need: Need, *, status: str, note: str, now: dt.datetime) -> None:
    """Clinic staff referred the need on or resolved it; the note goes on the timeline."""
    after = check_move(need.status, status)
    text = " ".join(note.split()) or None
    if text is not None and len(text) > NOTE_MAX:
        raise FieldError(f"Keep the note under {NOTE_MAX} characters.", "note")
    before = need.status
    need.status, need.note, need.updated_at, need.updated_by_id = after, text, now, ctx.user_id
    referral = db.get(Referral, need.referral_id)
    assert referral is not None
    kind = EventKind.need_resolved if after is NeedStatus.resolved else EventKind.need_referred_on
    timeline.record(db, referral, kind,
                    payloads.NeedUpdated(need_id=need.id, before=before, after=after, note=text),
                    actor_id=ctx.user_id, occurred_at=now)
    audit.record(db, ctx, "U", "need", need.id, patient_id=need.patient_id, detail=f"{before} -> {after}")
    db.flush()


# --- reads ----------------------------------------------------------------------------------


def worklist(db: Session, clinic_id: int, *, include_resolved: bool = False, limit: int = 300) -> list[Need]:
    """The clinic's needs: open first, then referred on (newest first within each)."""
    query = select(Need).where(Need.clinic_id == clinic_id)
    if not include_resolved:
        query = query.where(Need.status != NeedStatus.resolved)
    order = case((Need.status == NeedStatus.open, 0), (Need.status == NeedStatus.referred_on, 1), else_=2)
    return list(db.scalars(query.order_by(order, Need.raised_at.desc(), Need.id.desc()).limit(limit)))


def clinic_need(db: Session, clinic_ids: list[int], need_id: int) -> Need:
    """One need of these clinics; another clinic's is not found (its existence is not revealed)."""
    need = db.get(Need, need_id)
    if need is None or need.clinic_id not in clinic_ids:
        raise NotFoundError(f"No need {need_id} on your clinic's list.")
    return need


def of_referral(db: Session, referral_id: int) -> list[Need]:
    return list(db.scalars(select(Need).where(Need.referral_id == referral_id).order_by(Need.id)))
