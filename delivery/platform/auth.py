"""Accounts, passwords, sessions and API tokens: the rules, independent of the web layer."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.models import (
    ApiToken,
    Membership,
    Organization,
    OrganizationKind,
    Role,
    User,
    UserSession,
    utcnow,
)
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.errors import FieldError
from delivery.platform.settings import Settings

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
NO_PROGRAM_IDLE_MINUTES = 15  # someone in no program yet gets the staff default (R2.1)


class AccountError(FieldError):
    """A request about an account that cannot be carried out; the message says what to fix."""

    default_code = "account_refused"


@cache
def _common_passwords() -> frozenset[str]:
    path = Path(__file__).parents[1] / "data" / "common-passwords.txt"
    lines = path.read_text().splitlines()
    return frozenset(line.strip() for line in lines if line and not line.startswith("#"))


def password_problems(password: str) -> list[str]:
    """What is wrong with a new password, in words a person can act on (empty when it is fine)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"Use at most {MAX_PASSWORD_LENGTH} characters.")
    if password.lower() in _common_passwords():
        problems.append("This password is one of the most common ones; choose another.")
    return problems


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> tuple[PasswordHasher, str]:
    """The argon2id hasher of these parameters and a hash of nothing to verify a wrong email
    against, so that it is as slow as a wrong password (no account probing)."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    return hasher, hasher.hash("not-a-real-password-9f1c")


def hasher(settings: Settings) -> tuple[PasswordHasher, str]:
    """The settings' argon2id hasher (password_* fields) and its dummy hash."""
    return _hasher(settings.password_time_cost, settings.password_memory_kib, settings.password_parallelism)


def hash_password(password: str, settings: Settings) -> str:
    """A new password's hash (slow: hash before taking the writer); a weak password is refused."""
    problems = password_problems(password)
    if problems:
        raise AccountError(" ".join(problems))
    return hasher(settings)[0].hash(password)


def verify_password(stored_hash: str | None, password: str, settings: Settings) -> bool:
    """Compare exactly as entered: no trimming, no case folding."""
    argon2, dummy = hasher(settings)
    try:
        return argon2.verify(stored_hash or dummy, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_link_secret() -> tuple[str, str]:
    """A fresh secret for a personal link (256 bits) and the hash that is all the database keeps."""
    raw = secrets.token_urlsafe(32)
    return raw, token_hash(raw)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(db: Session, *, email: str, display_name: str, memberships: list[tuple[int, Role]],
                password_hash: str | None = None) -> User:
    """Create one personal account (`password_hash` from `hash_password`, made before the writer is
    taken; None: the account signs in by link or invite); a second account with the same email is
    refused."""
    email = normalise_email(email)
    if "@" not in email:
        raise AccountError(f"{email!r} is not an email address.")
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"An account for {email} already exists.")
    user = User(email=email, display_name=display_name,
                password_hash=password_hash)
    db.add(user)
    db.flush()
    for organization_id, role in memberships:
        db.add(Membership(user_id=user.id, organization_id=organization_id, role=Role(role)))
    db.flush()
    return user


# --- who is asking --------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The signed-in person (by session) or system (by token) behind a request."""

    user_id: int
    email: str
    display_name: str
    roles: dict[int, str] = field(default_factory=dict)  # organization id -> role
    via: str = "session"  # or "token", or "delivery_token" (a driver's phone, one route)
    session_id: int | None = None
    csrf_token: str | None = None
    route_id: int | None = None  # a delivery token reaches this route's stops only
    scopes: frozenset[str] | None = None  # a SMART system client's granted scopes; None: not scope-limited
    mfa_pending: bool = False  # signed in with the password only, but a second factor is needed (R1.2)

    def has_role(self, *roles: str) -> bool:
        return any(role in roles for role in self.roles.values())

    def organizations_with(self, *roles: str) -> list[int]:
        return sorted(org for org, role in self.roles.items() if role in roles)

    @property
    def is_staff(self) -> bool:
        return self.has_role(Role.admin, Role.coordinator, Role.clinic_staff)


def principal_for(user: User, *, via: str, session: UserSession | None = None,
                  route_id: int | None = None) -> Principal:
    return Principal(
        user_id=user.id, email=user.email, display_name=user.display_name,
        roles={m.organization_id: m.role for m in user.memberships}, via=via,
        session_id=session.id if session else None,
        csrf_token=session.csrf_token if session else None, route_id=route_id,
    )


# --- sessions -------------------------------------------------------------------------------


