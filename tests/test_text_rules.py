"""The rules of texting patients as plain functions: quiet hours across time zones and daylight-saving
changes, when the day-before text goes, what a reply means in each language, who may be texted,
and every template rendering in every shipped language with exactly its placeholders."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

from delivery.loop.messages import rules, templates
from delivery.models import Patient, ReplyMeaning, TextKind

LA, NY, HONOLULU = "America/Los_Angeles", "America/New_York", "Pacific/Honolulu"


def at(day: str, clock: str, tz: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize(("moment", "tz", "quiet"), [
    (at("2026-12-01", "07:59", LA), LA, True),
    (at("2026-12-01", "08:00", LA), LA, False),
    (at("2026-12-01", "19:59", LA), LA, False),
    (at("2026-12-01", "20:00", LA), LA, True),
    (at("2026-12-01", "22:30", NY), NY, True),
    (at("2026-12-01", "22:30", NY), LA, False),  # 10:30 pm in New York is 7:30 pm in Los Angeles
    (at("2026-12-01", "09:00", LA), NY, False),  # noon in New York
    (at("2026-12-01", "06:00", LA), HONOLULU, True),  # 4 am in Honolulu
])
def test_quiet_hours_are_the_programs_local_8pm_to_8am(moment: dt.datetime, tz: str, quiet: bool) -> None:
    """Quiet or not is decided on the program's own wall clock, wherever `now` was expressed."""
    assert rules.quiet(moment, tz) is quiet


@pytest.mark.parametrize(("moment", "tz", "expected"), [
    # evening: the next morning at 8
    (at("2026-12-01", "21:15", LA), LA, at("2026-12-02", "08:00", LA)),
    # small hours: the same morning at 8
    (at("2026-12-02", "03:00", LA), LA, at("2026-12-02", "08:00", LA)),
    # daytime: unchanged
    (at("2026-12-02", "13:00", LA), LA, at("2026-12-02", "13:00", LA)),
    # the night clocks go forward (8 Mar 2026, 2 am → 3 am): still 8 am local, now UTC-7
    (at("2026-03-07", "22:00", LA), LA, at("2026-03-08", "08:00", LA)),
    # the night clocks go back (1 Nov 2026, 2 am → 1 am, the 1 am hour twice): still 8 am, UTC-8
    (at("2026-10-31", "20:30", LA), LA, at("2026-11-01", "08:00", LA)),
    # Europe changes on other dates: Lisbon's clocks go back on 25 Oct 2026
    (at("2026-10-24", "23:00", "Europe/Lisbon"), "Europe/Lisbon", at("2026-10-25", "08:00", "Europe/Lisbon")),
])
def test_a_text_in_quiet_hours_waits_until_8am_local(moment: dt.datetime, tz: str,
                                                      expected: dt.datetime) -> None:
    got = rules.not_before(moment.astimezone(dt.UTC), tz)
    assert got == expected
    assert got.astimezone(ZoneInfo(tz)).time() == expected.astimezone(ZoneInfo(tz)).time()


def test_across_daylight_saving_8am_is_a_different_utc_hour() -> None:
    """The same 8 am is 16:00 UTC in winter and 15:00 UTC in summer: built from the wall clock."""
    winter = rules.not_before(at("2026-03-06", "21:00", LA), LA)  # → 8 am on the 7th, PST
    summer = rules.not_before(at("2026-03-07", "21:00", LA), LA)  # → 8 am on the 8th, PDT
    assert (winter.astimezone(dt.UTC).hour, summer.astimezone(dt.UTC).hour) == (16, 15)
    # the extra hour of 1 Nov: 1:30 am PDT and 1:30 am PST both wait for the same 8 am PST
    first = dt.datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo(LA), fold=0)
    second = dt.datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo(LA), fold=1)
    assert rules.not_before(first, LA) == rules.not_before(second, LA) == at("2026-11-01", "08:00", LA)


@pytest.mark.parametrize(("now", "expected"), [
    (at("2026-12-06", "15:00", LA), at("2026-12-07", "10:00", LA)),  # published days ahead
    (at("2026-12-07", "06:00", LA), at("2026-12-07", "10:00", LA)),  # that morning
    (at("2026-12-07", "16:00", LA), at("2026-12-07", "16:00", LA)),  # published late: at once
    (at("2026-12-07", "20:00", LA), None),  # the evening before: would say "tomorrow" too late
    (at("2026-12-08", "09:00", LA), None),  # the day itself
])
def test_the_day_before_text_goes_at_10_the_day_before_or_not_at_all(now: dt.datetime,
                                                                       expected: dt.datetime | None) -> None:
    assert rules.day_before_at(dt.date(2026, 12, 8), LA, now) == expected


def test_the_day_before_text_across_a_time_zone_keeps_local_10am() -> None:
    """A New York program's text goes at 10 am New York time, i.e. 7 am for a Los Angeles reader."""
    got = rules.day_before_at(dt.date(2026, 3, 9), NY, at("2026-03-01", "12:00", LA))
    assert got == at("2026-03-08", "10:00", NY)  # the day clocks change: still 10 local


