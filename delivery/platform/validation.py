"""Plain words for what a msgspec schema refuses, written from the schema itself.

msgspec says *where* (the `$.patient.floor` path of its ValidationError) and we say *what*, from
the field's own constraints and title ("Floor must be between -5 and 200."), never by rewriting
msgspec's English. A rule across fields is a `RuleError` raised in a Struct's `__post_init__`:
msgspec keeps it as the cause, so the fields it names are known without reading its message.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LINE_BREAK = re.compile(r"[\t\r\n]")
# One line of text with something to read: no control characters (a NUL byte breaks PostgreSQL and
# CSV exports), not only spaces.
ONE_LINE = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
# Free text over several lines: tabs and line breaks allowed, other control characters not.
LINES = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class RuleError(ValueError):
    """A rule across fields (raise it in `__post_init__`); `fields` are the ones to fix."""

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields


def error_path(exc: msgspec.ValidationError) -> tuple[str, ...]:
    """Where msgspec found the problem: `$.patient.dietary[1]` → ("patient", "dietary")."""
    _, marker, location = str(exc).rpartition(" - at `$")
    if not marker:
        return ()
    return tuple(part for part in re.split(r"[.\[\]]", location.rstrip("`")) if part and not part.isdigit())


def rule_of(exc: msgspec.ValidationError) -> RuleError | None:
    """The RuleError behind a ValidationError, if a rule across fields was broken."""
    cause = exc.__cause__
    return cause if isinstance(cause, RuleError) else None


def label_of(name: str, annotation: Any) -> str:
    """The field's title in the schema, else its name in words ("postal_code" → "Postal code")."""
    info = mi.type_info(annotation)
    for candidate in (info, *getattr(info, "types", ())):
        if isinstance(candidate, mi.Metadata) and (candidate.extra_json_schema or {}).get("title"):
            return str(candidate.extra_json_schema["title"])  # type: ignore[index]
    return name.replace("_", " ").capitalize()


def explain(annotation: Any, value: Any, label: str) -> str:
    """Why `value` is not a valid `annotation`, as a sentence starting with `label`."""
    return _explain(mi.type_info(annotation), value, label, hint=None)


def _explain(info: mi.Type, value: Any, label: str, hint: str | None) -> str:
    if isinstance(info, mi.Metadata):
        return _explain(info.type, value, label, (info.extra or {}).get("hint", hint))
    if isinstance(info, mi.UnionType):
        types = [t for t in info.types if not isinstance(t, mi.NoneType)]
        return _explain(types[0], value, label, hint) if len(types) == 1 else f"{label} is not valid."
    if isinstance(info, mi.IntType | mi.FloatType):
        return _number(info, value, label)
    if isinstance(info, mi.StrType):
        return _text(info, str(value), label, hint)
    if isinstance(info, mi.EnumType | mi.LiteralType):
        values = [str(getattr(v, "value", v)) for v in
                  (info.cls if isinstance(info, mi.EnumType) else info.values)]
        return f"{label} must be one of: {', '.join(values)}."
    if isinstance(info, mi.DateType):
        return f"{label} must be a real date as YYYY-MM-DD, such as 1948-03-02."
    if isinstance(info, mi.TimeType):
        return f"{label} must be a time as HH:MM (24-hour), such as 09:30."
    if isinstance(info, mi.BoolType):
        return f"{label} must be yes or no."
    if isinstance(info, mi.ListType):
        items = value if isinstance(value, list) else [value]
        if info.max_length is not None and len(items) > info.max_length:
            return f"{label} can have at most {info.max_length} items."
        return _explain(info.item_type, _first_bad(info.item_type, items), label, hint)
    return f"{label} is not valid."


def _first_bad(item: mi.Type, items: list[Any]) -> Any:
    for value in items:
        try:
            msgspec.convert(value, _python_type(item), strict=False)
        except (msgspec.ValidationError, TypeError):
            return value
    return items[0] if items else None


def _python_type(info: mi.Type) -> Any:
    return info.cls if isinstance(info, mi.EnumType) else Any


def _number(info: mi.IntType | mi.FloatType, value: Any, label: str) -> str:
    whole = isinstance(info, mi.IntType)
    low = info.ge if info.ge is not None else info.gt
    high = info.le if info.le is not None else info.lt
    try:
        number = int(str(value).strip()) if whole else float(str(value).strip())
    except ValueError:
        return f"{label} must be a whole number." if whole else f"{label} must be a number."
    in_range = (low is None or number >= low) and (high is None or number <= high)
    if low is not None and high is not None:
        return f"{label} must be between {low} and {high}." if not in_range else f"{label} is not valid."
    if low is not None:
        return f"{label} must be {low} or more."
    if high is not None:
        return f"{label} must be {high} or less."
    return f"{label} is not valid."


def _text(info: mi.StrType, value: str, label: str, hint: str | None) -> str:
    if info.min_length and len(value) < info.min_length:
        return f"{label} is required." if info.min_length == 1 else (
            f"{label} must be at least {info.min_length} characters.")
    if info.max_length is not None and len(value) > info.max_length:
        return f"{label} must be at most {info.max_length} characters."
    if CONTROL.search(value) or (info.pattern == ONE_LINE and LINE_BREAK.search(value)):
        return f"{label} contains a control character (such as a NUL byte or a line break): remove it."
    if info.pattern and not value.strip():
        return f"{label} cannot be only spaces."
    if hint:
        return f"{label}: {hint}"
    return f"{label} is not in the expected format."
