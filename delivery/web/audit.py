"""Per request: a request id (answered as `X-Request-ID`, logged with a 500, written on audit rows)
and the `AuditContext` services receive to record who acted, from where."""

from __future__ import annotations

import functools
import uuid

import anyio
from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from delivery.platform.audit import AuditContext, record_now, widest_role
from delivery.platform.auth import Principal

REQUEST_ID_HEADER = "X-Request-ID"
REFUSALS = frozenset({401, 403, 404})


class RequestIdMiddleware(ASGIMiddleware):
    """A fresh id per request. A caller's own X-Request-ID is not trusted: ids must be unique to
    find one request's audit rows and log lines."""

    scopes = ("http",)  # type: ignore[assignment]

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await next_app(scope, receive, send_with_id)


def audit_context(request: Request) -> AuditContext:
    """Who is asking (if anyone is signed in), with their widest role, and from where."""
    me: Principal | None = request.scope.get("user")
    role, organization_id = widest_role(me.roles) if me else (None, None)
    return AuditContext(user_id=me.user_id if me else None, role=role, organization_id=organization_id,
                        ip=request.client.host if request.client else None,
                        user_agent=request.headers.get("user-agent"),
                        request_id=request.scope.get("state", {}).get("request_id"))


async def audit_refusal(exc: Exception, scope: Scope) -> None:
    """A PHI route (`opt["phi"] = (action, resource)`) that refused (401, 403, 404) leaves one row
    with outcome "fail" naming who attempted what on which record, the status first in its detail
    (R10.1), wherever the refusal came from: the policy guard, a scope guard or a handler not
    finding the record among the caller's. Its own short write: the request's transaction, if any,
    is rolled back."""
    handler = scope.get("route_handler")
    status = getattr(exc, "status_code", None)
    if handler is None or not handler.opt.get("phi") or status not in REFUSALS:
        return
    request: Request = Request(scope)
    ids = [v for v in (scope.get("path_params") or {}).values() if isinstance(v, int)]
    action, resource = handler.opt["phi"]
    record = functools.partial(record_now, scope["litestar_app"].state.database, audit_context(request),
                               action, resource, ids[-1] if ids else None, outcome="fail",
                               detail=f"{status}: {request.method} {request.url.path}")
    await anyio.to_thread.run_sync(record)
