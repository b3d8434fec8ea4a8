"""Texts to patients: made from the timeline and from a published plan, sent by the `text_send` job.

- `from_event` (job `text_event`, queued by `events.record`): delivered, left at the door, or a
  failed attempt rescheduled ("we'll try again on Tuesday") becomes one `TextMessage`.
- `day_before` (job `text_day_before`, queued at each publication): one text per routed stop.
- `send` (job `text_send`, one per text, run at its `send_after`): checks again that the text is
  still true and wanted (consent, do-not-contact, opt-out, the stop's state, quiet hours), then
  hands it to Twilio with no transaction open. A 4xx from Twilio (21211 invalid number, 21614 not a
  mobile, 21610 unsubscribed…) is final and recorded; a 429 (20429), a 5xx or a dropped connection
  fails the attempt and the runner retries with backoff. A program with texting off (the default,
  and the demo) records the text as `not_sent`: the outbox page lists what would have gone.

Making a text twice is harmless (`TextMessage.about` is unique). Sending is at least once: a worker
killed between Twilio's answer and our commit sends that text again on the retry.
Bodies and numbers are never logged; each handover to Twilio is audited (it discloses the number).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from delivery.field.confirmations import UNDO_WINDOW
from delivery.loop.messages import rules, templates
from delivery.models import (
    EventKind,
    Job,
    Organization,
    Patient,
    Plan,
    PlanStatus,
    Referral,
    ReferralEvent,
    Route,
    Stop,
    StopStatus,
    TextKind,
    TextMessage,
    TextState,
)
from delivery.platform import audit, jobs
from delivery.platform.audit import AuditContext
from delivery.platform.clock import zone
from delivery.platform.jobs import JobContext
from delivery.platform.settings import Settings
from delivery.timeline import patient_texts

log = logging.getLogger("delivery.loop.messages")
SEND_JOB = "text_send"
WORKER = AuditContext(client_id="worker:text_send")
STATUS_PATH = "/sms/status"
OPTED_OUT_AT_CARRIER = 21610  # Twilio: the number replied STOP to our sender before
_twilio_log = logging.getLogger("delivery.loop.messages.twilio")
_twilio_log.setLevel(logging.WARNING)  # twilio logs each request's parameters (the number) at INFO


def configured(settings: Settings) -> bool:
    return bool(settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from)


def client(settings: Settings) -> Client:
    """A Twilio client for the settings' account; its API base moved when `twilio_api_url` is set."""
    made = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                  http_client=TwilioHttpClient(timeout=settings.twilio_timeout_s, logger=_twilio_log))
    if settings.twilio_api_url:
        made.api.base_url = settings.twilio_api_url
    return made


# --- making texts ---------------------------------------------------------------------------------


def _add(db: Session, food_bank: Organization, patient: Patient, about: str, kind: TextKind,
         body: str, send_after: dt.datetime, stop_id: int | None) -> TextMessage | None:
    """A queued text and its send job, unless one about the same thing exists already."""
    if db.scalar(select(TextMessage.id).where(TextMessage.about == about)) is not None:
        return None
    text = TextMessage(food_bank_id=food_bank.id, patient_id=patient.id, stop_id=stop_id, about=about,
                       kind=kind, language=templates.catalogue_for(patient.language), body=body,
                       to_number=rules.e164(patient.phone), state=TextState.queued,
                       send_after=send_after)
    try:
        with db.begin_nested():  # a second worker on the same event made it first: theirs stands
            db.add(text)
    except IntegrityError:
        return None
    jobs.enqueue(db, SEND_JOB, {"text_id": text.id}, run_after=send_after, max_attempts=6)
    return text


def event_text(db: Session, event: ReferralEvent, now: dt.datetime) -> TextMessage | None:
    """The text an event calls for (in the caller's transaction), or None when it calls for none."""
    referral = db.get(Referral, event.referral_id)
    if referral is None or EventKind(event.kind) not in patient_texts.TOLD:
        return None
    patient, food_bank = referral.patient, db.get(Organization, referral.food_bank_id)
    assert food_bank is not None
    if rules.may_text(patient) is not None:
        return None
    language = templates.catalogue_for(patient.language)
    tz = food_bank.timezone
    if event.kind == EventKind.rescheduled:
        to_date = dt.date.fromisoformat(event.data["to_date"])
        kind, stop_id = TextKind.missed, event.data.get("stop_id")
        body = templates.render(kind, language, day=templates.weekday(to_date, language))
        after = now
    else:
        kind = TextKind.delivered if event.kind == EventKind.delivered else TextKind.left_at_door
        stop_id = event.data["stop_id"]
        at = event.at.astimezone(zone(tz)).time()
        body = templates.render(kind, language, time=templates.clock_time(at, language))
        after = now + UNDO_WINDOW  # the driver may still take it back (the send checks again)
    return _add(db, food_bank, patient, f"event:{event.id}", kind, body, rules.not_before(after, tz),
                stop_id)


