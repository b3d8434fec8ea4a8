"""Rendering pages and their htmx fragments from one template (a fragment is a named block)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.orm import Session

from delivery.platform.auth import Principal
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.security import CSRF_FIELD, SAFE_METHODS

DB = NamedDependency[Session]
"""A handler parameter `db: DB` gets the request's database session."""
Config = NamedDependency[Settings]
"""A handler parameter `settings: Config` gets the app's Settings."""


def page(request: Request, template: str, *, block: str | None = None, status_code: int = 200,
         **context: Any) -> Template:
    """The whole page, or only `block` of it (for htmx swaps). Adds who is signed in, the CSRF
    token and the CSP nonce, so every template can use them."""
    principal: Principal | None = request.scope.get("user")
    context |= {"me": principal, "csrf_token": principal.csrf_token if principal else "",
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


def provide_db(request: Request) -> Iterator[Session]:
    """A session per request: the single writer for unsafe methods, a reader otherwise.
    Controllers commit; anything not committed is rolled back when the request ends."""
    database: Database = request.app.state.database
    door = database.reader if request.method in SAFE_METHODS else database.writer
    with door() as session:
        yield session


def provide_settings(request: Request) -> Settings:
    return request.app.state.settings
