"""The admin's pages: the program's people (invites, roles, deactivation, reset links, drivers from a CSV)
and its partners (clinics with address and contacts, depots).

Handlers translate the form into one service call (delivery.program.people, .driver_import, .setup)
and answer with the page and what happened. Links are mailed when SMTP is configured; otherwise the
page shows them to the admin, once, and says so.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromQuery, QueryParameter
from litestar.response import Template
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import Depot, Invite, Membership, Organization, OrganizationKind, Role, User
from delivery.platform import audit as audit_trail
from delivery.platform import mail, mfa, resets
from delivery.platform.audit import AuditContext
from delivery.platform.settings import Settings
from delivery.program import driver_import, people, setup
from delivery.web.forms import Errors, FormData, convert
from delivery.web.render import DB, Audit, Config, PathId, clock_of, page, principal

POLICY = {"roles": (Role.admin,)}
AUDIT_PAGE_ROWS = 50
PatientFilter = Annotated[int, QueryParameter(ge=0, le=2**31 - 1, description="A patient id; 0 for all")]
PageNumber = Annotated[int, QueryParameter(name="page", ge=1, le=10**6, description="1 is the newest rows")]
ROLE_OPTIONS = [(r.value, people.ROLE_NAMES[r]) for r in (Role.coordinator, Role.clinic_staff, Role.benefits,
                                                          Role.driver, Role.admin)]


class InviteForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
    role: Role
    clinic_id: int | None = None


class ClinicForm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    address: Annotated[str, Meta(max_length=300)] = ""
    contacts: Annotated[str, Meta(max_length=500)] = ""


class DriverUpload(msgspec.Struct, kw_only=True):
    file: UploadFile | None = None
    csrf_token: str = ""


def _fields(data: dict[str, Any], struct: type[msgspec.Struct]) -> dict[str, Any]:
    """The struct's own fields of a form, stripped, blanks left out (so defaults and 'required' apply)."""
    names = {f.encode_name for f in msgspec.structs.fields(struct)}
    return {k: v.strip() for k, v in data.items() if k in names and isinstance(v, str) and v.strip()}


def food_bank_of(db: Session, request: Request) -> Organization:
    mine = principal(request).organizations_with(Role.admin)
    food_bank = db.scalar(select(Organization).where(Organization.id.in_(mine),
                                                     Organization.kind == OrganizationKind.food_bank)
                          .order_by(Organization.id).limit(1))
    if food_bank is None:
        raise NotFoundException("You are not the admin of a program.")
    return food_bank


def clinics_of(db: Session, food_bank: Organization) -> list[Organization]:
    return list(db.scalars(select(Organization).where(Organization.food_bank_id == food_bank.id)
                           .order_by(Organization.name)))


def _person(db: Session, request: Request, user_id: int) -> tuple[Organization, User]:
    """A person of the admin's program (404 for anyone else's)."""
    food_bank = food_bank_of(db, request)
    orgs = [food_bank.id, *(c.id for c in clinics_of(db, food_bank))]
    user = db.scalar(select(User).join(Membership)
                     .where(User.id == user_id, Membership.organization_id.in_(orgs)))
    if user is None:
        raise NotFoundException("No such person in your program.")
    return food_bank, user


def _invite(db: Session, request: Request, invite_id: int) -> tuple[Organization, Invite]:
    food_bank = food_bank_of(db, request)
    orgs = [food_bank.id, *(c.id for c in clinics_of(db, food_bank))]
    row = db.get(Invite, invite_id)
    if row is None or row.organization_id not in orgs:
        raise NotFoundException("No such invite.")
    return food_bank, row


def deliver(settings: Settings, message: mail.Mail, link: str, what: str) -> tuple[str, str | None]:
    """Mail a link, or hand it to the admin when there is no SMTP server: (notice, link to show)."""
    if not mail.configured(settings):
        return (f"No email server is configured, so nothing was sent: give {message.to} this {what} "
                "yourself (it works once).", link)
    try:
        mail.send(settings, message)
    except mail.MailError as exc:
        return f"The {what} could not be mailed ({exc}); give it to {message.to} yourself.", link
    return f"The {what} was mailed to {message.to}.", None