@pytest.mark.parametrize(("body", "meaning"), [
    ("1", ReplyMeaning.home), (" 1 ", ReplyMeaning.home), ("1.", ReplyMeaning.home),
    ("１", ReplyMeaning.home),
    ("2", ReplyMeaning.skip), ("２", ReplyMeaning.skip), ("skip", ReplyMeaning.skip),
    ("STOP", ReplyMeaning.stop), ("stop", ReplyMeaning.stop), ("Stop.", ReplyMeaning.stop),
    ("unsubscribe", ReplyMeaning.stop), ("ALTO", ReplyMeaning.stop), ("alto", ReplyMeaning.stop),
    ("Baja", ReplyMeaning.stop), ("停止", ReplyMeaning.stop), ("退訂", ReplyMeaning.stop),
    ("dừng", ReplyMeaning.stop), ("DỪNG LẠI", ReplyMeaning.stop), ("Hủy", ReplyMeaning.stop),
    ("START", ReplyMeaning.start), ("unstop", ReplyMeaning.start),
    ("12", ReplyMeaning.other), ("stop by at noon please", ReplyMeaning.other),
    ("Can you come after 3?", ReplyMeaning.other), ("", ReplyMeaning.other),
])
def test_what_a_reply_means(body: str, meaning: ReplyMeaning) -> None:
    """1/2 (full-width digits too), opt-out words in every language (accents or not), else a person
    reads it."""
    assert rules.meaning(body) is meaning


def test_every_patient_language_has_opt_out_words() -> None:
    assert set(rules.OPT_OUT) >= {"en", "es", "zh", "vi"}
    for words in rules.OPT_OUT.values():
        assert all(rules.normalise(w) == w for w in words)  # stored as compared


def patient(**fields: object) -> Patient:
    base = {"phone": "(510) 555-0101", "text_consent": True, "do_not_contact": False,
            "texts_stopped_at": None}
    return Patient(**{**base, **fields})


@pytest.mark.parametrize(("fields", "why"), [
    ({}, None),
    ({"do_not_contact": True}, "do not contact"),
    ({"text_consent": False}, "no consent to texts"),
    ({"texts_stopped_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, "opted out of texts"),
    ({"phone": None}, "no usable phone number"),
    ({"phone": "12"}, "no usable phone number"),
])
def test_who_may_be_texted(fields: dict[str, object], why: str | None) -> None:
    assert rules.may_text(patient(**fields)) == why


def test_phone_numbers_become_e164() -> None:
    assert rules.e164("(510) 555-0101") == rules.e164("+1 510.555.0101") == "+15105550101"
    assert rules.e164("not a phone") is None


def test_the_window_told_is_the_stops_own_or_two_hours_from_the_planned_hour() -> None:
    assert rules.window(10 * 3600 + 40 * 60, None, None) == (dt.time(10), dt.time(12))
    assert rules.window(None, 9 * 3600, 11 * 3600 + 1800) == (dt.time(9), dt.time(11, 30))
    assert rules.window(None, None, None) is None


# --- templates ------------------------------------------------------------------------------------

VALUES = {"start": "10:00", "end": "12:00", "time": "10:42", "day": "Tuesday"}


def test_the_patient_list_languages_are_shipped() -> None:
    assert set(templates.shipped()) >= {"en", "es", "zh", "zh_Hant", "vi"}


@pytest.mark.parametrize("catalogue", templates.shipped())
@pytest.mark.parametrize("kind", list(TextKind))
def test_each_template_renders_in_each_language_with_its_placeholders(catalogue: str, kind: TextKind) -> None:
    """A translation that lost or renamed a placeholder fails here (render refuses a mismatch),
    as does one left untranslated (the English text came back)."""
    wanted = templates.placeholders(templates.TEMPLATES[kind])
    text = templates.render(kind, catalogue, **{k: VALUES[k] for k in wanted})
    assert "%(" not in text and all(VALUES[k] in text for k in wanted)
    if catalogue != templates.DEFAULT:
        assert text != templates.render(kind, templates.DEFAULT, **{k: VALUES[k] for k in wanted})


def test_a_missing_value_is_refused() -> None:
    with pytest.raises(KeyError, match="time"):
        templates.render(TextKind.delivered, "es")


@pytest.mark.parametrize("catalogue", [c for c in templates.shipped() if c != templates.DEFAULT])
def test_catalogues_match_the_source_templates(catalogue: str) -> None:
    """Every message `pybabel extract` finds is translated (not fuzzy) and keeps its placeholders."""
    found = {m for _line, m, _comments, _context in extract_from_file(
        "python", str(templates.Path(templates.__file__)), keywords={"N_": None})}
    with open(templates.LOCALE_DIR / catalogue / "LC_MESSAGES" / "sms.po", "rb") as f:
        po = read_po(f)
    assert found == set(templates.TEMPLATES.values())
    for message in found:
        entry = po.get(message)
        assert entry is not None and entry.string and not entry.fuzzy, message
        assert set(re.findall(r"%\((\w+)\)s", entry.string)) == templates.placeholders(message)
    assert [(m.id, e) for m, e in po.check() if e] == []


@pytest.mark.parametrize(("language", "catalogue"), [
    ("en", "en"), ("es", "es"), ("es-MX", "es"), ("ES", "es"), ("zh", "zh"), ("zh-Hans", "zh"),
    ("zh-Hant", "zh_Hant"), ("yue", "zh_Hant"), ("vi", "vi"), ("tl", "en"), (None, "en"),
])
def test_a_patients_language_picks_a_catalogue(language: str | None, catalogue: str) -> None:
    assert templates.catalogue_for(language) == catalogue


def test_times_and_days_are_written_in_the_language() -> None:
    assert templates.weekday(dt.date(2026, 12, 8), "es") == "martes"
    assert templates.weekday(dt.date(2026, 12, 8), "zh") == "星期二"
    assert templates.clock_time(dt.time(10, 42), "en") == "10:42 AM"  # a plain space, GSM-friendly