def _limits(db: Session, user: User, settings: Settings) -> tuple[dt.timedelta, dt.timedelta]:
    """(idle, absolute) timeouts. Idle is the program's setting (the strictest of the person's
    programs): staff are signed out sooner than drivers between stops."""
    staff = any(m.role != Role.driver for m in user.memberships)
    programs = [m.organization if m.organization.kind == OrganizationKind.food_bank
                else db.get(Organization, m.organization.food_bank_id) if m.organization.food_bank_id
                else None for m in user.memberships]
    idles = [p.staff_idle_minutes if staff else p.driver_idle_minutes for p in programs if p is not None]
    idle = min(idles, default=NO_PROGRAM_IDLE_MINUTES)
    return dt.timedelta(minutes=idle), dt.timedelta(hours=settings.staff_absolute_hours)


@dataclass(frozen=True)
class Attempt:
    """A sign-in checked against the stored hash (slow: argon2), before anything is written."""
    user_id: int | None  # None: no such account
    password_ok: bool


def check_password(db: Session, email: str, password: str, settings: Settings) -> Attempt:
    """Only reads, so it runs without the writer: hashing takes a good part of a second."""
    user = db.scalar(select(User).where(User.email == normalise_email(email)))
    ok = verify_password(user.password_hash if user else None, password, settings)
    return Attempt(user.id if user else None, ok and user is not None)


def record_attempt(db: Session, attempt: Attempt, ctx: AuditContext) -> User | None:
    """The signed-in user, or None; every attempt leaves an audit row (the account's when the email
    names one, so a guessing attack on it shows up under that account). The account is read again
    here, so one disabled since the password was checked is refused."""
    user = db.get(User, attempt.user_id) if attempt.user_id is not None else None
    ok = attempt.password_ok and user is not None and user.is_active
    actor = ctx.acting_as(user.id, {m.organization_id: m.role for m in user.memberships}) if user else ctx
    audit.record(db, actor, "login" if ok else "fail", "session", outcome="ok" if ok else "denied",
                 detail=None if user else "unknown account")
    return user if ok else None


def record_locked_out(db: Session, email: str, ctx: AuditContext) -> None:
    """A sign-in refused unchecked because the account used up its failed attempts: audited too (R1.4)."""
    user = db.scalar(select(User).where(User.email == normalise_email(email)))
    actor = ctx.acting_as(user.id, {m.organization_id: m.role for m in user.memberships}) if user else ctx
    audit.record(db, actor, "fail", "session", outcome="denied",
                 detail="too many failed sign-ins" if user else "unknown account")


def authenticate(db: Session, ctx: AuditContext, email: str, password: str, settings: Settings
                 ) -> User | None:
    """The user for these credentials, or None; every attempt leaves an audit row."""
    return record_attempt(db, check_password(db, email, password, settings), ctx)


def start_session(db: Session, user: User, settings: Settings) -> tuple[str, UserSession]:
    """A new server-side session; returns the raw cookie value (only its hash is stored)."""
    raw = secrets.token_urlsafe(32)
    now = settings.clock.now()
    _, absolute = _limits(db, user, settings)
    session = UserSession(token_hash=token_hash(raw), user_id=user.id,
                          csrf_token=secrets.token_urlsafe(32), created_at=now,
                          last_seen_at=now, expires_at=now + absolute)
    db.add(session)
    db.flush()
    return raw, session


def resolve_session(db: Session, raw: str, settings: Settings) -> tuple[User, UserSession] | None:
    """The live session for a cookie, or None once it is ended, idle too long or too old."""
    now = settings.clock.now()
    session = db.scalar(select(UserSession).where(UserSession.token_hash == token_hash(raw)))
    if session is None or session.ended_at is not None or now >= session.expires_at:
        return None
    user = db.get(User, session.user_id)
    if user is None or not user.is_active:
        return None
    idle, _ = _limits(db, user, settings)
    if now - session.last_seen_at > idle:
        return None
    return user, session


def touch_session(db: Session, session_id: int, now: dt.datetime) -> None:
    db.execute(update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now))


def end_session(db: Session, session_id: int) -> None:
    db.execute(update(UserSession).where(UserSession.id == session_id, UserSession.ended_at.is_(None))
               .values(ended_at=utcnow()))


def end_all_sessions(db: Session, user_id: int) -> None:
    db.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
               .values(ended_at=utcnow()))


# --- API tokens -----------------------------------------------------------------------------


def create_api_token(db: Session, email: str) -> str:
    """A new bearer token for this user; returns it once, stores only its hash."""
    user = db.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None:
        raise AccountError(f"No account for {email}; create the user first.")
    raw = "dlv_" + secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, token_hash=token_hash(raw)))
    db.flush()
    return raw


def resolve_api_token(db: Session, raw: str) -> User | None:
    token = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(raw),
                                             ApiToken.revoked_at.is_(None)))
    if token is None:
        return None
    user = db.get(User, token.user_id)
    return user if user is not None and user.is_active else None
