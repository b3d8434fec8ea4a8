"""A second factor for staff (R1.2): TOTP (RFC 6238, through pyotp) with one-time recovery codes.

A person enrols by scanning a QR code (drawn server-side as SVG by segno) and typing the first code;
ten recovery codes are shown once and stored as hashes. A code is accepted once: the time step it
was used for is kept, so replaying it (or an older one) fails. A program's admin may require a
second factor of its staff and of its clinics' staff."""

from __future__ import annotations

import datetime as dt
import io
import secrets

import pyotp
import segno
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.models import Organization, RecoveryCode, Role, User, UserSession
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.auth import AccountError, token_hash

ISSUER = "Produce-box delivery"
RECOVERY_CODES = 10
STAFF_ROLES = (Role.admin, Role.coordinator, Role.clinic_staff)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret)  # 6 digits, 30 s steps, SHA-1: what every authenticator app reads


def required_for(db: Session, user: User) -> bool:
    """Staff of a program (or of one of its clinics) whose admin requires a second factor."""
    programs = set()
    for membership in user.memberships:
        if membership.role not in STAFF_ROLES:
            continue
        org = membership.organization
        programs.add(org.id if org.food_bank_id is None else org.food_bank_id)
    return bool(programs) and db.scalar(select(Organization.id).where(
        Organization.id.in_(programs), Organization.require_mfa.is_(True)).limit(1)) is not None


def pending(db: Session, user: User, session: UserSession) -> bool:
    """This session has only the first factor but needs the second."""
    return session.mfa_at is None and (user.totp_enabled_at is not None or required_for(db, user))


def start_enrolment(db: Session, user: User) -> str:
    """A new secret for a person not enrolled yet (kept until a first code confirms it)."""
    if user.totp_enabled_at is not None:
        raise AccountError("Your authenticator app is already set up.")
    if user.totp_secret is None:
        user.totp_secret = pyotp.random_base32()
        db.flush()
    return user.totp_secret


def qr_svg(user: User, secret: str) -> str:
    """The otpauth:// URI as an SVG QR code, drawn here (no image service sees the secret)."""
    uri = _totp(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True,
                                     title="QR code for your authenticator app")
    return out.getvalue().decode()


def _step_of(user: User, code: str, now: dt.datetime) -> int | None:
    """The time step this code is valid for (now, or one step either side for a slow phone)."""
    if user.totp_secret is None:
        return None
    code = code.strip().replace(" ", "")
    totp = _totp(user.totp_secret)
    for drift in (0, -1, 1):
        at = now + dt.timedelta(seconds=drift * totp.interval)
        if secrets.compare_digest(totp.at(at), code):
            return totp.timecode(at)
    return None


def _use_code(db: Session, user: User, code: str, now: dt.datetime) -> bool:
    step = _step_of(user, code, now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False  # wrong, or already used (a replay)
    # Conditional, so two requests racing with one code cannot both pass.
    return db.execute(update(User).where(
        User.id == user.id, (User.totp_last_step.is_(None)) | (User.totp_last_step < step))
        .values(totp_last_step=step)).rowcount == 1


def confirm_enrolment(db: Session, ctx: AuditContext, user: User, session: UserSession, code: str,
                      now: dt.datetime) -> list[str]:
    """The first code confirms the secret: the factor is on, this session has passed it, and the
    recovery codes are returned (once; only their hashes are kept)."""
    if user.totp_enabled_at is not None:
        raise AccountError("Your authenticator app is already set up.")
    if not _use_code(db, user, code, now):
        raise AccountError("That code is not the one your app shows now; type the current six digits.",
                           "code")
    user.totp_enabled_at = now
    session.mfa_at = now
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    db.add_all(RecoveryCode(user_id=user.id, code_hash=token_hash(c)) for c in codes)
    audit.record(db, ctx, "U", "second_factor", user.id, detail="authenticator app set up")
    db.flush()
    return codes


def verify(db: Session, ctx: AuditContext, user: User, session: UserSession, code: str,
           now: dt.datetime) -> bool:
    """A code from the app, or an unused recovery code, passes the session's second factor."""
    ok = _use_code(db, user, code, now)
    how = "authenticator code"
    if not ok:
        ok = db.execute(update(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
            RecoveryCode.code_hash == token_hash(code.strip().lower())).values(used_at=now)).rowcount == 1
        how = "recovery code"
    audit.record(db, ctx, "login" if ok else "fail", "second_factor", user.id,
                 outcome="ok" if ok else "denied", detail=how if ok else "wrong or used code")
    if ok:
        session.mfa_at = now
    db.flush()
    return ok


def set_required(db: Session, ctx: AuditContext, food_bank: Organization, required: bool) -> None:
    if food_bank.require_mfa != required:
        food_bank.require_mfa = required
        audit.record(db, ctx, "U", "program_settings", food_bank.id,
                     detail=f"second factor for staff: {'required' if required else 'optional'}")
        db.flush()
