"""The rules of texting patients as plain functions: quiet hours, when the day-before text goes,
who may be texted, what a reply means, and phone numbers in E.164."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from zoneinfo import ZoneInfo

import phonenumbers

from delivery.models import Patient, ReplyMeaning

QUIET_FROM = dt.time(20, 0)  # no texts from 8 pm …
QUIET_UNTIL = dt.time(8, 0)  # … to 8 am, program time
DAY_BEFORE_AT = dt.time(10, 0)  # the day-before text, when the plan is published in time

# Opt-out words in each language of the patient list, as `normalise` leaves them (no accents,
# upper case). Carriers' own English words (CTIA) and their usual translations.
OPT_OUT = {
    "en": {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT", "REVOKE"},
    "es": {"ALTO", "PARA", "PARAR", "PARE", "BAJA", "CANCELAR", "DETENER", "NO MAS"},
    "zh": {"停止", "退订", "退訂", "取消", "不要再发", "不要再發"},
    "vi": {"DUNG", "DUNG LAI", "NGUNG", "HUY", "THOI"},
}
RESUME = {"START", "UNSTOP"}  # what carriers and Twilio take back an opt-out with
HOME = {"1", "SI", "是", "CO"}
SKIP = {"2", "SKIP", "OMITIR", "跳过", "跳過", "BO QUA"}


def normalise(text: str) -> str:
    """A reply as compared: full-width digits made plain (NFKC), accents dropped (đ → d too),
    punctuation and extra spaces gone, upper case."""
    text = unicodedata.normalize("NFKC", text).replace("đ", "d").replace("Đ", "D")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.upper().split())


def meaning(body: str) -> ReplyMeaning:
    """1 (home), 2 (skip this week), an opt-out word in any language, START after one, or anything else."""
    said = normalise(body)
    if said in HOME:
        return ReplyMeaning.home
    if said in SKIP:
        return ReplyMeaning.skip
    if any(said in words for words in OPT_OUT.values()):
        return ReplyMeaning.stop
    if said in RESUME:
        return ReplyMeaning.start
    return ReplyMeaning.other


def may_text(patient: Patient) -> str | None:
    """Why this patient must not be texted, or None when they may be."""
    if patient.do_not_contact:
        return "do not contact"
    if not patient.text_consent:
        return "no consent to texts"
    if patient.texts_stopped_at is not None:
        return "opted out of texts"
    if e164(patient.phone) is None:
        return "no usable phone number"
    return None


def e164(phone: str | None, region: str = "US") -> str | None:
    """+15105550101 from "(510) 555-0101" and the like; None when it is not a possible number."""
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def quiet(at: dt.datetime, timezone: str) -> bool:
    """Is `at` within quiet hours (8 pm – 8 am) where the program is?"""
    local = at.astimezone(ZoneInfo(timezone)).time()
    return local >= QUIET_FROM or local < QUIET_UNTIL


def not_before(at: dt.datetime, timezone: str) -> dt.datetime:
    """`at`, or 8 am the next morning (program time) when `at` falls in quiet hours. Built from the
    local wall clock, so 8 am stays 8 am across a daylight-saving change."""
    if not quiet(at, timezone):
        return at
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    day = local.date() if local.time() < QUIET_UNTIL else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, QUIET_UNTIL, tzinfo=zone).astimezone(dt.UTC)


def day_before_at(date: dt.date, timezone: str, now: dt.datetime) -> dt.datetime | None:
    """When the day-before text for a delivery on `date` goes: 10 am the day before, or now if the
    plan was published later that day; None once it is quiet hours of the evening before (it
    would arrive on the day itself, saying "tomorrow")."""
    zone = ZoneInfo(timezone)
    eve = date - dt.timedelta(days=1)
    planned = dt.datetime.combine(eve, DAY_BEFORE_AT, tzinfo=zone)
    last = dt.datetime.combine(eve, QUIET_FROM, tzinfo=zone)
    if now >= last:
        return None
    return not_before(max(planned, now), timezone).astimezone(dt.UTC)


def window(eta_s: int | None, start_s: int | None, end_s: int | None) -> tuple[dt.time, dt.time] | None:
    """The two hours told to the patient: the stop's own window when it has one, else the hour of
    its planned arrival and the next two (10:40 → 10 to 12)."""
    if start_s is not None and end_s is not None:
        return _time(start_s), _time(end_s)
    if eta_s is None:
        return None
    hour = eta_s // 3600
    return dt.time(hour % 24), dt.time(min(hour + 2, 23) % 24)


def _time(seconds: int) -> dt.time:
    return dt.time(seconds // 3600 % 24, seconds % 3600 // 60)
