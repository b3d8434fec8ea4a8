"""The driver's pages in the driver's language: gettext catalogues and Babel formatting.

Adding a language is adding a catalogue: `delivery/locale/<code>/LC_MESSAGES/messages.po`
(`pybabel extract -F babel.cfg -o delivery/locale/messages.pot .`, then `pybabel init` or
`update`, translate, `pybabel compile -d delivery/locale`). The driver picks a language on their
pages; it is remembered on their account, and before that the browser's Accept-Language decides.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
DEFAULT = "en"


@cache
def available() -> tuple[str, ...]:
    """English (the source language) and every language with a compiled catalogue."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob("*/LC_MESSAGES/messages.mo"))
    return (DEFAULT, *[code for code in found if code != DEFAULT])


def language_name(code: str, in_locale: str | None = None) -> str:
    """`es` → "Español" (or the name in another locale); the code itself when unknown."""
    try:
        return Locale.parse(code).get_display_name(in_locale or code) or code
    except (ValueError, UnknownLocaleError):
        return code


@cache
def translations(locale: str) -> NullTranslations:
    if locale == DEFAULT:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [locale])


def choose(saved: str | None, accept_language: str | None) -> str:
    """The driver's saved choice, else the first Accept-Language we have, else English."""
    if saved in available():
        return saved  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().split("-")[0].lower()
        if code in available():
            return code
    return DEFAULT


def template_context(locale: str) -> dict[str, Any]:
    """What a translated template uses: `_`, `ngettext` (with keyword placeholders, as Jinja's
    new-style gettext: `_("Start %(time)s", time=t)`, `ngettext("%(num)d box", "%(num)d boxes", n)`)
    and dates and times in the locale."""
    t = translations(locale)

    def gettext(message: str, **values: Any) -> str:
        text = t.gettext(message)
        return text % values if values else text

    def ngettext(singular: str, plural: str, num: int, **values: Any) -> str:
        return t.ngettext(singular, plural, num) % {"num": num, **values}

    def date(day: dt.date, fmt: str = "full") -> str:
        return format_date(day, format=fmt, locale=locale)

    def time(moment: dt.time, fmt: str = "short") -> str:
        return format_time(moment, format=fmt, locale=locale)

    return {"_": gettext, "ngettext": ngettext, "locale": locale, "format_date": date,
            "format_time": time, "language_name": lambda code: language_name(code, locale),
            "languages": [(c, language_name(c)) for c in available()]}