def day_before_body(stop: Stop, language: str) -> str | None:
    hours = rules.window(stop.eta, stop.window_start, stop.window_end)
    if hours is None:
        return None
    return templates.render(TextKind.day_before, language, start=templates.clock_time(hours[0], language),
                            end=templates.clock_time(hours[1], language))


def plan_texts(db: Session, plan: Plan, now: dt.datetime) -> list[TextMessage]:
    """The day-before texts of a published plan's routed stops (those not made yet)."""
    food_bank = db.get(Organization, plan.food_bank_id)
    assert food_bank is not None
    when = rules.day_before_at(plan.date, food_bank.timezone, now)
    if plan.status != PlanStatus.published or when is None:
        return []
    stops = db.scalars(select(Stop).join(Route, Route.id == Stop.route_id)
                       .where(Stop.plan_id == plan.id, Stop.status == StopStatus.pending,
                              Route.published_version.is_not(None)).order_by(Stop.id)).unique()
    made = []
    for stop in stops:
        body = day_before_body(stop, templates.catalogue_for(stop.patient.language))
        if rules.may_text(stop.patient) is not None or body is None:
            continue
        text = _add(db, food_bank, stop.patient, f"day_before:{stop.id}", TextKind.day_before, body,
                    when, stop.id)
        if text is not None:
            made.append(text)
    return made


def from_event(ctx: JobContext) -> None:
    with ctx.database.writer() as db:
        event = db.get(ReferralEvent, ctx.payload["event_id"])
        if event is not None:
            event_text(db, event, ctx.clock.now())
        db.commit()


def day_before(ctx: JobContext) -> None:
    with ctx.database.writer() as db:
        plan = db.get(Plan, ctx.payload["plan_id"])
        if plan is not None:
            plan_texts(db, plan, ctx.clock.now())
        db.commit()


# --- sending --------------------------------------------------------------------------------------


def not_wanted(db: Session, text: TextMessage, food_bank: Organization, now: dt.datetime) -> str | None:
    """Why a queued text must not go now (it is cancelled), or None."""
    why = rules.may_text(text.patient)
    if why is not None:
        return f"Not sent: {why}."
    stop = db.get(Stop, text.stop_id) if text.stop_id is not None else None
    if text.kind == TextKind.day_before:
        plan = db.get(Plan, stop.plan_id) if stop else None
        if stop is None or plan is None or stop.status != StopStatus.pending or stop.route_id is None:
            return "Not sent: the stop is no longer on a route."
        if rules.day_before_at(plan.date, food_bank.timezone, now) is None:
            return "Not sent: too late for a day-before text."
    elif text.kind in (TextKind.delivered, TextKind.left_at_door):
        if stop is None or stop.status != StopStatus.delivered:
            return "Not sent: the driver withdrew the confirmation."
    elif text.kind == TextKind.missed and (stop is None or stop.status != StopStatus.pending):
        return "Not sent: the retry is no longer planned."
    return None


def _ready(db: Session, text: TextMessage, settings: Settings, now: dt.datetime) -> bool:
    """Settle a queued text that is not to be sent now; True when it should go to Twilio."""
    food_bank = db.get(Organization, text.food_bank_id)
    assert food_bank is not None
    why = not_wanted(db, text, food_bank, now)
    if why is not None:
        text.state, text.error = TextState.cancelled, why
        return False
    if rules.quiet(now, food_bank.timezone):  # queued in the evening, or retried into the night
        text.send_after = rules.not_before(now, food_bank.timezone)
        jobs.enqueue(db, SEND_JOB, {"text_id": text.id}, run_after=text.send_after, max_attempts=6)
        return False
    if text.kind == TextKind.day_before:  # the plan may have moved the stop since it was made
        stop = db.get(Stop, text.stop_id)
        text.body = day_before_body(stop, text.language) or text.body  # type: ignore[arg-type]
    text.to_number = rules.e164(text.patient.phone)
    if not food_bank.texts_enabled or not configured(settings):
        text.state, text.error = TextState.not_sent, "Texting is off: this is what would have been sent."
        return False
    return True


