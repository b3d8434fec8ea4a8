"""Rendering pages and their htmx fragments from one template (a fragment is a named block)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Annotated, Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.params import PathParameter
from litestar.response import Template
from sqlalchemy.orm import Session

from delivery.models import Organization
from delivery.platform.audit import AuditContext
from delivery.platform.auth import Principal
from delivery.platform.clock import Clock
from delivery.platform.db import Database, WriteThenRead
from delivery.platform.settings import Settings
from delivery.referrals.schemas import ID_MAX
from delivery.web.security import CSRF_FIELD, SAFE_METHODS, mask_csrf

DB = NamedDependency[Session]
"""A handler parameter `db: DB` gets the request's database session."""
Config = NamedDependency[Settings]
"""A handler parameter `settings: Config` gets the app's Settings."""
Audit = NamedDependency[AuditContext]
"""A handler parameter `audit: Audit` gets this request's AuditContext (pass it to services)."""
PathId = Annotated[int, PathParameter(ge=1, le=ID_MAX, description="A record id (1 to 2147483647)")]
"""An id in a path, bounded like ids in bodies: a 23-digit id is a 400 that says so, not a 500."""


def page(request: Request, template: str, *, block: str | None = None, status_code: int = 200,
         **context: Any) -> Template:
    """The whole page, or only `block` of it (for htmx swaps). Adds who is signed in, the CSRF
    token (masked afresh for each response) and the CSP nonce, so every template can use them."""
    principal: Principal | None = request.scope.get("user")
    csrf = principal.csrf_token if principal else None
    context |= {"me": principal, "csrf_token": mask_csrf(csrf) if csrf else "",
                "csrf_field": CSRF_FIELD, "csp_nonce": request.scope["state"].get("csp_nonce", ""),
                "path": request.url.path}
    if block is not None:
        return HTMXBlockTemplate(template_name=template, block_name=block, context=context,
                                 status_code=status_code)
    return Template(template_name=template, context=context, status_code=status_code)


def principal(request: Request) -> Principal:
    """The signed-in principal; the policy guard has already refused anonymous callers."""
    user = request.scope.get("user")
    assert user is not None, "route reached without a principal: check its policy"
    return user


# The sessions of the request being handled (before_request makes the list in the request's own
# task; dependencies may be resolved in child tasks, so they add to it through request.state).
_SESSIONS: ContextVar[list[Session] | None] = ContextVar("request_sessions", default=None)


def track_sessions(request: Request) -> None:
    request.state.sessions = []
    _SESSIONS.set(request.state.sessions)


async def provide_db(request: Request) -> AsyncIterator[Session]:
    """A session per request: a reader for GET (which never writes); for unsafe methods the single
    writer from the first query until the controller commits or rolls back, a reader afterwards
    (so the answer renders without holding the writer). Anything not committed is rolled back.

    Async so that closing it runs on the event loop: a sync generator's cleanup waits for a worker
    thread, and those may all be waiting for the connection this session holds."""
    database: Database = request.app.state.database
    door = database.reader if request.method in SAFE_METHODS else database.write_then_read
    with door() as session:
        request.state.sessions.append(session)
        yield session


def release_writer(response: Response) -> Response:
    """After the handler, before its answer renders: a request that still holds the writer (it
    refused the change and neither committed nor rolled back) lets go of it; what it did not
    commit is discarded, as it would be at the end of the request."""
    for session in _SESSIONS.get() or ():
        if isinstance(session, WriteThenRead) and session.holds_writer:
            session.rollback()
    return response


def clock_of(request: Request) -> Clock:
    """The app's one clock (from its Settings)."""
    return request.app.state.settings.clock


def program_today(request: Request, food_bank: Organization) -> dt.date:
    """Today where the program delivers (the server may run on UTC)."""
    return clock_of(request).today(food_bank.timezone)


def provide_settings(request: Request) -> Settings:
    return request.app.state.settings
