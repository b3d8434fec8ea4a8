"""Who is asking, may they, and the headers every response carries.

Every route declares its access policy in its handler's `opt`: `public=True`, or `roles=(...)`.
A route with neither is refused (deny by default), so a new route cannot ship without a decision.
A session that still needs its second factor reaches only routes marked `first_factor=True` (the
second-factor pages and signing out), whatever else its roles allow (R1.2).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders, UploadFile
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from delivery.loop.fhir import smart
from delivery.models import User
from delivery.plans import publishing
from delivery.platform import auth, mfa
from delivery.platform.db import Database
from delivery.platform.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
TOUCH_EVERY = dt.timedelta(seconds=30)  # refresh last_seen_at at most this often (fewer writes)


def session_cookie_name(settings: Settings) -> str:
    # __Host- binds the cookie to this exact host over HTTPS, with Path=/ and no Domain.
    return "__Host-session" if settings.secure_cookies else "session"


def session_cookie(settings: Settings, value: str, *, max_age: int | None = None) -> dict[str, Any]:
    """Keyword arguments for Response.set_cookie: HttpOnly, SameSite=Lax, Path=/, Secure."""
    return {"key": session_cookie_name(settings), "value": value, "path": "/", "httponly": True,
            "secure": settings.secure_cookies, "samesite": "lax", "max_age": max_age}


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope["headers"]:
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if name in jar:
                return jar[name].value
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def is_api_path(path: str) -> bool:
    return path.startswith(("/api/", "/fhir/")) or path == "/fhir"  # /fhir: a FHIR server's base


class AuthMiddleware(ASGIMiddleware):
    """Puts the Principal (or None) in scope["user"]: bearer tokens on the API, cookies elsewhere.

    The API never accepts cookies, so a browser session cannot be ridden into it (R5.1). Besides
    API tokens it takes a driver's delivery token (`drt_…`), which reaches one route's stops only.
    """

    scopes = ("http",)  # type: ignore[assignment]
    # Static files carry no data: skip the session lookup for them.
    should_bypass_for_scope = staticmethod(lambda scope: scope["path"].startswith("/static/"))

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        principal = None
        if is_api_path(scope["path"]):
            header = _header(scope, b"authorization") or ""
            scheme, _, raw = header.partition(" ")
            if scheme.lower() == "bearer" and raw.strip():
                principal = await anyio.to_thread.run_sync(self._by_token, raw.strip())
        else:
            raw = _cookie(scope, session_cookie_name(self.settings))
            if raw:
                principal = await anyio.to_thread.run_sync(self._by_session, raw)
        scope["user"] = principal
        scope["auth"] = None
        await next_app(scope, receive, send)

    def _by_token(self, raw: str) -> auth.Principal | None:
        with self.database.reader() as db:
            if raw.startswith(publishing.DELIVERY_TOKEN_PREFIX):
                row = publishing.resolve_delivery_token(db, raw, self.settings.secret_key)
                user = db.get(User, row.user_id) if row is not None else None
                if row is None or user is None or not user.is_active:
                    return None
                return auth.principal_for(user, via="delivery_token", route_id=row.route_id)
            user = auth.resolve_api_token(db, raw)
            if user is not None:
                return auth.principal_for(user, via="token")
            # else a SMART client's short-lived token
            system = smart.resolve_token(db, raw, self.settings.clock.now())
            if system is None:
                return None
            return dataclasses.replace(auth.principal_for(system[0], via="token"), scopes=system[1])

    def _by_session(self, raw: str) -> auth.Principal | None:
        with self.database.reader() as db:
            found = auth.resolve_session(db, raw, self.settings)
            if found is None:
                return None
            user, session = found
            principal = dataclasses.replace(auth.principal_for(user, via="session", session=session),
                                            mfa_pending=mfa.pending(db, user, session))
            now = self.settings.clock.now()
            stale = now - session.last_seen_at > TOUCH_EVERY
        if stale:
            with self.database.writer() as db:
                auth.touch_session(db, session.id, now)
                db.commit()
        return principal


class SecurityHeadersMiddleware(ASGIMiddleware):
    """HSTS, CSP with a per-request script nonce, nosniff, no referrer; no-store on pages."""

    scopes = ("http",)  # type: ignore[assignment]

    def __init__(self, settings: Settings) -> None:
        self.img_src = "'self' data:"
        if settings.tile_url:
            tiles = urlsplit(settings.tile_url.replace("{s}", "*"))
            self.img_src += f" {tiles.scheme}://{tiles.netloc}"

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        is_static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
                headers["Content-Security-Policy"] = (
                    f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
                    f"img-src {self.img_src}; object-src 'none'; base-uri 'none'; "
                    "frame-ancestors 'none'; form-action 'self'")
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
                if not is_static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await next_app(scope, receive, send_with_headers)


async def policy_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Deny by default: the handler's opt names who may call it; cookie writes need the CSRF token."""
    opt = handler.opt
    if opt.get("public"):
        if connection.scope["method"] not in SAFE_METHODS:
            _check_origin(connection)
        return
    roles = opt.get("roles")
    if not roles:
        raise PermissionDeniedException("This route has no access policy.")
    principal: auth.Principal | None = connection.scope.get("user")
    if principal is None:
        raise NotAuthorizedException("Sign in first." if not is_api_path(connection.url.path)
                                     else "Send a valid bearer token in the Authorization header.")
    if not principal.has_role(*roles):
        raise PermissionDeniedException("Your role does not allow this.")
    if principal.mfa_pending and not opt.get("first_factor"):
        raise PermissionDeniedException("Enter the code from your authenticator app first (at /mfa).")
    if principal.via == "session" and connection.scope["method"] not in SAFE_METHODS:
        _check_origin(connection)
        await _check_csrf(connection, principal)