class AdminController(Controller):
    path = "/admin"

    def _people(self, request: Request, db: Session, *, notice: str | None = None, link: str | None = None,
                errors: Errors | None = None, values: dict[str, Any] | None = None,
                report: driver_import.DriverImport | None = None, status_code: int = 200) -> Template:
        food_bank = food_bank_of(db, request)
        clinics = clinics_of(db, food_bank)
        orgs = [food_bank.id, *(c.id for c in clinics)]
        members = db.execute(select(User, Membership).join(Membership)
                             .where(Membership.organization_id.in_(orgs))
                             .order_by(User.is_active.desc(), User.display_name)).unique().all()
        now = clock_of(request).now()
        invites = db.scalars(select(Invite).where(Invite.organization_id.in_(orgs),
                                                  Invite.accepted_at.is_(None), Invite.revoked_at.is_(None),
                                                  Invite.expires_at > now - dt.timedelta(days=7))
                             .order_by(Invite.created_at.desc()).limit(100)).all()
        return page(request, "admin/people.html", food_bank=food_bank, clinics=clinics, members=members,
                    invites=invites, now=now, roles=ROLE_OPTIONS, role_names=people.ROLE_NAMES,
                    notice=notice, link=link, errors=errors or {}, values=values or {}, report=report,
                    smtp=mail.configured(request.app.state.settings), me_id=principal(request).user_id,
                    columns=driver_import.COLUMNS, status_code=status_code)

    def _send_invite(self, request: Request, db: Session, settings: Settings, food_bank: Organization,
                     issued: people.IssuedInvite) -> Template:
        """Commit the invite, then mail its link (or show it) and answer with the page."""
        message = people.invite_mail(settings, issued, program=food_bank.name,
                                     inviter=principal(request).display_name)
        db.commit()
        notice, link = deliver(settings, message, people.link(settings.base_url, issued.raw), "invite link")
        return self._people(request, db, notice=notice, link=link)

    @get("/", opt=POLICY, sync_to_thread=True)
    def people_page(self, request: Request, db: DB, started: FromQuery[bool] = False) -> Template:
        """The program's people and open invites, with the invite form."""
        notice = ("Your program is ready. Next: add clinics' details and depots on the partners page, "
                  "then invite coordinators, clinic staff and drivers.") if started else None
        return self._people(request, db, notice=notice)

    @post("/second-factor", opt=POLICY, sync_to_thread=True, status_code=200)
    def second_factor(self, request: Request, db: DB, audit: Audit, data: FormData) -> Template:
        """Require (or stop requiring) a second factor of the program's staff and its clinics' (R1.2)."""
        required = str(data.get("required", "")) == "on"
        mfa.set_required(db, audit, food_bank_of(db, request), required)
        db.commit()
        return self._people(request, db, notice="Staff now sign in with a code from an authenticator app."
                            if required else "Staff sign in with their password only.")

    @post("/invites", opt=POLICY, sync_to_thread=True, status_code=200)
    def invite(self, request: Request, db: DB, audit: Audit, settings: Config, data: FormData) -> Template:
        """Invite a person with a role: the link is mailed, or shown here when there is no SMTP."""
        food_bank = food_bank_of(db, request)
        form, errors = convert(InviteForm, _fields(data, InviteForm))
        if form is not None:
            try:
                organization = people.organization_for(db, food_bank, form.role, form.clinic_id)
                issued = people.invite(db, audit, email=form.email, role=form.role, organization=organization,
                                       now=clock_of(request).now())
            except people.PeopleError as exc:
                errors = {exc.field or "email": str(exc)}
        if errors:
            db.rollback()
            return self._people(request, db, errors=errors, values=data, status_code=422)
        return self._send_invite(request, db, settings, food_bank, issued)

    @post("/invites/{invite_id:int}/resend", opt=POLICY, sync_to_thread=True, status_code=200)
    def resend_invite(self, request: Request, db: DB, audit: Audit, settings: Config,
                      invite_id: PathId) -> Template:
        """A fresh link and 72 more hours; the old link stops working."""
        food_bank, row = _invite(db, request, invite_id)
        try:
            issued = people.resend(db, audit, row, now=clock_of(request).now())
        except people.PeopleError as exc:
            db.rollback()
            return self._people(request, db, notice=str(exc), status_code=422)
        return self._send_invite(request, db, settings, food_bank, issued)

    @post("/invites/{invite_id:int}/revoke", opt=POLICY, sync_to_thread=True, status_code=200)
    def revoke_invite(self, request: Request, db: DB, audit: Audit, invite_id: PathId) -> Template:
        _, row = _invite(db, request, invite_id)
        try:
            people.revoke(db, audit, row, now=clock_of(request).now())
        except people.PeopleError as exc:
            db.rollback()
            return self._people(request, db, notice=str(exc), status_code=422)
        db.commit()
        return self._people(request, db, notice=f"The invite to {row.email} no longer works.")

    @post("/people/{user_id:int}/deactivate", opt=POLICY, sync_to_thread=True, status_code=200)
    def deactivate(self, request: Request, db: DB, audit: Audit, user_id: PathId) -> Template:
        """The person is signed out everywhere at once and cannot sign in again (R2.6)."""
        _, user = _person(db, request, user_id)
        try:
            people.deactivate(db, audit, user)
        except people.PeopleError as exc:
            db.rollback()
            return self._people(request, db, notice=str(exc), status_code=422)
        db.commit()
        return self._people(request, db, notice=f"{user.display_name} is deactivated and signed out.")

    @post("/people/{user_id:int}/role", opt=POLICY, sync_to_thread=True, status_code=200)
    def change_role(self, request: Request, db: DB, audit: Audit, user_id: PathId,
                    data: FormData) -> Template:
        """A new role for a person (clinic staff belong to one clinic); on the audit trail."""
        food_bank, user = _person(db, request, user_id)
        try:
            role = Role(str(data.get("role", "")))
            clinic = str(data.get("clinic_id", "")).strip()
            clinic_id = int(clinic) if clinic.isdigit() else None
            organization = people.organization_for(db, food_bank, role, clinic_id)
            people.change_role(db, audit, user, organization=organization, role=role)
        except ValueError as exc:  # an unknown role, or PeopleError
            db.rollback()
            return self._people(request, db, notice=str(exc), status_code=422)
        db.commit()
        return self._people(request, db, notice=f"{user.display_name} is now {people.ROLE_NAMES[role]}.")

    @post("/people/{user_id:int}/reset", opt=POLICY, sync_to_thread=True, status_code=200)
    def reset_link(self, request: Request, db: DB, audit: Audit, settings: Config,
                   user_id: PathId) -> Template:
        """A password reset link for someone who cannot get one by email themselves."""
        food_bank, user = _person(db, request, user_id)
        link = resets.request_reset(db, audit, user.email, clock_of(request).now())
        if link is None:
            return self._people(request, db, notice=f"{user.display_name} is deactivated.", status_code=422)
        db.commit()
        url = f"{settings.base_url.rstrip('/')}/reset/{link.raw}"
        message = mail.render("reset", user.email, program=food_bank.name, email=user.email, link=url,
                              expires=f"{link.expires_at:%d %b %Y %H:%M} UTC")
        notice, shown = deliver(settings, message, url, "password reset link")
        return self._people(request, db, notice=notice, link=shown)

    @post("/drivers/import", opt=POLICY, sync_to_thread=True, status_code=200)
    def import_drivers(self, request: Request, db: DB,
                       data: Annotated[DriverUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
                       ) -> Template:
        """Drivers from a CSV: all rows or none, with a report of every row to fix."""
        food_bank = food_bank_of(db, request)
        upload = data.file if isinstance(data.file, UploadFile) else None
        content = upload.file.read(driver_import.MAX_BYTES + 1) if upload else b""
        if upload:
            upload.file.close()
        report = driver_import.import_drivers(db, food_bank.id, content)
        if not report.ok:
            db.rollback()
            return self._people(request, db, report=report, status_code=422)
        db.commit()
        return self._people(request, db, report=report,
                            notice=f"{report.imported} drivers added. They sign in through the personal "
                                   "route links you send them; invite them to give them a password too.")

    # --- the audit trail (R10.5): review and export, each itself audited ------------------------------

    def _audit_filter(self, request: Request, db: Session, patient: int, user: str, since: dt.date | None,
                      until: dt.date | None) -> tuple[audit_trail.Filter, str | None]:
        food_bank = food_bank_of(db, request)
        orgs = [food_bank.id, *(c.id for c in clinics_of(db, food_bank))]
        user_id, problem = None, None
        if user.strip():
            user_id = db.scalar(select(User.id).where(User.email == user.strip().lower()))
            if user_id is None:
                problem = f"No account has the email {user.strip()}: showing no rows."
                user_id = 0  # matches nothing
        if since and until and since > until:
            problem = "The first day is after the last day: showing no rows."
        return audit_trail.Filter(orgs, patient_id=patient or None, user_id=user_id, since=since,
                                  until=until), problem

    @staticmethod
    def _described(f: audit_trail.Filter) -> str:
        return (f"patient={f.patient_id or ''} user={f.user_id or ''} since={f.since or ''} "
                f"until={f.until or ''}")

    @get("/audit", opt=POLICY, sync_to_thread=True)
    def audit_review(self, request: Request, db: DB, audit: Audit, patient: FromQuery[PatientFilter] = 0,
                     user: FromQuery[Annotated[str, QueryParameter(max_length=254)]] = "",
                     since: FromQuery[dt.date | None] = None, until: FromQuery[dt.date | None] = None,
                     page_number: PageNumber = 1) -> Template:
        """Who saw or changed what, newest first, filtered by patient, person and UTC days."""
        f, problem = self._audit_filter(request, db, patient, user, since, until)
        rows, total = ([], 0) if problem else audit_trail.page_of(db, f, page=page_number,
                                                                  per_page=AUDIT_PAGE_ROWS)
        audit_trail.record_now(request.app.state.database, audit, "R", "audit_events",
                               detail=f"review page {page_number}: {self._described(f)}")
        query = {"patient": patient or "", "user": user, "since": since or "", "until": until or ""}
        return page(request, "admin/audit.html", rows=rows, total=total, page_number=page_number,
                    pages=max(1, -(-total // AUDIT_PAGE_ROWS)), query=query, problem=problem)

    @get("/audit.csv", opt=POLICY, sync_to_thread=True)
    def audit_export(self, request: Request, db: DB, audit: Audit, patient: FromQuery[PatientFilter] = 0,
                     user: FromQuery[Annotated[str, QueryParameter(max_length=254)]] = "",
                     since: FromQuery[dt.date | None] = None,
                     until: FromQuery[dt.date | None] = None) -> Response[str]:
        """The same rows as a spreadsheet-safe CSV; the export is on the trail too (R10.2)."""
        f, problem = self._audit_filter(request, db, patient, user, since, until)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(audit_trail.EXPORT_COLUMNS)
        if not problem:
            writer.writerows(audit_trail.export_rows(db, f))
        audit_trail.record_now(request.app.state.database, audit, "E", "audit_events",
                               detail=f"export: {self._described(f)}")
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"'})

    # --- partners ---------------------------------------------------------------------------------

    def _partners(self, request: Request, db: Session, *, notice: str | None = None,
                  errors: Errors | None = None, values: dict[str, Any] | None = None,
                  status_code: int = 200) -> Template:
        food_bank = food_bank_of(db, request)
        depots = db.scalars(select(Depot).where(Depot.organization_id == food_bank.id)
                            .order_by(Depot.id)).all()
        return page(request, "admin/partners.html", food_bank=food_bank, clinics=clinics_of(db, food_bank),
                    depots=depots, notice=notice, errors=errors or {}, values=values or {},
                    status_code=status_code)

    @get("/partners", opt=POLICY, sync_to_thread=True)
    def partners(self, request: Request, db: DB) -> Template:
        """Clinic partners (name, address, contacts) and the program's depots."""
        return self._partners(request, db)

    @post("/partners/clinics", opt=POLICY, sync_to_thread=True, status_code=200)
    def add_clinic(self, request: Request, db: DB, audit: Audit, data: FormData) -> Template:
        return self._save_clinic(request, db, audit, None, data)

    @post("/partners/clinics/{clinic_id:int}", opt=POLICY, sync_to_thread=True, status_code=200)
    def update_clinic(self, request: Request, db: DB, audit: Audit, clinic_id: PathId,
                      data: FormData) -> Template:
        return self._save_clinic(request, db, audit, clinic_id, data)

    def _save_clinic(self, request: Request, db: Session, audit: AuditContext, clinic_id: int | None,
                     data: dict[str, Any]) -> Template:
        food_bank = food_bank_of(db, request)
        form, errors = convert(ClinicForm, _fields(data, ClinicForm))
        clinic = None
        if clinic_id is not None:
            clinic = next((c for c in clinics_of(db, food_bank) if c.id == clinic_id), None)
            if clinic is None:
                raise NotFoundException("No such clinic in your program.")
        if form is not None:
            try:
                clinic = people.save_clinic(db, audit, food_bank, clinic, name=form.name,
                                            address=form.address,
                                            contacts=form.contacts)
            except people.PeopleError as exc:
                errors = {exc.field or "name": str(exc)}
        if errors or clinic is None:
            db.rollback()
            key = f"clinic-{clinic_id}" if clinic_id else "clinic-new"
            return self._partners(request, db, errors={key: next(iter(errors.values()))},
                                  values={key: data}, status_code=422)
        db.commit()
        return self._partners(request, db, notice=f"{clinic.name} saved.")

    @post("/partners/depots", opt=POLICY, sync_to_thread=True, status_code=200)
    def add_depot(self, request: Request, db: DB, data: FormData) -> Template:
        """Another place where drivers load boxes."""
        food_bank = food_bank_of(db, request)
        form, errors = convert(setup.DepotIn, _fields(data, setup.DepotIn))
        if form is not None:
            try:
                setup.add_depot(db, food_bank, form)
            except setup.SetupError as exc:
                errors = {"depot": str(exc)}
        if errors:
            db.rollback()
            return self._partners(request, db, errors={"depot": "; ".join(f"{k}: {v}" if k else v
                                                                         for k, v in errors.items())},
                                  values={"depot": data}, status_code=422)
        db.commit()
        return self._partners(request, db, notice=f"Depot {form.name} added.")
