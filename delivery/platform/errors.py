"""The one family of errors a person can fix: what was asked cannot be done as sent.

Every service refusal is a `FieldError` (or a subclass): a plain `message`, the `field` at fault
("" for the request as a whole) and a short machine-readable `code`. Its `kind` decides the HTTP
status, in one place (`delivery.web.errors`): refused → 422, conflict → 409, not found → 404.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorKind(StrEnum):
    refused = "refused"  # the change cannot be made as sent: fix the input (422)
    conflict = "conflict"  # the state moved or forbids it now: reload or wait (409)
    not_found = "not_found"  # no such thing, or not yours: existence is not revealed (404)


STATUS = {ErrorKind.refused: 422, ErrorKind.conflict: 409, ErrorKind.not_found: 404}


class FieldError(ValueError):
    """A request a service refuses. Pages show the message next to `field`; the API answers with
    the status of `kind` and a body carrying message, field and code."""

    kind: ClassVar[ErrorKind] = ErrorKind.refused
    default_code: ClassVar[str] = "refused"

    def __init__(self, message: str, field: str = "", *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code or self.default_code

    @property
    def status_code(self) -> int:
        return STATUS[self.kind]


class ConflictError(FieldError):
    """The request was fine, but the state it acts on forbids it now (someone else changed it, a
    solve is running, the plan is not planned yet)."""

    kind = ErrorKind.conflict
    default_code = "conflict"


class NotFoundError(FieldError):
    """No such record, or one the person may not see (answered the same way, so ids reveal nothing)."""

    kind = ErrorKind.not_found
    default_code = "not_found"
