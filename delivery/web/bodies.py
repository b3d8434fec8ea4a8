"""A body in a type the route does not read is refused with 415 before anything parses it (R4.4).

The accepted types come from the handler itself: its `data` parameter's encoding (JSON, an HTML
form, a multipart upload), or `opt["media_types"]` for a handler reading the raw body (FHIR JSON).
A handler that takes no body (publish, cancel, a button's form with only its CSRF token) accepts
any type, since it reads none."""

from __future__ import annotations

from functools import cache

from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler

from delivery.web.security import SAFE_METHODS

READS = {RequestEncodingType.JSON: ("application/json",),
         RequestEncodingType.URL_ENCODED: ("application/x-www-form-urlencoded",),
         RequestEncodingType.MULTI_PART: ("multipart/form-data",)}


@cache
def accepted_types(handler: BaseRouteHandler) -> tuple[str, ...] | None:
    """The media types this handler's body may come in; None when it reads no body."""
    if "media_types" in handler.opt:
        return tuple(handler.opt["media_types"])
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None:
        return None
    return READS[getattr(field.kwarg_definition, "media_type", None) or RequestEncodingType.JSON]


def content_type_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    if connection.scope["method"] in SAFE_METHODS:
        return
    accepted = accepted_types(handler)
    if accepted is None:
        return
    sent = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    headers = connection.headers
    empty = headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
    if not sent and empty:
        return  # no body at all: nothing to read in a wrong type (an empty form, a bare button)
    if sent not in accepted:
        raise HTTPException(status_code=415, detail=f"Send the body as {' or '.join(accepted)} "
                                                    f"(it came as {sent or 'no type'}).")
