"""The texts, in the patient's language: a Babel catalogue of domain `sms` per language.

The English source strings are below (marked with `N_` so `pybabel extract` finds them); the
translations live in `delivery/locale/<code>/LC_MESSAGES/sms.po`:
    pybabel extract -k N_ -o delivery/locale/sms.pot delivery/loop/messages/templates.py
    pybabel update -D sms -i delivery/locale/sms.pot -d delivery/locale
    pybabel compile -D sms -d delivery/locale
A template names its values (`%(start)s`); `render` refuses a value left out or left over, and the
catalogue test checks every translation keeps every placeholder. Texts never carry a name.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from pathlib import Path

from babel.dates import format_date, format_time
from babel.support import NullTranslations, Translations

from delivery.models import TextKind

LOCALE_DIR = Path(__file__).resolve().parents[2] / "locale"  # beside the pages' catalogues
DOMAIN = "sms"
DEFAULT = "en"


def N_(message: str) -> str:
    return message


TEMPLATES: dict[TextKind, str] = {
    TextKind.day_before: N_("Your produce box arrives tomorrow between %(start)s and %(end)s. "
                            "Reply 1 if you'll be home, 2 to skip this week."),
    TextKind.delivered: N_("Your produce box was delivered at %(time)s."),
    TextKind.left_at_door: N_("Your box was left at your door at %(time)s."),
    TextKind.missed: N_("We missed you today; we'll try again on %(day)s."),
}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")

# A patient's language (DESIGN.md codes, maybe with a region or script) → the catalogue to use.
# Cantonese readers and zh-Hant get Traditional characters; other Chinese, Simplified.
CATALOGUE_OF = {"yue": "zh_Hant", "zh-hant": "zh_Hant", "zh-tw": "zh_Hant", "zh-hk": "zh_Hant"}


@cache
def shipped() -> tuple[str, ...]:
    """English (the source) and every language with a compiled `sms` catalogue."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo"))
    return (DEFAULT, *[code for code in found if code != DEFAULT])


def catalogue_for(language: str | None) -> str:
    """The catalogue a patient's language reads: the exact one, else its base language, else English."""
    code = (language or DEFAULT).lower()
    if code in CATALOGUE_OF and CATALOGUE_OF[code] in shipped():
        return CATALOGUE_OF[code]
    base = code.split("-")[0]
    return base if base in shipped() else DEFAULT


@cache
def _translations(catalogue: str) -> NullTranslations:
    if catalogue == DEFAULT:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [catalogue], domain=DOMAIN)


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def render(kind: TextKind, catalogue: str, **values: str) -> str:
    """The text of `kind` in a catalogue, with its values; KeyError names a value that is missing
    or not in the template."""
    template = _translations(catalogue).gettext(TEMPLATES[kind])
    wanted = placeholders(template)
    if wanted != set(values):
        raise KeyError(f"{kind} in {catalogue} takes {sorted(wanted)}, given {sorted(values)}")
    return template % values


def babel_locale(catalogue: str) -> str:
    return catalogue if catalogue != DEFAULT else "en_US"


def clock_time(moment: dt.time, catalogue: str) -> str:
    """A time as people write it in that language (10:42 AM, 10:42, 上午10:42). Plain spaces: CLDR's
    narrow no-break space would make the whole text UCS-2, halving what fits in one SMS."""
    written = format_time(moment, format="short", locale=babel_locale(catalogue))
    return written.replace("\u202f", " ").replace("\xa0", " ")


def weekday(day: dt.date, catalogue: str) -> str:
    """The day of a retry as the patient says it ("Tuesday", "martes", "星期二", "Thứ Ba")."""
    return format_date(day, format="EEEE", locale=babel_locale(catalogue))
