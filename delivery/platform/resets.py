"""A forgotten password: a single-use, expiring link, asked for without revealing who has an account.

`request_reset` does the same work whether or not the address has an account (a secret is made and
hashed either way); the caller answers with the same words and sends the mail after answering, so
neither the response nor its timing tells an address with an account from one without.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.models import PasswordReset, User
from delivery.platform import audit, auth
from delivery.platform.audit import AuditContext
from delivery.platform.settings import Settings

VALID_FOR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class ResetLink:
    user_id: int
    email: str
    raw: str
    expires_at: dt.datetime


def request_reset(db: Session, ctx: AuditContext, email: str, now: dt.datetime) -> ResetLink | None:
    """A new reset link for an active account with this email (earlier ones stop working), else None."""
    raw, hashed = auth.new_link_secret()
    user = db.scalar(select(User).where(User.email == auth.normalise_email(email)))
    if user is None or not user.is_active:
        return None
    db.execute(update(PasswordReset).where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
               .values(used_at=now))
    reset = PasswordReset(user_id=user.id, token_hash=hashed, created_at=now, expires_at=now + VALID_FOR)
    db.add(reset)
    audit.record(db, ctx if ctx.user_id or ctx.client_id else ctx.acting_as(user.id), "C", "password_reset",
                 user.id, detail=f"reset link for {user.email} made")
    db.flush()
    return ResetLink(user.id, user.email, raw, reset.expires_at)


def open_reset(db: Session, raw: str, now: dt.datetime) -> PasswordReset | None:
    """The unused, unexpired reset behind a link, or None."""
    reset = db.scalar(select(PasswordReset).where(PasswordReset.token_hash == auth.token_hash(raw)))
    if reset is None or reset.used_at is not None or now >= reset.expires_at:
        return None
    return reset


def reset_password(db: Session, ctx: AuditContext, raw: str, password: str, now: dt.datetime,
                   settings: Settings) -> User:
    """Set the new password, use up the link and end every session of the account."""
    # Hashed before the first query (so before a request's writer); a weak password is refused first.
    password_hash = auth.hash_password(password, settings)
    reset = open_reset(db, raw, now)
    if reset is None:
        raise auth.AccountError("This reset link has expired or was already used: ask for a new one.")
    user = db.get(User, reset.user_id)
    assert user is not None
    user.password_hash = password_hash
    reset.used_at = now
    auth.end_all_sessions(db, user.id)
    audit.record(db, ctx.acting_as(user.id), "U", "password", user.id,
                 detail="password reset; other sessions ended")
    db.flush()
    return user
