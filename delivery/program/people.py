"""The program's people: invites (a single-use link, valid 72 hours, to set a password and join with a
role), resending and revoking them, deactivating a person and changing their role.

Every change leaves an audit row (`delivery.platform.audit.record`) naming who made it. Services do
not commit; the caller does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from delivery.models import (
    Driver,
    Invite,
    Membership,
    Organization,
    OrganizationKind,
    Role,
    User,
)
from delivery.platform import audit, auth, mail
from delivery.platform.audit import AuditContext
from delivery.platform.errors import FieldError
from delivery.platform.settings import Settings

VALID_FOR = dt.timedelta(hours=72)
NEW_DRIVER_CAPACITY = 8  # boxes; the coordinator sets the real car on the drivers page
ROLE_NAMES = {Role.admin: "admin", Role.coordinator: "coordinator", Role.clinic_staff: "clinic staff",
              Role.benefits: "benefits enrollment", Role.driver: "driver"}


class PeopleError(FieldError):
    """A change to the program's people that cannot be made; the message says what to fix."""


@dataclass(frozen=True)
class IssuedInvite:
    invite: Invite
    raw: str  # the secret of the link, shown or mailed once


def link(base_url: str, raw: str) -> str:
    return f"{base_url.rstrip('/')}/invite/{raw}"


def invite_mail(settings: Settings, issued: IssuedInvite, *, program: str, inviter: str | None) -> mail.Mail:
    """The invite as it is mailed (English until people carry a language of their own)."""
    row = issued.invite
    return mail.render("invite", row.email, program=program, inviter=inviter,
                       role=ROLE_NAMES[Role(row.role)], organization=row.organization.name,
                       link=link(settings.base_url, issued.raw),
                       expires=f"{row.expires_at:%d %b %Y %H:%M} UTC")


def program_of(db: Session, organization: Organization) -> Organization:
    """The food bank whose program an organization belongs to (itself for a food bank)."""
    if organization.kind == OrganizationKind.food_bank or organization.food_bank_id is None:
        return organization
    program = db.get(Organization, organization.food_bank_id)
    assert program is not None
    return program


def organization_for(db: Session, food_bank: Organization, role: Role, clinic_id: int | None) -> Organization:
    """Where a role belongs: clinic staff at one of the program's clinics; benefits-enrollment staff
    at a clinic (its patients) when one is chosen, else at the food bank (the whole program's);
    everyone else at the food bank."""
    if role not in (Role.clinic_staff, Role.benefits) or (role == Role.benefits and not clinic_id):
        return food_bank
    clinic = db.get(Organization, clinic_id) if clinic_id else None
    if clinic is None or clinic.kind != OrganizationKind.clinic or clinic.food_bank_id != food_bank.id:
        raise PeopleError("Choose the clinic this person works at.", "clinic_id")
    return clinic


def invite(db: Session, ctx: AuditContext, *, email: str, role: Role, organization: Organization,
           now: dt.datetime) -> IssuedInvite:
    """A new invite; any earlier open invite for the same address stops working."""
    email = auth.normalise_email(email)
    if "@" not in email or len(email) > 254:
        raise PeopleError(f"{email!r} is not an email address.", "email")
    user = db.scalar(select(User).where(User.email == email))
    if user is not None and user.password_hash is not None:
        raise PeopleError(f"{email} already has an account: change their role on the people page.", "email")
    db.execute(update(Invite).where(Invite.email == email, Invite.accepted_at.is_(None),
                                    Invite.revoked_at.is_(None)).values(revoked_at=now))
    raw, hashed = auth.new_link_secret()
    row = Invite(email=email, role=role, organization_id=organization.id, token_hash=hashed,
                 invited_by_id=ctx.user_id, created_at=now, expires_at=now + VALID_FOR)
    db.add(row)
    db.flush()
    audit.record(db, ctx, "C", "invite", row.id, detail= f"invited {email} as {role} at {organization.name}")
    return IssuedInvite(row, raw)


def resend(db: Session, ctx: AuditContext, row: Invite, *, now: dt.datetime) -> IssuedInvite:
    """A fresh link (and 72 hours) for an open invite; the old link stops working."""
    if row.accepted_at is not None:
        raise PeopleError("This invite was already accepted.")
    raw, hashed = auth.new_link_secret()
    row.token_hash, row.expires_at, row.revoked_at = hashed, now + VALID_FOR, None
    db.flush()
    audit.record(db, ctx, "U", "invite", row.id, detail=f"invite to {row.email} sent again")
    return IssuedInvite(row, raw)


def revoke(db: Session, ctx: AuditContext, row: Invite, *, now: dt.datetime) -> None:
    if row.accepted_at is not None:
        raise PeopleError("This invite was already accepted: deactivate the person instead.")
    row.revoked_at = now
    db.flush()
    audit.record(db, ctx, "D", "invite", row.id, detail=f"invite to {row.email} revoked")