def send(ctx: JobContext) -> None:
    """Send one text (job `text_send`); raising retries it (a 429, a 5xx, no connection)."""
    text_id, settings, now = ctx.payload["text_id"], ctx.settings, ctx.clock.now()
    with ctx.database.writer() as db:
        text = db.get(TextMessage, text_id)
        if text is None or text.state != TextState.queued:
            return
        go = _ready(db, text, settings, now)
        to, body, base = text.to_number, text.body, settings.base_url.rstrip("/")
        db.commit()
    if not go:
        return
    try:
        sent = client(settings).messages.create(to=to, body=body, status_callback=base + STATUS_PATH,
                                                **_sender(settings))
    except TwilioRestException as exc:
        if exc.status == 429 or exc.status >= 500:
            raise RuntimeError(f"Twilio answered {exc.status} (code {exc.code}): try again") from exc
        _refused(ctx, text_id, exc, now)
        return
    with ctx.database.writer() as db:
        text = db.get(TextMessage, text_id)
        assert text is not None
        text.state, text.provider_sid, text.sent_at = TextState.sent, sent.sid, now
        text.error = text.error_code = None
        audit.record(db, WORKER, "E", "text_message", text.id, patient_id=text.patient_id,
                     detail=f"{text.kind} text handed to Twilio ({text.language})")
        db.commit()


def _sender(settings: Settings) -> dict[str, str]:
    sender = settings.twilio_from
    return {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}


def _refused(ctx: JobContext, text_id: int, exc: TwilioRestException, now: dt.datetime) -> None:
    """Twilio refused the text for good (a bad number, an unsubscribed one): record it, no retry."""
    with ctx.database.writer() as db:
        text = db.get(TextMessage, text_id)
        assert text is not None
        text.state, text.error_code = TextState.failed, exc.code
        text.error = f"Twilio refused it ({exc.status}, code {exc.code}): {exc.msg}"[:300]
        if exc.code == OPTED_OUT_AT_CARRIER and text.patient.texts_stopped_at is None:
            text.patient.texts_stopped_at = now
        audit.record(db, WORKER, "E", "text_message", text.id, patient_id=text.patient_id,
                     outcome="refused", detail=f"{text.kind} text refused by Twilio, code {exc.code}")
        db.commit()
    log.warning("text %s refused by Twilio: code %s", text_id, exc.code)


def gave_up(db: Session, job: Job) -> None:
    """Retries ran out (Twilio kept answering 429/5xx, or could not be reached)."""
    text = db.get(TextMessage, job.payload.get("text_id"))
    if text is not None and text.state == TextState.queued:
        text.state, text.error = TextState.failed, f"Gave up after {job.attempts} attempts: {job.error}"[:300]


def job_kinds() -> list[jobs.Kind]:
    """text_send retried after about 30 s, 1, 2, 4, 8 minutes (Twilio's rate limit passes in seconds)."""
    return [jobs.Kind(SEND_JOB, send, backoff=jobs.exponential(first_s=30.0, max_s=900.0),
                      on_give_up=gave_up),
            jobs.Kind(patient_texts.EVENT_JOB, from_event),
            jobs.Kind(patient_texts.DAY_BEFORE_JOB, day_before)]


def recent(db: Session, food_bank_ids: list[int], limit: int = 200) -> list[TextMessage]:
    """The outbox page: the newest texts of these programs, whatever their state."""
    return list(db.scalars(select(TextMessage).where(TextMessage.food_bank_id.in_(food_bank_ids))
                           .order_by(TextMessage.id.desc()).limit(limit)).unique())


def set_texting(db: Session, ctx: AuditContext, food_bank: Organization, enabled: bool) -> None:
    """Turn texting on or off for a program (audited as a program setting)."""
    if food_bank.texts_enabled != enabled:
        audit.record(db, ctx, "U", "program_settings", food_bank.id,
                     detail=f"texts to patients: {'off → on' if enabled else 'on → off'}")
        food_bank.texts_enabled = enabled
        db.flush()


def cancel_queued(db: Session, patient_ids: list[int], why: str) -> int:
    """Cancel every queued text to these patients (an opt-out is honoured at once)."""
    queued = db.scalars(select(TextMessage).where(TextMessage.patient_id.in_(patient_ids),
                                                  TextMessage.state == TextState.queued)).unique().all()
    for text in queued:
        text.state, text.error = TextState.cancelled, why
    return len(queued)
