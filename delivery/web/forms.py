"""HTML forms onto msgspec Structs, with one clear message per field instead of the first error only."""

from __future__ import annotations

import typing
from typing import Any

import msgspec

Errors = dict[str, str]


def _struct_type(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct inside `T`, `T | None` or `Annotated[T, ...]`, if there is one."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    for arg in typing.get_args(tp):
        found = _struct_type(arg)
        if found is not None:
            return found
    return None


def field_errors(struct: type[msgspec.Struct], data: dict[str, Any], prefix: str = "") -> Errors:
    """Check every field of `data` against `struct` on its own, so a person sees all problems at once.

    Keys of the result are dotted paths (`patient.address.postal_code`).
    """
    errors: Errors = {}
    hints = typing.get_type_hints(struct, include_extras=True)
    for field in msgspec.structs.fields(struct):
        path = f"{prefix}{field.encode_name}"
        if field.encode_name not in data:
            if field.required:
                errors[path] = "This is required."
            continue
        value = data[field.encode_name]
        nested = _struct_type(hints[field.name])
        if nested is not None and isinstance(value, dict):
            errors |= field_errors(nested, value, prefix=f"{path}.")
            continue
        try:
            msgspec.convert(value, hints[field.name], strict=False)
        except msgspec.ValidationError as exc:
            errors[path] = humanise(str(exc))
    return errors


def humanise(message: str) -> str:
    """msgspec's messages, minus the `- at $...` locator, in words a person can act on."""
    text = message.split(" - at `", 1)[0]
    replacements = {
        "Expected `str` of length >= 1": "This is required.",
        "Expected `str` matching regex": "This is not in the expected format",
        "Expected `date`, got `str`": "Enter a date as YYYY-MM-DD.",
        "Invalid enum value": "Choose one of the options; got",
    }
    for prefix, nicer in replacements.items():
        if text.startswith(prefix):
            rest = text[len(prefix):].strip()
            return f"{nicer} {rest}".strip() if nicer.endswith("got") else nicer + "."
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def convert(struct: type[msgspec.Struct], data: dict[str, Any]) -> tuple[Any | None, Errors]:
    """The Struct, or every field's error (plus any rule across fields, under the key '')."""
    errors = field_errors(struct, data)
    if errors:
        return None, errors
    try:
        return msgspec.convert(data, struct, strict=False), {}
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = text.rsplit("- at `$.", 1)[-1].rstrip("`") if "- at `$." in text else ""
        return None, {path: humanise(text)}
