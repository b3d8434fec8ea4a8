"""Signing in and out, the front door that sends each role to its own pages (or to the first-run page
while there is no program), accepting an invite, and a forgotten password."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.enums import RequestEncodingType
from litestar.exceptions import TooManyRequestsException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from delivery.models import Organization, OrganizationKind, Role
from delivery.platform import auth, mail, mfa, resets
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.program import people, setup
from delivery.web import throttle
from delivery.web.forms import FormData
from delivery.web.render import DB, Audit, Config, clock_of, page
from delivery.web.security import session_cookie, session_cookie_name

log = logging.getLogger("delivery.web.account")

FAILED_SIGN_IN = "failed sign-in"
FAILED_CODE = "wrong second-factor code"
HOME_FOR_ROLE = {Role.admin: "/coordinator", Role.coordinator: "/coordinator",
                 Role.clinic_staff: "/clinic", Role.benefits: "/benefits", Role.driver: "/driver"}


class LoginForm(msgspec.Struct, kw_only=True):
    email: str = ""
    password: str = ""
    next: str = ""
    csrf_token: str = ""


def safe_next(target: str) -> str | None:
    """Only a path on this site (never //host or a scheme), so a login link cannot send people away."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def home_for(principal: auth.Principal) -> str:
    for role in (Role.admin, Role.coordinator, Role.clinic_staff, Role.benefits, Role.driver):
        if principal.has_role(role):
            return HOME_FOR_ROLE[role]
    return "/login"


class AccountController(Controller):
    path = "/"

    @get("/", opt={"public": True}, sync_to_thread=True)
    def front_door(self, request: Request, db: DB) -> Redirect:
        principal = request.scope.get("user")
        if principal:
            return Redirect("/mfa" if principal.mfa_pending else home_for(principal))
        return Redirect("/login" if setup.has_program(db) else "/setup")

    @get("/login", opt={"public": True}, sync_to_thread=True)
    def login_page(self, request: Request, db: DB, next: FromQuery[str] = "", email: FromQuery[str] = "",
                   changed: FromQuery[bool] = False) -> Response | Template:
        """The sign-in form; `?email=` fills in the email (the demo prints one such link per role).
        With no program yet there is nobody to sign in: the first-run page comes first."""
        if not setup.has_program(db):
            return Redirect("/setup")
        return page(request, "account/login.html", next=safe_next(next) or "", error=None,
                    email=email[:254], notice="Password changed: sign in with it." if changed else None)

    @post("/login", opt={"public": True, "throttle": "login"}, sync_to_thread=True)
    def sign_in(self, request: Request, db: DB, settings: Config, audit: Audit,
                data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response:
        database: Database = request.app.state.database
        try:  # a locked account is refused before its password is even checked (R1.4)
            throttle.per_account(request, FAILED_SIGN_IN, data.email, count=False)
        except TooManyRequestsException:
            auth.record_locked_out(db, data.email, audit)
            db.commit()
            raise
        with database.reader() as reader:  # the slow hash before the first query that takes the writer
            attempt = auth.check_password(reader, data.email, data.password, settings)
        user = auth.record_attempt(db, attempt, audit)
        if user is None:
            db.commit()  # keep the audit row of the failed attempt
            throttle.per_account(request, FAILED_SIGN_IN, data.email)
            return page(request, "account/login.html", status_code=400, next=safe_next(data.next) or "",
                        email=data.email[:254], error="That email and password do not match an account.")
        old = request.cookies.get(session_cookie_name(settings))
        if old:  # a new session id at every sign-in: a planted cookie is worthless
            found = auth.resolve_session(db, old, settings)
            if found:
                auth.end_session(db, found[1].id)
        raw, session = auth.start_session(db, user, settings)
        second_factor = mfa.pending(db, user, session)
        db.commit()
        principal = auth.principal_for(user, via="session")
        target = safe_next(data.next) or home_for(principal)
        if second_factor:  # the password was right; the code comes next (R1.2)
            target = "/mfa?" + urlencode({"next": target})
        response = Redirect(target, status_code=303)
        response.set_cookie(**session_cookie(settings, raw))
        return response

    @post("/logout", opt={"roles": tuple(Role), "first_factor": True}, sync_to_thread=True)
    def sign_out(self, request: Request, db: DB, settings: Config) -> Response:
        principal = request.scope["user"]
        auth.end_session(db, principal.session_id)
        db.commit()
        response = Redirect("/login", status_code=303)
        response.delete_cookie(session_cookie_name(settings), path="/")
        if principal.roles and all(role == Role.driver for role in principal.roles.values()):
            # A driver's phone may hold confirmations not sent yet: "storage" would wipe them, and
            # "cookies" the device cookie that lets this phone open its route link again (R8.4,
            # R1.3). The page itself clears its cached route data and sent items before signing out.
            response.headers["Clear-Site-Data"] = '"cache"'
        else:
            response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response

    # --- invites ----------------------------------------------------------------------------------

    def _invite_page(self, request: Request, invite: Any, raw: str, **extra: Any) -> Template:
        return page(request, "account/choose_password.html", heading="Join the program",
                    usable=invite is not None, action=f"/invite/{raw}", ask_name=True,
                    email=invite.email if invite else "", button="Join",
                    password_min=auth.MIN_PASSWORD_LENGTH,
                    dead="This invite has expired, was revoked or was already used. Ask the admin who "
                         "invited you to send it again.",
                    intro=(f"You are invited as {people.ROLE_NAMES[Role(invite.role)]} at "
                           f"{invite.organization.name}. Choose a password for {invite.email}.")
                    if invite else None, **extra)

    @get("/invite/{raw:str}", opt={"public": True}, sync_to_thread=True)
    def invite_page(self, request: Request, db: DB, raw: FromPath[str]) -> Template:
        invite = people.open_invite(db, raw, clock_of(request).now())
        return self._invite_page(request, invite, raw, status_code=200 if invite else 410)

    @post("/invite/{raw:str}", opt={"public": True, "throttle": "login"}, sync_to_thread=True)
    def accept_invite(self, request: Request, db: DB, audit: Audit, settings: Config, raw: FromPath[str],
                      data: FormData) -> Response:
        """Set the password, join with the invite's role, and arrive signed in on one's own pages."""
        try:
            user = people.accept(db, audit, raw, display_name=str(data.get("display_name", "")),
                                 password=str(data.get("password", "")), now=clock_of(request).now(),
                                 settings=settings)
        except (people.PeopleError, auth.AccountError) as exc:
            db.rollback()
            invite = people.open_invite(db, raw, clock_of(request).now())
            return self._invite_page(request, invite, raw, error=str(exc),
                                     display_name=str(data.get("display_name", ""))[:200],
                                     status_code=422 if invite else 410)
        raw_session, session = auth.start_session(db, user, settings)
        second_factor = mfa.pending(db, user, session)
        db.commit()
        response = Redirect("/mfa" if second_factor else home_for(auth.principal_for(user, via="session")),
                            status_code=303)
        response.set_cookie(**session_cookie(settings, raw_session))
        return response

    # --- a forgotten password ---------------------------------------------------------------------

    @get("/forgot", opt={"public": True}, sync_to_thread=False)
    def forgot_page(self, request: Request) -> Template:
        return page(request, "account/forgot.html", sent=False)

    @post("/forgot", opt={"public": True, "throttle": "login"}, sync_to_thread=True)
    def forgot(self, request: Request, db: DB, audit: Audit, settings: Config, data: FormData) -> Template:
        """The same answer whether or not the address has an account; the mail leaves after answering."""
        email = str(data.get("email", ""))[:254]
        throttle.per_account(request, "reset request", email)
        link = resets.request_reset(db, audit, email, clock_of(request).now())
        db.commit()
        response = page(request, "account/forgot.html", sent=True, email=email)
        if link is not None and mail.configured(settings):
            response.background = BackgroundTask(_send_reset, settings, link, _program_name(db))
        return response

    def _reset_page(self, request: Request, usable: bool, raw: str, **extra: Any) -> Template:
        return page(request, "account/choose_password.html", heading="Choose a new password", usable=usable,
                    action=f"/reset/{raw}", ask_name=False, email="", button="Save the new password",
                    password_min=auth.MIN_PASSWORD_LENGTH,
                    dead="This reset link has expired or was already used: ask for a new one.", **extra)

    @get("/reset/{raw:str}", opt={"public": True}, sync_to_thread=True)
    def reset_page(self, request: Request, db: DB, raw: FromPath[str]) -> Template:
        usable = resets.open_reset(db, raw, clock_of(request).now()) is not None
        return self._reset_page(request, usable, raw, status_code=200 if usable else 410)

    @post("/reset/{raw:str}", opt={"public": True, "throttle": "login"}, sync_to_thread=True)
    def reset_password(self, request: Request, db: DB, audit: Audit, settings: Config, raw: FromPath[str],
                       data: FormData) -> Response:
        """Save the new password; every session of the account ends, this browser signs in afresh."""
        try:
            user = resets.reset_password(db, audit, raw, str(data.get("password", "")),
                                         clock_of(request).now(), settings)
        except auth.AccountError as exc:
            db.rollback()
            usable = resets.open_reset(db, raw, clock_of(request).now()) is not None
            return self._reset_page(request, usable, raw, error=str(exc), status_code=422 if usable else 410)
        db.commit()
        throttle.forgive(request, FAILED_SIGN_IN, user.email)
        return Redirect("/login?changed=1", status_code=303)


def _program_name(db: Any) -> str:
    from sqlalchemy import select

    name = db.scalar(select(Organization.name).where(Organization.kind == OrganizationKind.food_bank)
                     .order_by(Organization.id).limit(1))
    return name or "Produce-box delivery"


def _send_reset(settings: Settings, link: resets.ResetLink, program: str) -> None:
    """Mail a reset link (after the answer went out, so its timing says nothing about the account)."""
    url = f"{settings.base_url.rstrip('/')}/reset/{link.raw}"
    try:
        mail.send(settings, mail.render("reset", link.email, program=program, email=link.email, link=url,
                                        expires=f"{link.expires_at:%d %b %Y %H:%M} UTC"))
    except mail.MailError:
        log.exception("the reset link for account %s could not be mailed", link.user_id)
