"""The second factor's pages (R1.2): set up an authenticator app (QR code, recovery codes) and type a
code after the password. These are the only pages a session with just the password can reach."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from delivery.models import User, UserSession
from delivery.platform import auth, mfa
from delivery.web import throttle
from delivery.web.account import FAILED_CODE, home_for, safe_next
from delivery.web.forms import FormData
from delivery.web.render import DB, Audit, clock_of, page, principal

PAGES = {"roles": mfa.STAFF_ROLES, "first_factor": True}


def _mine(db: DB, request: Request) -> tuple[User, UserSession]:
    me = principal(request)
    user, session = db.get(User, me.user_id), db.get(UserSession, me.session_id)
    assert user is not None and session is not None  # the session was resolved for this request
    return user, session


class SecondFactorController(Controller):
    path = "/mfa"

    @get("/", opt=PAGES, sync_to_thread=True)
    def code_page(self, request: Request, db: DB, next: FromQuery[str] = "") -> Template:
        """Type the code (enrolled), or start setting up the app (not yet)."""
        user, _ = _mine(db, request)
        return page(request, "account/mfa.html", step="code" if user.totp_enabled_at else "intro",
                    next=safe_next(next) or "", error=None)

    @post("/", opt={**PAGES, "throttle": "login"}, sync_to_thread=True, status_code=200)
    def check_code(self, request: Request, db: DB, audit: Audit, data: FormData) -> Response | Template:
        """A code from the app or a recovery code; wrong ones count against the account (R6.1)."""
        user, session = _mine(db, request)
        throttle.per_account(request, FAILED_CODE, user.email, count=False)
        target = safe_next(str(data.get("next", ""))) or home_for(principal(request))
        if mfa.verify(db, audit, user, session, str(data.get("code", ""))[:40], clock_of(request).now()):
            db.commit()
            return Redirect(target, status_code=303)
        db.commit()  # the audit row of the failed code
        throttle.per_account(request, FAILED_CODE, user.email)
        return page(request, "account/mfa.html", step="code", next=target, status_code=400,
                    error="That code is wrong or was already used. Type the code your app shows now, "
                          "or one of your recovery codes.")

    @post("/setup", opt=PAGES, sync_to_thread=True, status_code=200)
    def start_setup(self, request: Request, db: DB) -> Template:
        """A new secret, shown as a QR code and as text to type in."""
        user, _ = _mine(db, request)
        secret = mfa.start_enrolment(db, user)
        db.commit()
        return page(request, "account/mfa.html", step="setup", qr=mfa.qr_svg(user, secret), secret=secret,
                    error=None)

    @post("/setup/confirm", opt=PAGES, sync_to_thread=True, status_code=200)
    def confirm_setup(self, request: Request, db: DB, audit: Audit, data: FormData) -> Template:
        """The first code switches the factor on; the recovery codes are shown this once."""
        user, session = _mine(db, request)
        try:
            codes = mfa.confirm_enrolment(db, audit, user, session, str(data.get("code", ""))[:40],
                                          clock_of(request).now())
        except auth.AccountError as exc:
            db.rollback()
            user, _ = _mine(db, request)
            if user.totp_secret is None or user.totp_enabled_at is not None:  # not started, or done
                return page(request, "account/mfa.html", step="code" if user.totp_enabled_at else "intro",
                            next="", error=exc.message, status_code=422)
            return page(request, "account/mfa.html", step="setup", error=exc.message, status_code=422,
                        qr=mfa.qr_svg(user, user.totp_secret), secret=user.totp_secret)
        db.commit()
        return page(request, "account/mfa.html", step="codes", codes=codes, home=home_for(principal(request)))
