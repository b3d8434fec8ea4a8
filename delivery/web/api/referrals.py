"""The JSON API for clinic systems (bearer tokens only): the same services the pages call."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromQuery, JSONBody, QueryParameter
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.loop import polling, receipts
from delivery.models import Order, OrderStatus, Referral, ReferralStatus, Role, Source
from delivery.platform import audit as audit_trail
from delivery.platform.auth import Principal
from delivery.platform.errors import FieldError
from delivery.program import waitlist
from delivery.referrals import geocoding, intake
from delivery.referrals.schemas import ReferralIn, ReferralOut, TimelineEvent
from delivery.timeline import events
from delivery.web.errors import error_responses
from delivery.web.render import DB, Audit, PathId, clock_of, principal

READERS = (Role.clinic_staff, Role.coordinator, Role.admin)


class ReceiptIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The patient got the food (or did not); a note says what they told you."""

    received: bool
    note: Annotated[str, msgspec.Meta(max_length=receipts.MAX_NOTE)] | None = None


class ReferralChange(msgspec.Struct, kw_only=True):
    id: int
    status: str
    outcome: str
    patient_id: int
    updated_at: dt.datetime


class ReferralPage(msgspec.Struct, kw_only=True):
    referrals: list[ReferralChange]
    next_cursor: str | None


def visible_referral(db: Session, who: Principal, referral_id: int) -> Referral:
    """The referral if this person may see it: their clinic's, or their food bank's program.
    Anything else is 404, so another clinic's referral ids reveal nothing."""
    referral = db.get(Referral, referral_id)
    if referral is None:
        raise NotFoundException(f"No referral {referral_id}.")
    clinics = who.organizations_with(Role.clinic_staff)
    programs = who.organizations_with(Role.coordinator, Role.admin)
    if referral.clinic_id not in clinics and referral.food_bank_id not in programs:
        raise NotFoundException(f"No referral {referral_id}.")
    return referral


def referring_clinic(who: Principal, requested: int | None) -> int:
    clinics = who.organizations_with(Role.clinic_staff)
    if requested is not None:
        if requested not in clinics:
            raise FieldError(f"You do not refer for clinic {requested}.", "clinic_id")
        return requested
    if len(clinics) != 1:
        raise FieldError("Your account refers for several clinics: set clinic_id.", "clinic_id")
    return clinics[0]


def referral_out(db: Session, referral: Referral, *, with_timeline: bool = False) -> ReferralOut:
    order = db.scalar(select(Order).where(Order.referral_id == referral.id,
                                          Order.status != OrderStatus.ended).order_by(Order.id.desc()))
    timeline = None
    if with_timeline:
        timeline = [TimelineEvent(sequence=e.sequence, kind=e.kind, at=e.at, data=e.as_data(), text=e.text)
                    for e in events.history(db, referral.id)]
    return ReferralOut(id=referral.id, status=referral.status, outcome=referral.outcome,
                       reason=referral.reason, order_id=order.id if order else None,
                       patient_id=referral.patient_id, clinic_id=referral.clinic_id,
                       priority=referral.priority, created_at=referral.created_at,
                       geocode_status=referral.patient.geocode_status,
                       waitlist_position=waitlist.position(db, order) if order else None,
                       timeline=timeline)


class ReferralApi(Controller):
    path = "/api/v1/referrals"
    tags = ["referrals"]
    security = [{"BearerToken": []}]

    @get("/", opt={"roles": (Role.clinic_staff,)}, sync_to_thread=True, responses=error_responses(422),
         summary="The clinic's referrals changed since a time",
         description="For systems that poll instead of taking webhooks: oldest change first; pass "
                     "`next_cursor` back as `cursor` for the next page (null: nothing more now).")
    def list_referrals(self, request: Request, db: DB, updated_since: FromQuery[dt.datetime | None] = None,
                       status: FromQuery[ReferralStatus | None] = None,
                       cursor: Annotated[str | None, QueryParameter(max_length=40)] = None,
                       limit: Annotated[int, QueryParameter(ge=1, le=polling.MAX_PAGE)] = 50,
                       ) -> ReferralPage:
        if updated_since is not None and updated_since.tzinfo is None:
            raise FieldError("updated_since needs a time zone (…Z or +00:00).", "updated_since")
        page = polling.changed(db, principal(request).organizations_with(Role.clinic_staff),
                               since=updated_since, status=status, cursor=cursor, limit=limit)
        return ReferralPage(referrals=[ReferralChange(id=r.id, status=r.status, outcome=r.outcome,
                                                      patient_id=r.patient_id, updated_at=at)
                                       for r, at in page.referrals], next_cursor=page.next_cursor)

    @post("/{referral_id:int}/receipt", status_code=201, opt={"roles": (Role.clinic_staff,)},
          sync_to_thread=True, summary="Record whether the patient received the last delivery",
          responses=error_responses(404, 422))
    def record_receipt(self, request: Request, db: DB, referral_id: PathId,
                       data: JSONBody[ReceiptIn]) -> ReferralOut:
        who = principal(request)
        referral = visible_referral(db, who, referral_id)
        if referral.clinic_id not in who.organizations_with(Role.clinic_staff):
            raise NotFoundException(f"No referral {referral_id}.")
        receipts.record_receipt(db, referral, received=data.received, note=data.note, actor_id=who.user_id)
        db.commit()
        return referral_out(db, referral, with_timeline=True)

    @post("/", status_code=201, opt={"roles": (Role.clinic_staff,)}, sync_to_thread=True,
          responses=error_responses(409, 422),
          summary="Refer a patient", description=(
              "Creates the referral, decides its outcome (home_delivery, waitlisted, pickup, "
              "not_eligible) and the Order when there is one. 409 when the patient already has "
              "an open referral; details that differ from the stored ones are still corrected, "
              "and `changes` lists them (before and after)."))
    def create_referral(self, request: Request, db: DB, data: JSONBody[ReferralIn]) -> ReferralOut:
        who = principal(request)
        clinic_id = referring_clinic(who, data.clinic_id)
        result = intake.refer(db, data, clinic_id=clinic_id, actor_id=who.user_id, source=Source.api,
                              clock=clock_of(request))
        geocoding.review_if_off(db, request.app.state.settings)
        db.commit()  # a repeat still corrects the patient's details: that is kept, and said
        changes = list(result.changes)
        if not result.created:
            differed = ", ".join(c.field + ("" if c.applied else " (proposed for review)") for c in changes)
            corrected = f" What differed was stored: {differed}." if changes else ""
            raise HTTPException(status_code=409,
                                extra={"referral_id": result.referral.id, "code": "open_referral",
                                       "changes": msgspec.to_builtins(changes)},
                                detail=(f"Patient {data.patient.mrn} already has an open referral "
                                        f"({result.referral.id}, {result.referral.status}).{corrected}"))
        out = referral_out(db, result.referral, with_timeline=True)
        out.changes = changes
        return out

    @get("/{referral_id:int}", opt={"roles": READERS, "phi": ("R", "referral")}, sync_to_thread=True,
         responses=error_responses(404), summary="A referral with its timeline")
    def get_referral(self, request: Request, db: DB, audit: Audit, referral_id: PathId) -> ReferralOut:
        referral = visible_referral(db, principal(request), referral_id)
        out = referral_out(db, referral, with_timeline=True)
        audit_trail.record_reads(request.app.state.database, audit, "referral",
                                 [(referral.id, referral.patient_id)])
        return out