def _check_origin(connection: ASGIConnection) -> None:
    """A state-changing browser request from another site is refused, token or not (R5.2)."""
    origin = connection.headers.get("origin")
    if origin and origin != "null":
        host = connection.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise PermissionDeniedException("Cross-site request refused.")


def mask_csrf(token: str) -> str:
    """The session's CSRF token as one response carries it: a fresh random pad followed by the token
    XOR the pad, URL-safe base64. Pages are compressed and also echo what people typed, so a secret
    repeated byte for byte in every page could be guessed from compressed sizes (BREACH); masked,
    it differs in every response while any of them unmasks to the same token."""
    raw = token.encode()
    pad = secrets.token_bytes(len(raw))
    return base64.urlsafe_b64encode(pad + bytes(a ^ b for a, b in zip(raw, pad, strict=True))).decode()


def unmask_csrf(sent: str) -> str | None:
    """The token a masked value carries; None when it is not one `mask_csrf` could have made."""
    try:
        data = base64.urlsafe_b64decode(sent.encode("ascii"))
        half, odd = divmod(len(data), 2)
        if odd or not half:
            return None
        return bytes(a ^ b for a, b in zip(data[:half], data[half:], strict=True)).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None


async def _check_csrf(connection: ASGIConnection, principal: auth.Principal) -> None:
    sent = connection.headers.get(CSRF_HEADER)
    uploads: list[UploadFile] = []
    if sent is None and isinstance(connection, Request):
        content_type = connection.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await connection.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
            uploads = [v for v in form.values() if isinstance(v, UploadFile)]
    expected = principal.csrf_token or ""
    token = unmask_csrf(sent) if sent else None
    if not token or not expected or not secrets.compare_digest(token, expected):
        for upload in uploads:  # the handler that would have closed them never runs
            await upload.close()
        raise PermissionDeniedException("The form's security token is missing or out of date; "
                                        "reload the page and try again.")


def redirect_to_login(request: Request, exc: Exception) -> Response:
    """401 on a page sends the person to sign in (htmx gets HX-Redirect); the API gets JSON."""
    if is_api_path(request.url.path):
        return Response({"status_code": 401, "detail": str(getattr(exc, "detail", "Unauthorized"))},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})
    target = "/login?next=" + quote(request.url.path)
    if request.headers.get("hx-request"):
        return Response(None, status_code=401, headers={"HX-Redirect": target})
    return Response(None, status_code=303, headers={"Location": target})
