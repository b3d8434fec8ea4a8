"""Clinic staff's pages: refer a patient, see their referrals and where each one stands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.htmx import ClientRedirect
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    BoxType,
    Cadence,
    Dietary,
    HungerAnswer,
    Order,
    OrderStatus,
    Organization,
    Referral,
    Role,
    Source,
)
from delivery.program import waitlist
from delivery.referrals import csv_import, intake
from delivery.referrals.schemas import ReferralIn
from delivery.timeline import events as timeline
from delivery.web.api.referrals import visible_referral
from delivery.web.forms import convert
from delivery.web.render import DB, clock_of, page, principal, program_today

STAFF = (Role.clinic_staff,)
FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


@dataclass
class CsvUploadForm:
    """The import form: the file (and the CSRF field, which the guard checks)."""

    file: UploadFile | None = None
    csrf_token: str = ""


CsvUpload = Annotated[CsvUploadForm, Body(media_type=RequestEncodingType.MULTI_PART)]
LIST_FIELDS = {"patient.dietary"}
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


def staff_clinic(db: Session, request: Request) -> Organization:
    clinic_id = principal(request).organizations_with(Role.clinic_staff)[0]
    clinic = db.get(Organization, clinic_id)
    assert clinic is not None
    return clinic


def form_context(request: Request, db: Session, clinic: Organization) -> dict[str, Any]:
    food_bank = db.get(Organization, clinic.food_bank_id) if clinic.food_bank_id else None
    return {
        "clinic": clinic,
        "program": (waitlist.program_status(db, food_bank, program_today(request, food_bank))
                    if food_bank else None),
        "hunger_answers": [(HungerAnswer.often, "Often true"), (HungerAnswer.sometimes, "Sometimes true"),
                           (HungerAnswer.never, "Never true")],
        "dietary_options": [d.value for d in Dietary], "box_types": [b.value for b in BoxType],
        "cadences": [(Cadence.weekly, "Every week"), (Cadence.biweekly, "Every two weeks"),
                     (Cadence.once, "Once")],
        "weekdays": list(enumerate(WEEKDAYS)), "languages": LANGUAGES,
        "default_weekday": food_bank.delivery_weekday if food_bank else None,
    }


class ClinicController(Controller):
    path = "/clinic"

    @get("/", opt={"roles": STAFF}, sync_to_thread=True)
    def referrals(self, request: Request, db: DB) -> Template:
        """The clinic's referrals, newest first, with the program's capacity."""
        clinic = staff_clinic(db, request)
        rows = db.execute(
            select(Referral, Order).outerjoin(Order, (Order.referral_id == Referral.id)
                                              & (Order.status != OrderStatus.ended))
            .where(Referral.clinic_id == clinic.id).order_by(Referral.id.desc()).limit(200)
        ).all()
        return page(request, "clinic/referrals.html", rows=rows, **form_context(request, db, clinic))

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
                db.commit()
                target = f"/clinic/referrals/{result.referral.id}"
                if not result.created:
                    target += "?already=1"
                if request.headers.get("hx-request"):
                    return ClientRedirect(target)
                return Redirect(target, status_code=303)
        fragment = "referral_form" if request.headers.get("hx-request") else None
        return page(request, "clinic/referral_new.html", block=fragment, status_code=422, values=data,
                    errors=errors, **form_context(request, db, clinic))

    @get("/referrals/{referral_id:int}", opt={"roles": STAFF}, sync_to_thread=True)
    def referral_detail(self, request: Request, db: DB, referral_id: FromPath[int],
                        already: FromQuery[bool] = False) -> Template:
        referral = visible_referral(db, principal(request), referral_id)
        order = db.scalar(select(Order).where(Order.referral_id == referral.id)
                          .order_by(Order.id.desc()))
        events = timeline.history(db, referral.id)
        return page(request, "clinic/referral.html", referral=referral, order=order, events=events,
                    position=waitlist.position(db, order) if order else None, already=already,
                    weekdays=WEEKDAYS)

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
        """Check the whole file; import every row (one transaction) or none, and show the report."""
        clinic = staff_clinic(db, request)
        upload = data.file if isinstance(data.file, UploadFile) else None
        if upload is None or not upload.filename:
            report = csv_import.ImportReport(source="upload")
            report.add(None, None, "Choose a CSV file to import.")
        else:
            with upload.file:  # a spooled temporary file: close it, not the garbage collector
                content = upload.file.read()
            report = csv_import.import_rows(db, content, clinic_id=clinic.id,
                                            actor_id=principal(request).user_id, clock=clock_of(request),
                                            source_name=upload.filename[:200])
        if report.ok:
            db.commit()
        else:
            db.rollback()
        return page(request, "clinic/import.html", status_code=200 if report.ok else 422, clinic=clinic,
                    report=report, columns=csv_import.columns_help())
