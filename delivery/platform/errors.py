"""The one kind of error a person can fix: what was asked cannot be done as sent."""

from __future__ import annotations


class FieldError(ValueError):
    """A request a service refuses; the message says what to fix, `field` names where ("" for the
    request as a whole). Pages show it next to that field; the API returns it with a 422."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field