def open_invite(db: Session, raw: str, now: dt.datetime) -> Invite | None:
    """The invite behind a link while it can still be used, else None."""
    row = db.scalar(select(Invite).where(Invite.token_hash == auth.token_hash(raw)))
    if row is None or row.accepted_at is not None or row.revoked_at is not None or now >= row.expires_at:
        return None
    return row


def accept(db: Session, ctx: AuditContext, raw: str, *, display_name: str, password: str,
           now: dt.datetime, settings: Settings) -> User:
    """Use the invite: the account gets its password and role (a driver also joins the roster)."""
    # Hashed before the first query (so before a request's writer); a weak password is refused first.
    password_hash = auth.hash_password(password, settings)
    name = display_name.strip()
    if not 1 <= len(name) <= 200:
        raise PeopleError("Write your name as colleagues know you.", "display_name")
    row = open_invite(db, raw, now)
    if row is None:
        raise PeopleError("This invite has expired, was revoked or was already used: ask the admin for a "
                          "new one.")
    user = db.scalar(select(User).where(User.email == row.email))
    if user is None:
        user = auth.create_user(db, email=row.email, display_name=name, memberships=[])
    user.display_name, user.password_hash, user.is_active = name, password_hash, True
    _set_role(db, user, row.organization_id, Role(row.role))
    if row.role == Role.driver:
        program = program_of(db, row.organization)
        driver = db.scalar(select(Driver).where(Driver.user_id == user.id))
        if driver is None:
            db.add(Driver(user_id=user.id, food_bank_id=program.id, capacity_boxes=NEW_DRIVER_CAPACITY))
        else:
            driver.is_active = True
    row.accepted_at = now
    db.flush()
    audit.record(db, ctx.acting_as(user.id, {row.organization_id: row.role}), "U", "invite", row.id,
                 detail=f"{row.email} accepted the invite as {row.role}")
    return user


def _set_role(db: Session, user: User, organization_id: int, role: Role) -> None:
    membership = db.scalar(select(Membership).where(Membership.user_id == user.id,
                                                    Membership.organization_id == organization_id))
    if membership is None:
        db.add(Membership(user_id=user.id, organization_id=organization_id, role=role))
    else:
        membership.role = role
    db.flush()
    db.refresh(user, ["memberships"])


def save_clinic(db: Session, ctx: AuditContext, food_bank: Organization, clinic: Organization | None, *,
                name: str, address: str, contacts: str) -> Organization:
    """Add a clinic partner to the program, or change one's name, address and contacts."""
    name = name.strip()
    taken = db.scalar(select(Organization.id).where(Organization.name == name))
    if taken is not None and (clinic is None or taken != clinic.id):
        raise PeopleError(f"There is already an organization called {name}.", "name")
    if clinic is None:
        clinic = Organization(name=name, kind=OrganizationKind.clinic, food_bank_id=food_bank.id)
        db.add(clinic)
    clinic.name, clinic.address, clinic.contacts = name, address.strip(), contacts.strip()
    db.flush()
    audit.record(db, ctx, "U", "organization", clinic.id, detail=f"clinic partner {name} saved")
    return clinic


def change_role(db: Session, ctx: AuditContext, user: User, *, organization: Organization,
                role: Role) -> None:
    """Give a person another role (clinic staff at `organization`, the others at the food bank)."""
    before = ", ".join(f"{m.role} at {m.organization.name}" for m in user.memberships) or "none"
    if user.id == ctx.user_id and role != Role.admin:
        raise PeopleError("You cannot take away your own admin role: ask another admin.", "role")
    program = program_of(db, organization)
    program_orgs = {program.id} | set(db.scalars(select(Organization.id)
                                                 .where(Organization.food_bank_id == program.id)))
    # One role per person in a program: the new one replaces the old.
    for m in list(user.memberships):
        if m.organization_id in program_orgs and m.organization_id != organization.id:
            db.delete(m)
    _set_role(db, user, organization.id, role)
    audit.record(db, ctx, "U", "user", user.id,
                 detail=f"role of {user.email}: {before} → {role} at {organization.name}")


def deactivate(db: Session, ctx: AuditContext, user: User) -> None:
    """The person can no longer sign in; their sessions and tokens end at once (R2.6)."""
    if user.id == ctx.user_id:
        raise PeopleError("You cannot deactivate yourself: ask another admin.")
    user.is_active = False
    auth.end_all_sessions(db, user.id)
    db.execute(update(Driver).where(Driver.user_id == user.id).values(is_active=False))
    db.flush()
    audit.record(db, ctx, "U", "user", user.id, detail=f"{user.email} deactivated; sessions ended")

