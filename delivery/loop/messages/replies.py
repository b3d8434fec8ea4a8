"""What a patient texts back, and the coordinators' inbox of texts a person must read.

`receive` takes one inbound text (Twilio's webhook, its signature already checked by the caller):
- an opt-out word in any language (STOP, ALTO, 停止, DỪNG…): every patient with that number stops
  getting texts at once (`Patient.texts_stopped_at`, audited) and their queued texts are cancelled;
  START or UNSTOP takes that back (for patients who had agreed to texts);
- 1: the patient will be home; noted on the text it answers;
- 2: skip this week: the stop of the day-before text it answers is taken off the day through the
  one stop-removal path (`delivery.plans.edits.remove_stop`, which writes the timeline) while its
  day is still ahead, and the coordinator is told in the inbox (republish so the driver sees it);
- anything else goes to the inbox.
A reply is matched to the newest text sent to that number in the last week; Twilio retrying its
webhook gives the same MessageSid, which is kept once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.loop.messages import outgoing, rules
from delivery.models import (
    InboundText,
    Organization,
    Patient,
    Plan,
    PlanStatus,
    ReplyMeaning,
    Stop,
    StopStatus,
    TextKind,
    TextMessage,
    TextState,
)
from delivery.plans import edits
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.clock import zone
from delivery.platform.errors import NotFoundError
from delivery.platform.settings import Settings

ANSWER_WITHIN = dt.timedelta(days=7)
SKIP_REASON = "The patient replied 2 to the day-before text: skip this week."


def answered_text(db: Session, number: str, now: dt.datetime) -> TextMessage | None:
    """The newest text that went to this number within the last week: what a reply answers."""
    return db.scalars(select(TextMessage).where(
        TextMessage.to_number == number, TextMessage.state.in_((TextState.sent, TextState.delivered)),
        TextMessage.created_at >= now - ANSWER_WITHIN).order_by(TextMessage.id.desc()).limit(1)).first()


def patients_with(db: Session, number: str) -> list[Patient]:
    """Every patient whose phone is this number, however it was written ((510) 555-0101, +1510…)."""
    tail = number[-4:]
    found = db.scalars(select(Patient).where(Patient.phone.like(f"%{tail}"))).unique()
    return [p for p in found if rules.e164(p.phone) == number]


def receive(db: Session, settings: Settings, *, sid: str, from_number: str, body: str,
            now: dt.datetime) -> InboundText:
    """Record an inbound text and act on it (in the caller's transaction)."""
    seen = db.scalar(select(InboundText).where(InboundText.provider_sid == sid))
    if seen is not None:
        return seen
    number = rules.e164(from_number) or from_number[:20]
    answered = answered_text(db, number, now)
    patients = patients_with(db, number)
    patient = answered.patient if answered else (patients[0] if patients else None)
    food_bank_id = answered.food_bank_id if answered else _food_bank_of(db, patient)
    meaning = rules.meaning(body)
    if meaning is ReplyMeaning.skip and (answered is None or answered.kind != TextKind.day_before):
        meaning = ReplyMeaning.other  # a "2" with no day-before text to answer: a person reads it
    item = InboundText(food_bank_id=food_bank_id, patient_id=patient.id if patient else None,
                       answers_id=answered.id if answered else None, provider_sid=sid[:64],
                       from_number=number, body=body[:1600], meaning=meaning, outcome="",
                       needs_attention=False, received_at=now)
    if meaning is ReplyMeaning.stop:
        item.outcome = _opt_out(db, patients or ([patient] if patient else []), now)
    elif meaning is ReplyMeaning.start:
        item.outcome = _resume(db, patients)
    elif meaning is ReplyMeaning.home:
        item.outcome = "Will be home for the delivery."
    elif meaning is ReplyMeaning.skip:
        assert answered is not None
        item.outcome, item.needs_attention = _skip(db, settings, answered, now), True
    else:
        item.outcome, item.needs_attention = "Not understood by the system: please read it.", True
    if answered is not None and meaning is not ReplyMeaning.other:
        answered.reply = meaning
    db.add(item)
    db.flush()
    return item


def _food_bank_of(db: Session, patient: Patient | None) -> int | None:
    if patient is None:
        return None
    clinic = db.get(Organization, patient.clinic_id)
    return clinic.food_bank_id if clinic else None


def _opt_out(db: Session, patients: list[Patient], now: dt.datetime) -> str:
    for patient in patients:
        if patient.texts_stopped_at is None:
            patient.texts_stopped_at = now
            audit.record(db, outgoing.WORKER, "U", "patient", patient.id, patient_id=patient.id,
                         detail="opted out of texts by reply")
    cancelled = outgoing.cancel_queued(db, [p.id for p in patients], "Not sent: the patient opted out.")
    if not patients:
        return "Opt-out from a number we do not know: nothing to stop."
    return f"Opted out of texts: no more will be sent ({cancelled} queued cancelled)."


def _resume(db: Session, patients: list[Patient]) -> str:
    """START after STOP: texts again for those who had agreed to them (never a new consent)."""
    resumed = [p for p in patients if p.texts_stopped_at is not None and p.text_consent]
    for patient in resumed:
        patient.texts_stopped_at = None
        audit.record(db, outgoing.WORKER, "U", "patient", patient.id, patient_id=patient.id,
                     detail="texts resumed by reply (START)")
    return "Texts resumed at the patient's request." if resumed else "START, but nothing was stopped."


def _skip(db: Session, settings: Settings, answered: TextMessage, now: dt.datetime) -> str:
    """Take the stop off its day if it is still ahead; say what happened, for the coordinator."""
    stop = db.get(Stop, answered.stop_id) if answered.stop_id is not None else None
    plan = db.get(Plan, stop.plan_id) if stop else None
    food_bank = db.get(Organization, answered.food_bank_id)
    assert food_bank is not None
    if stop is None or plan is None:
        return "Asked to skip this week, but the stop is gone: nothing to do."
    when = f"{plan.date:%a %d %b}"
    if stop.status != StopStatus.pending:
        return f"Asked to skip this week, but the stop of {when} is already {stop.status}."
    if now.astimezone(zone(food_bank.timezone)).date() >= plan.date:
        return (f"Asked to skip this week, but {when} is today or past: the driver may be on the way. "
                "Call the driver, or take the stop off the day by hand.")
    try:
        edits.remove_stop(db, plan.id, plan.version, stop.id, SKIP_REASON, settings)
    except (edits.EditError, edits.EditConflict) as exc:
        return f"Asked to skip this week; the stop could not be taken off {when}: {exc}"
    published = plan.status == PlanStatus.published
    republish = " Republish the day so the driver's route drops it." if published else ""
    return f"Skipping this week: the stop was taken off {when}.{republish}"


def inbox(db: Session, food_bank_ids: list[int], limit: int = 100) -> list[InboundText]:
    """Texts to read first (open ones, newest first), then the rest recently received."""
    return list(db.scalars(select(InboundText).where(InboundText.food_bank_id.in_(food_bank_ids))
                           .order_by(InboundText.handled_at.is_not(None), InboundText.id.desc())
                           .limit(limit)).unique())


def mark_handled(db: Session, ctx: AuditContext, item_id: int, food_bank_ids: list[int],
                 now: dt.datetime) -> InboundText:
    item = db.get(InboundText, item_id)
    if item is None or item.food_bank_id not in food_bank_ids:
        raise NotFoundError(f"No text {item_id} in your inbox.")
    if item.handled_at is None:
        item.handled_at, item.handled_by_id = now, ctx.user_id
        audit.record(db, ctx, "U", "inbound_text", item.id, patient_id=item.patient_id, detail="handled")
    return item


def status_callback(db: Session, *, sid: str, status: str, error_code: int | None, now: dt.datetime) -> None:
    """Twilio's word on a text it took: delivered, or not (then the error code, e.g. 30003)."""
    text = db.scalar(select(TextMessage).where(TextMessage.provider_sid == sid))
    if text is None or text.state not in (TextState.sent, TextState.delivered, TextState.undelivered):
        return
    if status == "delivered":
        text.state = TextState.delivered
    elif status in ("undelivered", "failed"):
        text.state, text.error_code = TextState.undelivered, error_code
        text.error = f"Twilio could not deliver it (code {error_code})."
        if error_code == outgoing.OPTED_OUT_AT_CARRIER and text.patient.texts_stopped_at is None:
            text.patient.texts_stopped_at = now
