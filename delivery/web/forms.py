"""HTML forms onto msgspec Structs, with one plain message per field instead of the first error only
(the words come from the schema: `delivery.platform.validation`)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
from litestar.enums import RequestEncodingType
from litestar.params import Body

from delivery.platform.validation import error_path, explain, label_of, rule_of

Errors = dict[str, str]
FormData = typing.Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
"""A handler parameter `data: FormData` gets an HTML form's fields (a list where a name repeats)."""


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
        label = label_of(field.name, hints[field.name])
        nested = _struct_type(hints[field.name])
        if field.encode_name not in data:
            if field.required and nested is not None:  # a group left blank: say which questions
                errors |= field_errors(nested, {}, prefix=f"{path}.")
            elif field.required:
                errors[path] = f"{label} is required."
            continue
        value = data[field.encode_name]
        if nested is not None and isinstance(value, dict):
            errors |= field_errors(nested, value, prefix=f"{path}.")
            continue
        try:
            msgspec.convert(value, hints[field.name], strict=False)
        except msgspec.ValidationError:
            errors[path] = explain(hints[field.name], value, label)
    return errors


def convert(struct: type[msgspec.Struct], data: dict[str, Any]) -> tuple[Any | None, Errors]:
    """The Struct, or every field's error; a rule across fields is reported at each field it names
    (or at the struct it belongs to, or under '' for the whole form)."""
    errors = field_errors(struct, data)
    if errors:
        return None, errors
    try:
        return msgspec.convert(data, struct, strict=False), {}
    except msgspec.ValidationError as exc:
        where = ".".join(error_path(exc))
        rule = rule_of(exc)
        if rule is None:  # every field passed on its own: an unknown field, from an old page
            return None, {where: "This form is out of date: reload the page and try again."}
        if not rule.fields:
            return None, {where: rule.message}
        return None, {".".join(filter(None, (where, name))): rule.message for name in rule.fields}
