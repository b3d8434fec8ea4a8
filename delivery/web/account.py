"""Signing in and out, and the front door that sends each role to its own pages."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template

from delivery.models import Role
from delivery.platform import auth
from delivery.platform.db import Database
from delivery.web.render import DB, Audit, Config, page
from delivery.web.security import session_cookie, session_cookie_name

HOME_FOR_ROLE = {Role.admin: "/coordinator", Role.coordinator: "/coordinator",
                 Role.clinic_staff: "/clinic", Role.driver: "/driver"}


class LoginForm(msgspec.Struct, kw_only=True):
    email: str = ""
    password: str = ""
    next: str = ""
    csrf_token: str = ""


def _safe_next(target: str) -> str | None:
    """Only a path on this site (never //host or a scheme), so a login link cannot send people away."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def home_for(principal: auth.Principal) -> str:
    for role in (Role.admin, Role.coordinator, Role.clinic_staff, Role.driver):
        if principal.has_role(role):
            return HOME_FOR_ROLE[role]
    return "/login"


class AccountController(Controller):
    path = "/"

    @get("/", opt={"public": True}, sync_to_thread=False)
    def front_door(self, request: Request) -> Redirect:
        principal = request.scope.get("user")
        return Redirect(home_for(principal) if principal else "/login")

    @get("/login", opt={"public": True}, sync_to_thread=False)
    def login_page(self, request: Request, next: FromQuery[str] = "", email: FromQuery[str] = "") -> Template:
        """The sign-in form; `?email=` fills in the email (the demo prints one such link per role)."""
        return page(request, "account/login.html", next=_safe_next(next) or "", error=None,
                    email=email[:254])

    @post("/login", opt={"public": True}, sync_to_thread=True)
    def sign_in(self, request: Request, db: DB, settings: Config, audit: Audit,
                data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
        database: Database = request.app.state.database
        with database.reader() as reader:  # the slow hash before the first query that takes the writer
            attempt = auth.check_password(reader, data.email, data.password)
        user = auth.record_attempt(db, attempt, audit)
        if user is None:
            db.commit()  # keep the audit row of the failed attempt
            return page(request, "account/login.html", status_code=400, next=_safe_next(data.next) or "",
                        email=data.email[:254], error="That email and password do not match an account.")
        old = request.cookies.get(session_cookie_name(settings))
        if old:  # a new session id at every sign-in: a planted cookie is worthless
            found = auth.resolve_session(db, old, settings)
            if found:
                auth.end_session(db, found[1].id)
        raw, _ = auth.start_session(db, user, settings)
        db.commit()
        principal = auth.principal_for(user, via="session")
        response = Redirect(_safe_next(data.next) or home_for(principal), status_code=303)
        response.set_cookie(**session_cookie(settings, raw))
        return response

    @post("/logout", opt={"roles": tuple(Role)}, sync_to_thread=True)
    def sign_out(self, request: Request, db: DB, settings: Config) -> Response:
        principal = request.scope["user"]
        auth.end_session(db, principal.session_id)
        db.commit()
        response = Redirect("/login", status_code=303)
        response.delete_cookie(session_cookie_name(settings), path="/")
        response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response
