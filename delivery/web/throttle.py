"""Rate limits at the door (R1.4, R6.1–R6.4): a guard that counts each request against its limiter
before the handler runs, and helpers for the limits a handler applies itself (a failed sign-in
counts against the account; a report runs once at a time per person).

A handler opts in with `opt={"throttle": "login"}`: every request counts per client (IP), and a
personal secret in the path (`token`, `raw`) counts per secret. Every request to /api and /fhir
counts per principal (per IP without a token). The client IP is the one the ASGI server reports:
behind a reverse proxy, uvicorn's `--forwarded-allow-ips` names the proxy whose X-Forwarded-For it
trusts; the app itself never reads that header, so a client cannot pick its own bucket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler

from delivery.platform import audit, auth, throttle
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.audit import audit_context
from delivery.web.security import is_api_path

SECRET_PARAMS = ("token", "raw")


def limiter(connection: ASGIConnection, store: str) -> throttle.Limiter:
    return connection.app.state.limiters[store]


def client_of(connection: ASGIConnection) -> str:
    return connection.client.host if connection.client else "unknown"


def refuse(verdict: throttle.Verdict, what: str) -> TooManyRequestsException:
    return TooManyRequestsException(
        f"Too many {what}; try again in {verdict.reset_after_s} seconds.", headers=verdict.headers())


def _refuse_attempt(connection: ASGIConnection, verdict: throttle.Verdict,
                    what: str) -> TooManyRequestsException:
    """A sign-in-like attempt refused unread still leaves its audit row (R1.4)."""
    database: Database = connection.app.state.database
    ctx = audit_context(connection)  # type: ignore[arg-type]
    with database.writer() as db:
        audit.record(db, ctx, "fail", "session", outcome="denied",
                     detail=f"rate limited: too many {what} ({connection.url.path.split('/')[1]})")
        db.commit()
    return refuse(verdict, what)


def _count(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    settings: Settings = connection.app.state.settings
    if handler.opt.get("throttle") == "login":
        login = limiter(connection, "login")
        verdict = login.hit(settings.limit_login_client, "client", client_of(connection))
        if not verdict.allowed:
            raise _refuse_attempt(connection, verdict, "attempts from this address")
        for name in SECRET_PARAMS:
            secret = connection.path_params.get(name)
            if isinstance(secret, str):
                verdict = login.hit(settings.limit_login_account, "secret", auth.token_hash(secret))
                if not verdict.allowed:
                    raise _refuse_attempt(connection, verdict, "attempts with this link")
    elif is_api_path(connection.url.path):
        principal: auth.Principal | None = connection.scope.get("user")
        who = ("user", str(principal.user_id)) if principal else ("client", client_of(connection))
        verdict = limiter(connection, "api").hit(settings.limit_api, *who)
        if not verdict.allowed:
            raise refuse(verdict, "requests")


async def throttle_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Runs before the access policy, so anonymous guessing is counted too."""
    if handler.opt.get("throttle") or is_api_path(connection.url.path):
        await anyio.to_thread.run_sync(_count, connection, handler)


# --- limits a handler applies itself --------------------------------------------------------------


def per_account(request: Request, kind: str, email: str, *, count: bool = True) -> None:
    """Count (or only check, `count=False`) one `kind` of request ("failed sign-in", "reset request")
    for this email against the per-account limit; 429 once it is used up."""
    settings: Settings = request.app.state.settings
    login = limiter(request, "login")
    check = login.hit if count else login.peek
    verdict = check(settings.limit_login_account, kind, auth.normalise_email(email))
    if not verdict.allowed:
        raise refuse(verdict, f"{kind}s for this account")


def forgive(request: Request, kind: str, email: str) -> None:
    """A new password (the recovery path) lifts the account's lock (R1.4)."""
    settings: Settings = request.app.state.settings
    limiter(request, "login").clear(settings.limit_login_account, kind, auth.normalise_email(email))


@contextmanager
def one_at_a_time(request: Request, what: str) -> Iterator[None]:
    """An expensive piece of work (a report PDF, an export) runs once at a time per person (R6.4)."""
    settings: Settings = request.app.state.settings
    principal: auth.Principal = request.scope["user"]
    with throttle.one_at_a_time(limiter(request, "busy"), what, str(principal.user_id),
                                time_limit_s=settings.expensive_time_limit_s):
        yield
