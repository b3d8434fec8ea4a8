"""Clinic staff's pages: refer a patient, see their referrals and where each one stands."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.loop import clinic_view, receipts
from delivery.models import (
    BoxType,
    Cadence,
    Dietary,
    HungerAnswer,
    NeedKind,
    NeedStatus,
    Order,
    OrderStatus,
    Organization,
    Referral,
    Role,
    SnapAnswer,
    Source,
)
from delivery.platform import audit as audit_trail
from delivery.platform.db import Database
from delivery.platform.errors import FieldError
from delivery.program import benefits, partnerships, waitlist
from delivery.referrals import csv_import, geocoding, intake, needs
from delivery.referrals.eligibility import answers_of
from delivery.referrals.schemas import ReferralIn
from delivery.timeline import events as timeline
from delivery.timeline.text import NEED_LABELS, needs_text
from delivery.web.api.referrals import visible_referral
from delivery.web.forms import convert
from delivery.web.render import DB, Audit, PathId, clock_of, page, principal, program_today

STAFF = (Role.clinic_staff,)
FILTERS = [(None, "All"), (clinic_view.Filter.waiting, "Waiting or waitlisted"),
           (clinic_view.Filter.active, "Active"),
           (clinic_view.Filter.awaiting_receipt, "Delivered this week, receipt not recorded"),
           (clinic_view.Filter.failed, "Failed attempts"), (clinic_view.Filter.ended, "Ended")]
NEED_STATUS_WORDS = {NeedStatus.open: "Open", NeedStatus.referred_on: "Referred on",
                     NeedStatus.resolved: "Resolved"}
SOURCE_WORDS = {"web": "referral form", "api": "clinic system (API)", "csv": "CSV import",
                "fhir": "FHIR referral", "demo": "demo", "driver": "a driver at the door"}
FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


@dataclass
class CsvUploadForm:
    """The import form: the file (and the CSRF field, which the guard checks)."""

    file: UploadFile | None = None
    csrf_token: str = ""


CsvUpload = Annotated[CsvUploadForm, Body(media_type=RequestEncodingType.MULTI_PART)]
LIST_FIELDS = {"patient.dietary", "needs.picks"}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
LANGUAGES = [("en", "English"), ("es", "Spanish"), ("yue", "Cantonese"), ("zh", "Mandarin"),
             ("vi", "Vietnamese"), ("tl", "Tagalog"), ("ar", "Arabic"), ("mam", "Mam")]


def nest(form: dict[str, Any]) -> dict[str, Any]:
    """Dotted form names (`patient.address.city`) into the nested body the API takes.
    Blank inputs are left out, so defaults apply and required fields say they are required."""
    body: dict[str, Any] = {}
    for name, raw in form.items():
        if name == "csrf_token":
            continue
        value = raw if name in LIST_FIELDS else (raw[-1] if isinstance(raw, list) else raw)
        if name in LIST_FIELDS and not isinstance(value, list):
            value = [value]
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        *parents, leaf = name.split(".")
        target = body
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return body


CHANGEABLE = {"given_name": "given name", "family_name": "family name", "birth_date": "birth date",
              "phone": "phone", "language": "language", "floor": "floor", "elevator": "elevator",
              "access_notes": "access notes", "dietary": "dietary needs",
              "do_not_contact": "do not contact", "text_consent": "consent to texts", "address": "address"}


def changed_fields(query: str) -> list[tuple[str, bool]]:
    """`phone,address:proposed` from the redirect into [(words, applied)], known fields only."""
    found = []
    for part in query.split(",")[:len(CHANGEABLE)]:
        name, _, flag = part.partition(":")
        if name in CHANGEABLE:
            found.append((CHANGEABLE[name], flag != "proposed"))
    return found


def staff_clinic(db: Session, request: Request) -> Organization:
    clinic_id = principal(request).organizations_with(Role.clinic_staff)[0]
    clinic = db.get(Organization, clinic_id)
    assert clinic is not None
    return clinic


def form_context(request: Request, db: Session, clinic: Organization) -> dict[str, Any]:
    food_bank = db.get(Organization, clinic.food_bank_id) if clinic.food_bank_id else None
    today = program_today(request, food_bank) if food_bank else None
    return {
        "clinic": clinic,
        "program": waitlist.program_status(db, food_bank, today) if food_bank and today else None,
        # What is left of the clinic's weekly allocation, shown before staff refer.
        "allowance": partnerships.allowance(db, food_bank, clinic.id, today) if food_bank and today else None,
        "allocation_units": partnerships.UNIT_WORDS,
        "hunger_answers": [(HungerAnswer.often, "Often true"), (HungerAnswer.sometimes, "Sometimes true"),
                           (HungerAnswer.never, "Never true")],
        "dietary_options": [d.value for d in Dietary],
        # The program's box types (all of them until it chooses).
        "box_types": food_bank.box_types if food_bank and food_bank.box_types else [b.value for b in BoxType],
        "cadences": [(Cadence.weekly, "Every week"), (Cadence.biweekly, "Every two weeks"),
                     (Cadence.once, "Once")],
        "weekdays": list(enumerate(WEEKDAYS)), "languages": LANGUAGES,
        "snap_answers": [(SnapAnswer.yes, "Yes"), (SnapAnswer.no, "No"), (SnapAnswer.unknown, "Don't know")],
        "need_options": [(k.value, NEED_LABELS[k]) for k in NeedKind],
        "default_weekday": food_bank.delivery_weekday if food_bank else None,
    }


class ClinicController(Controller):
    path = "/clinic"

    @get("/", opt={"roles": STAFF, "phi": ("R", "referral")}, sync_to_thread=True)
    def referrals(self, request: Request, db: DB, audit: Audit,
                  show: FromQuery[clinic_view.Filter | None] = None) -> Template:
        """The clinic's referrals, newest first, by state, with the program's capacity and the
        share of patients who received boxes each week."""
        clinic = staff_clinic(db, request)
        rows = db.execute(
            select(Referral, Order).outerjoin(Order, (Order.referral_id == Referral.id)
                                              & (Order.status != OrderStatus.ended))
            .where(Referral.clinic_id == clinic.id).order_by(Referral.id.desc()).limit(500)
        ).all()
        last = clinic_view.last_kinds(db, [r.id for r, _ in rows])
        food_bank = db.get(Organization, clinic.food_bank_id) if clinic.food_bank_id else None
        today = program_today(request, food_bank) if food_bank else clock_of(request).today("UTC")
        week_start = today - dt.timedelta(days=today.weekday())
        if show is not None:
            rows = [(r, o) for r, o in rows if clinic_view.matches(show, r, last.get(r.id), week_start)]
        rows = rows[:200]
        audit_trail.record_reads(request.app.state.database, audit, "referral",
                                 ((r.id, r.patient_id) for r, _ in rows), detail="clinic's referral list")
        return page(request, "clinic/referrals.html", rows=rows, show=show, filters=FILTERS,
                    last=last, weeks=clinic_view.weekly_share(db, clinic.id, today),
                    **form_context(request, db, clinic))

    @get("/referrals/new", opt={"roles": STAFF}, sync_to_thread=True)
    def new_referral(self, request: Request, db: DB) -> Template:
        clinic = staff_clinic(db, request)
        return page(request, "clinic/referral_new.html", values={}, errors={},
                    **form_context(request, db, clinic))

    @post("/referrals", opt={"roles": STAFF}, sync_to_thread=True, status_code=200)
    def refer_patient(self, request: Request, db: DB, data: FormData) -> Response | Template:
        """Validate every field, then refer through the same service as the API and the CSV import."""
        clinic = staff_clinic(db, request)
        body = nest(data)
        body.setdefault("patient", {})["consent_to_share"] = "patient.consent_to_share" in data
        referral_in, errors = convert(ReferralIn, body)
        if not body["patient"]["consent_to_share"]:
            referral_in = None
            errors["patient.consent_to_share"] = ("Ask the patient first: home delivery shares their name, "
                                                  "address and phone with the food bank and its drivers.")
        if referral_in is not None:
            try:
                result = intake.refer(db, referral_in, clinic_id=clinic.id,
                                      actor_id=principal(request).user_id, source=Source.web,
                                      clock=clock_of(request))
            except intake.IntakeError as exc:
                errors = {exc.field or "": str(exc)}
            else:
                geocoding.review_if_off(db, request.app.state.settings)
                db.commit()
                target = f"/clinic/referrals/{result.referral.id}"
                if not result.created:
                    target += "?already=1"
                if result.changes:  # names only (never values: no PHI in URLs); the timeline has both
                    target += ("&" if "?" in target else "?") + "changed=" + ",".join(
                        c.field if c.applied else f"{c.field}:proposed" for c in result.changes)
                if request.headers.get("hx-request"):
                    return ClientRedirect(target)
                return Redirect(target, status_code=303)
        fragment = "referral_form" if request.headers.get("hx-request") else None
        return page(request, "clinic/referral_new.html", block=fragment, status_code=422, values=data,
                    errors=errors, **form_context(request, db, clinic))

    @get("/referrals/{referral_id:int}", opt={"roles": STAFF, "phi": ("R", "referral")}, sync_to_thread=True)
    def referral_detail(self, request: Request, db: DB, audit: Audit, referral_id: PathId,
                        already: FromQuery[bool] = False, changed: FromQuery[str] = "") -> Template:
        referral = visible_referral(db, principal(request), referral_id)
        audit_trail.record_reads(request.app.state.database, audit, "referral",
                                 [(referral.id, referral.patient_id)])
        order = db.scalar(select(Order).where(Order.referral_id == referral.id)
                          .order_by(Order.id.desc()))
        return self._referral_page(request, db, referral, order, already=already,
                                   changed=changed_fields(changed))

    def _referral_page(self, request: Request, db: Session, referral: Referral, order: Order | None, *,
                       already: bool = False, changed: list[tuple[str, bool]] | None = None,
                       error: str | None = None, benefits_error: str | None = None,
                       status_code: int = 200) -> Template:
        events = timeline.history(db, referral.id)
        food_bank = db.get(Organization, referral.food_bank_id)
        tz = food_bank.timezone if food_bank else "UTC"
        state = clinic_view.current_state(events, tz, clinic_view.drivers_of(db, events))
        delivery = receipts.last_delivery(db, referral.id)
        can_receipt = delivery is not None and receipts.receipt_for(
            db, referral.id, delivery.data["stop_id"]) is None
        return page(request, "clinic/referral.html", referral=referral, order=order,
                    needs=needs.of_referral(db, referral.id), needs_text=needs_text,
                    benefits_case=benefits.of_referral(db, referral.id), benefits_error=benefits_error,
                    events=list(reversed(events)), state=state, can_receipt=can_receipt, tz=tz,
                    receipt_error=error, position=waitlist.position(db, order) if order else None,
                    already=already, changed=changed or [], weekdays=WEEKDAYS, status_code=status_code,
                    local=clinic_view.local)

    @post("/referrals/{referral_id:int}/receipt", opt={"roles": STAFF}, sync_to_thread=True,
          status_code=200)
    def record_receipt(self, request: Request, db: DB, referral_id: PathId,
                       data: FormData) -> Response | Template:
        """The receipt form: the same service as `POST /api/v1/referrals/{id}/receipt`."""
        who = principal(request)
        referral = visible_referral(db, who, referral_id)
        received = data.get("received") == "yes"
        try:
            receipts.record_receipt(db, referral, received=received, note=str(data.get("note") or ""),
                                    actor_id=who.user_id)
        except FieldError as exc:
            order = db.scalar(select(Order).where(Order.referral_id == referral.id).order_by(Order.id.desc()))
            return self._referral_page(request, db, referral, order, error=str(exc), status_code=422)
        db.commit()
        return Redirect(f"/clinic/referrals/{referral.id}", status_code=303)

    @post("/referrals/{referral_id:int}/benefits", opt={"roles": STAFF}, sync_to_thread=True,
          status_code=200)
    def flag_for_benefits(self, request: Request, db: DB, referral_id: PathId) -> Response | Template:
        """The patient wants help enrolling in SNAP/CalFresh: onto the benefits-enrollment worklist."""
        who = principal(request)
        referral = visible_referral(db, who, referral_id)
        try:
            benefits.flag_on_request(db, referral, food_insecure=answers_of(referral.screening).food_insecure,
                                     actor_id=who.user_id, now=clock_of(request).now())
        except FieldError as exc:
            db.rollback()
            order = db.scalar(select(Order).where(Order.referral_id == referral.id).order_by(Order.id.desc()))
            return self._referral_page(request, db, referral, order, benefits_error=str(exc), status_code=422)
        db.commit()
        return Redirect(f"/clinic/referrals/{referral.id}", status_code=303)

    # --- "what else do you need?": the clinic's own worklist (delivery.referrals.needs) ---------------

    @get("/needs", opt={"roles": STAFF}, sync_to_thread=True)
    def needs_list(self, request: Request, db: DB, audit: Audit, show: FromQuery[str] = "open") -> Template:
        """The needs patients and drivers named, for this clinic's staff only: open first."""
        return self._needs_page(request, db, audit, show=show)

    def _needs_page(self, request: Request, db: Session, audit: Audit, *, show: str = "open",
                    errors: dict[int, str] | None = None, status_code: int = 200) -> Template:
        clinic = staff_clinic(db, request)
        rows = needs.worklist(db, clinic.id, include_resolved=show == "all")
        audit_trail.record_reads(request.app.state.database, audit, "need",
                                 ((n.id, n.patient_id) for n in rows), detail="clinic needs list")
        return page(request, "clinic/needs.html", clinic=clinic, rows=rows, show=show, needs_text=needs_text,
                    moves=needs.MOVES, status_words=NEED_STATUS_WORDS, sources=SOURCE_WORDS,
                    errors=errors or {},
                    status_code=status_code)

    @post("/needs/{need_id:int}", opt={"roles": STAFF}, sync_to_thread=True, status_code=200)
    def mark_need(self, request: Request, db: DB, audit: Audit, need_id: PathId,
                  data: FormData) -> Response | Template:
        """Referred on or resolved, with a note that shows on the referral's timeline."""
        need = needs.clinic_need(db, principal(request).organizations_with(Role.clinic_staff), need_id)
        try:
            needs.mark(db, audit, need, status=str(data.get("status") or ""),
                       note=str(data.get("note") or ""), now=clock_of(request).now())
        except FieldError as exc:
            db.rollback()
            return self._needs_page(request, db, audit, errors={need_id: str(exc)}, status_code=422)
        db.commit()
        return Redirect("/clinic/needs", status_code=303)

    # --- bulk intake from a CSV file (delivery.referrals.csv_import) ---------------------------------

    @get("/referrals/import", opt={"roles": STAFF}, sync_to_thread=True)
    def import_form(self, request: Request, db: DB) -> Template:
        """The upload form, the columns a file may have, and a template to download."""
        clinic = staff_clinic(db, request)
        return page(request, "clinic/import.html", clinic=clinic, report=None,
                    columns=csv_import.columns_help())

    @get("/referrals/import/template.csv", opt={"roles": STAFF}, sync_to_thread=False)
    def import_template(self) -> Response[str]:
        """A CSV with the header and one example row, for people to fill in."""
        return Response(csv_import.template_csv(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="referrals-template.csv"'})

    @post("/referrals/import", opt={"roles": STAFF}, sync_to_thread=True, status_code=200)
    def import_referrals(self, request: Request, db: DB, data: CsvUpload) -> Template:
        """Check the whole file on a reader; then import every row (one transaction, the writer's
        only part) or none, and show the report."""
        upload = data.file if isinstance(data.file, UploadFile) else None
        database: Database = request.app.state.database
        with database.reader() as reader:  # parsing and checking a big file takes seconds
            clinic = staff_clinic(reader, request)
            if upload is None or not upload.filename:
                report = csv_import.ImportReport(source="upload")
                report.add(None, None, "Choose a CSV file to import.")
                checked = csv_import.Checked(report, [])
            else:
                with upload.file:  # a spooled temporary file: close it, not the garbage collector
                    content = upload.file.read()
                checked = csv_import.check_file(reader, content, clinic_id=clinic.id,
                                                source_name=upload.filename[:200])
        report = csv_import.import_checked(db, checked, actor_id=principal(request).user_id,
                                           clock=clock_of(request))
        if report.ok:
            geocoding.review_if_off(db, request.app.state.settings)
            db.commit()
        else:
            db.rollback()
        return page(request, "clinic/import.html", status_code=200 if report.ok else 422, clinic=clinic,
                    report=report, columns=csv_import.columns_help())
