"""Every error answer, in one place: JSON for API clients, a page with the navigation for people.

Services raise `FieldError` (refused 422, conflict 409, not found 404); Litestar raises its HTTP
exceptions; anything else is a 500 whose page shows only the request id (the trace goes to the
log under the same id). Forms that show an error next to its field catch `FieldError` themselves.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Template

from delivery.models import Role
from delivery.platform.auth import Principal
from delivery.platform.errors import FieldError
from delivery.web.audit import REQUEST_ID_HEADER
from delivery.web.render import page
from delivery.web.security import is_api_path

log = logging.getLogger(__name__)

SENTENCES = {
    400: "The request could not be read.",
    401: "Sign in to continue.",
    403: "Your account does not give you access to this page.",
    404: "There is nothing here, or it is not yours to see.",
    405: "This page cannot be used that way.",
    409: "This changed while you were looking at it: reload the page and try again.",
    413: "What you sent is too large.",
    415: "What you sent is not in a format this page takes.",
    422: "What you sent cannot be accepted as it is.",
    429: "Too many attempts: wait a little and try again.",
    500: "Something went wrong on our side. Nothing you did caused it.",
}
TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Changed meanwhile",
          422: "Cannot accept this", 500: "Something went wrong"}
NAV_FOR_ROLE = ((Role.admin, "coordinator/_nav.html"), (Role.coordinator, "coordinator/_nav.html"),
                (Role.clinic_staff, "clinic/_nav.html"), (Role.driver, "driver/_nav.html"))
# msgspec raises this while decoding a body nested deeper than it can follow (100,000 levels of [).
TOO_DEEP = "maximum recursion depth exceeded while deserializing"


class ErrorOut(msgspec.Struct, kw_only=True):
    """The body of every error the API answers."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None
    request_id: str | None = None


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI declarations of the errors an operation can answer (every API route adds 400, 401,
    403 and 500: bad input, no token, wrong role, our fault)."""
    described = {400: "The body or a path parameter is malformed (the detail says which).",
                 401: "No valid bearer token.", 403: "The token's user may not do this.",
                 404: "No such record, or not one this token may see.",
                 409: "The state forbids this now (the detail says why).",
                 422: "The request was read but cannot be accepted (detail and extra.field say what "
                      "to fix).", 500: "Our fault; the request_id finds it in the server log."}
    return {code: ResponseSpec(data_container=ErrorOut, description=described[code],
                               generate_examples=False)
            for code in sorted({400, 401, 403, 500, *codes})}


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def wants_json(request: Request) -> bool:
    """API clients (/api/…, a bearer token, or asking for JSON first) get JSON; people get pages."""
    if is_api_path(request.url.path) or request.url.path.startswith("/schema"):
        return True
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return True
    accept = request.headers.get("accept", "")
    return accept.split(",", 1)[0].strip().startswith("application/json")


def error_page(request: Request, status_code: int, sentence: str,
               headers: dict[str, str] | None = None) -> Template:
    """A page for a person: the navigation of their role, a plain sentence, and for a 500 the id
    to quote when asking for help."""
    me: Principal | None = request.scope.get("user")
    nav = next((template for role, template in NAV_FOR_ROLE if me and me.has_role(role)), None)
    response = page(request, "error.html", status_code=status_code, nav=nav,
                    title=TITLES.get(status_code, "Cannot do that"), sentence=sentence,
                    request_id=request_id(request) if status_code >= 500 else "")
    response.headers.update(headers or {})
    return response


def _answer(request: Request, status_code: int, detail: str, extra: Any = None,
            headers: dict[str, str] | None = None) -> Response[Any]:
    # An error raised in a middleware is answered outside the middleware that adds the header.
    headers = {**(headers or {}), REQUEST_ID_HEADER: request_id(request)}
    if wants_json(request):
        body = ErrorOut(status_code=status_code, detail=detail, extra=extra,
                        request_id=request_id(request) or None)
        return Response(body, status_code=status_code, media_type=MediaType.JSON, headers=headers)
    return error_page(request, status_code, detail, headers)


def field_error(request: Request, exc: Exception) -> Response[Any]:
    """A service's refusal: 422, 409 or 404 by its kind, with message, field and code."""
    assert isinstance(exc, FieldError)
    return _answer(request, exc.status_code, exc.message, {"field": exc.field or None, "code": exc.code})


def http_error(request: Request, exc: Exception) -> Response[Any]:
    """Litestar's own refusals (404 route, 403 guard, 400 validation, 405, 413, 415)."""
    assert isinstance(exc, HTTPException)
    status_code = exc.status_code
    detail = exc.detail if status_code < 500 else SENTENCES[500]
    if isinstance(exc, ValidationException) and not wants_json(request):
        detail = _validation_sentence(exc)
    elif not wants_json(request) and status_code in (403, 405, 413, 415):
        detail = SENTENCES[status_code] if detail in ("", "Forbidden") else detail
    headers = dict(exc.headers or {})
    return _answer(request, status_code, detail or SENTENCES.get(status_code, ""), exc.extra, headers)


def _validation_sentence(exc: ValidationException) -> str:
    """What a person can do about a malformed address or form: which part is wrong."""
    problems = exc.extra if isinstance(exc.extra, list) else []
    for problem in problems:
        if isinstance(problem, dict) and problem.get("source") == "path":
            return (f"The page address has a {problem.get('key')} that cannot exist: "
                    "check the link, or go back and open the page again.")
    return SENTENCES[400]


def server_error(request: Request, exc: Exception) -> Response[Any]:
    """Anything unexpected. A body nested too deep to decode is the sender's fault (400); the rest
    is ours: the trace goes to the log with the request id, never to the person or client."""
    if isinstance(exc, RecursionError) and TOO_DEEP in str(exc):
        return _answer(request, 400, "The JSON body is nested too deeply to read; send a flat object "
                                     "as the schema describes.")
    log.error("request %s failed: %s", request_id(request), type(exc).__name__)
    return _answer(request, 500, SENTENCES[500])


HANDLERS = {FieldError: field_error, HTTPException: http_error, 500: server_error}
