"""The coordinator's referral side: the review queue, the program's referrals (each with its
timeline, the outcome override and the standing-order controls), the waitlist, and the program's
settings (capacity, delivery day).

Handlers translate HTTP into one service call and back; the rules live in delivery.referrals.reviews,
delivery.program.orders, delivery.referrals.intake and delivery.program. A coordinator sees only
their own food banks' records: any other id is 404. htmx forms swap only the part they change; a
refused change comes back inline with status 422 (base.html's htmx-config swaps 422). Without
JavaScript the same forms post normally and are answered with a redirect, or the page with the errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from msgspec import Meta
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    Order,
    OrderStatus,
    Organization,
    Outcome,
    Patient,
    Referral,
    ReferralStatus,
    ReviewItem,
    ReviewKind,
    Role,
    SpreadWork,
    User,
)
from delivery.platform import audit as audit_trail
from delivery.program import orders, program_settings, waitlist
from delivery.referrals import geocoding, intake, needs, reviews
from delivery.referrals.schemas import (
    AddressIn,
    BoxType,
    HourMinute,
    Latitude,
    Longitude,
    Priority,
    Weekday,
    parse_time,
)
from delivery.timeline import events as timeline
from delivery.web.coordinator.overview import COORDINATORS
from delivery.web.forms import Errors, FormData, convert
from delivery.web.render import DB, Audit, PathId, page, principal, program_today

POLICY = {"roles": COORDINATORS}
REFERRAL_LIMIT = 200
Reason = Annotated[str, Meta(min_length=1, max_length=400)]  # leaves room for the words around it

OUTCOMES = [(Outcome.home_delivery, "Home delivery"), (Outcome.waitlisted, "Waitlist"),
            (Outcome.pickup, "Pick-up at a depot"), (Outcome.not_eligible, "Not eligible")]
STATUSES = [(ReferralStatus.active, "Active"), (ReferralStatus.waitlisted, "Waitlisted"),
            (ReferralStatus.pickup, "Pick-up"), (ReferralStatus.not_eligible, "Not eligible"),
            (ReferralStatus.closed, "Closed")]
PRIORITY_NAMES = [(0, "Normal"), (1, "High"), (2, "Urgent")]
WEEKDAY_OPTIONS = list(enumerate(orders.WEEKDAYS))
SPREAD_OPTIONS = [(SpreadWork.off, "Off: least driving; some volunteers may get nothing"),
                  (SpreadWork.some, "Some: everyone who can usefully help gets stops, for a little more "
                                    "driving"),
                  (SpreadWork.strong, "Strong: stops and hours as even as the map allows")]
KIND_NAMES = {ReviewKind.geocode_failed: "Address not found", ReviewKind.geocode_ambiguous: "Address unclear",
              ReviewKind.address_change: "Clinic sent a new address",
              ReviewKind.possible_duplicate: "Possible duplicate patient",
              ReviewKind.failed_attempts: "Deliveries on hold after failed attempts",
              ReviewKind.address_problem: "Driver reported a wrong address",
              ReviewKind.receipt_denied: "Patient did not receive a delivered box"}


# --- form bodies (the web's shapes; the services check the rules) ----------------------------------


class Closed(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class PointForm(Closed):
    lat: Latitude
    lon: Longitude


class CandidateForm(Closed):
    candidate: Annotated[int, Meta(ge=0, le=50)]


class ReasonForm(Closed):
    reason: Reason


class NoteForm(Closed):
    note: Reason


class OverrideForm(Closed):
    outcome: Outcome
    reason: Reason


class PauseForm(Closed):
    until: dt.date
    reason: Reason


class ChangeForm(Closed):
    weekday: Weekday
    boxes: Annotated[int, Meta(ge=1, le=orders.MAX_BOXES)]
    box_type: BoxType
    window_start: HourMinute | None = None
    window_end: HourMinute | None = None


class PriorityForm(Closed):
    priority: Priority


class ProgramForm(Closed):
    boxes_per_delivery_day: Annotated[int, Meta(ge=1, le=program_settings.MAX_BOXES_PER_DAY)]
    delivery_weekday: Weekday
    spread_work: SpreadWork | None = None


ADDRESS_FIELDS = ("line1", "unit", "city", "state", "postal_code")


def parse(struct: type[msgspec.Struct], form: dict[str, Any], prefix: str = "") -> tuple[Any, Errors]:
    """The form's own fields (stripped; blanks left out so 'required' applies) into `struct`.
    Error keys get `prefix` (several forms share one page); a rule across fields goes under 'form'."""
    hand_only = {"lat", "lon"} if struct is AddressIn else set()  # points are set with their own form
    body = {}
    for name in (f.encode_name for f in msgspec.structs.fields(struct)):
        if name in hand_only:
            continue
        value = form.get(name)
        value = value[-1] if isinstance(value, list) else value
        if isinstance(value, str) and value.strip():
            body[name] = value.strip()
    parsed, errors = convert(struct, body)
    return parsed, {f"{prefix}{key or 'form'}": message for key, message in errors.items()}


class FormInvalid(Exception):
    """A form's fields did not parse; carries every field's message (keys prefixed by form)."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("form invalid")
        self.errors = errors


def valid(struct: type[msgspec.Struct], form: dict[str, Any], prefix: str) -> Any:
    parsed, errors = parse(struct, form, prefix)
    if errors:
        raise FormInvalid(errors)
    return parsed


# --- who may see what ------------------------------------------------------------------------------


def programs(request: Request) -> list[int]:
    return principal(request).organizations_with(*COORDINATORS)


def is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


def own_item(db: Session, request: Request, item_id: int) -> ReviewItem:
    """A review item of one of the coordinator's programs, locked for the change (PostgreSQL)."""
    item = db.scalar(select(ReviewItem).where(ReviewItem.id == item_id).with_for_update(of=ReviewItem))
    if item is None or item.food_bank_id not in programs(request):
        raise NotFoundException("No such review item.")
    return item


def own_referral(db: Session, request: Request, referral_id: int) -> Referral:
    referral = db.get(Referral, referral_id)
    if referral is None or referral.food_bank_id not in programs(request):
        raise NotFoundException("No such referral.")
    return referral


def own_order(db: Session, request: Request, order_id: int) -> Order:
    order = db.scalar(select(Order).where(Order.id == order_id).with_for_update(of=Order))
    if order is None or order.food_bank_id not in programs(request):
        raise NotFoundException("No such order.")
    return order


def food_bank_of(db: Session, food_bank_id: int) -> Organization:
    food_bank = db.get(Organization, food_bank_id)
    assert food_bank is not None
    return food_bank


def moved_text(db: Session, moved: Iterable[Order]) -> str:
    """'2 waiting patients moved onto the program: Rosa (Fruitvale Clinic), Ana (…).'"""
    moved = list(moved)
    if not moved:
        return ""
    clinics = clinic_names(db, [o.food_bank_id for o in moved])
    names = [f"{o.patient.given_name} ({clinics.get(o.patient.clinic_id, 'clinic')})" for o in moved]
    one = len(moved) == 1
    return (f" {len(moved)} waiting patient{'' if one else 's'} moved onto the program: "
            + ", ".join(names) + ".")


def clinic_names(db: Session, food_bank_ids: Iterable[int]) -> dict[int, str]:
    rows = db.execute(select(Organization.id, Organization.name)
                      .where(Organization.food_bank_id.in_(set(food_bank_ids)))).all()
    return {row.id: row.name for row in rows}


def user_names(db: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {row.id: row.display_name for row in db.execute(
        select(User.id, User.display_name).where(User.id.in_(wanted)))}


# --- the review queue: one row per item ----------------------------------------------------------


def review_extras(db: Session, items: list[ReviewItem]) -> dict[int, dict[str, Any]]:
    """What each row shows beside the item: its referral, clinic, the other patient of a duplicate."""
    clinics = clinic_names(db, {i.food_bank_id for i in items})
    resolvers = user_names(db, (i.resolved_by_id for i in items))
    extras: dict[int, dict[str, Any]] = {}
    for item in items:
        extra: dict[str, Any] = {"referral": reviews.referral_of(db, item.patient_id),
                                 "clinic": clinics.get(item.patient.clinic_id, ""),
                                 "resolver": resolvers.get(item.resolved_by_id or 0, "")}
        if item.kind == ReviewKind.possible_duplicate:
            other_id = int(item.details.get("other_patient_id") or 0)
            extra["other"] = db.get(Patient, other_id) if other_id else None
            extra["newer"], extra["kept"] = reviews.duplicate_pair(db, item)
        extras[item.id] = extra
    return extras


def address_values(patient: Patient) -> dict[str, str]:
    return {"line1": patient.address_line1, "unit": patient.unit or "", "city": patient.city,
            "state": patient.state, "postal_code": patient.postal_code}


class ReferralDeskController(Controller):
    """Review queue, referrals, waitlist and program settings for coordinators and admins."""

    path = "/coordinator"

    # --- review queue ---------------------------------------------------------------------------

    @get("/reviews", opt={**POLICY, "phi": ("R", "review_item")}, sync_to_thread=True)
    def review_queue(self, request: Request, db: DB, audit: Audit) -> Template:
        """Open review items, oldest first, each with the ways to settle it; then the latest settled."""
        shown = self._reviews_page(request, db)
        items = shown.context["items"] + shown.context["done"]
        audit_trail.record_reads(request.app.state.database, audit, "review_item",
                                 ((i.id, i.patient_id) for i in items), detail="review queue")
        return shown

    def _reviews_page(self, request: Request, db: Session, *, failed: ReviewItem | None = None,
                      errors: Errors | None = None, values: dict[str, Any] | None = None,
                      status_code: int = 200) -> Template:
        items = reviews.open_items(db, programs(request))
        if failed is not None and failed not in items:
            items.append(failed)
        done = reviews.recently_resolved(db, programs(request))
        return page(request, "coordinator/reviews.html", status_code=status_code, items=items, done=done,
                    extras=review_extras(db, items + done), failed_id=failed.id if failed else None,
                    errors=errors or {}, values=values or {}, kinds=KIND_NAMES)

    def _settle(self, request: Request, db: Session, item_id: int, form: dict[str, Any],
                struct: type[msgspec.Struct] | None,
                action: Callable[[ReviewItem, Any], str]) -> Response | Template:
        """Parse the form, run the resolution, commit; answer with the row (htmx) or the page."""
        item = own_item(db, request, item_id)
        parsed, errors = parse(struct, form) if struct is not None else (None, {})
        notice = ""
        if not errors:
            try:
                notice = action(item, parsed)
            except (reviews.ReviewError, orders.OrderError) as exc:
                errors = {getattr(exc, "field", None) or "form": str(exc)}
        if errors:
            db.rollback()
            item = own_item(db, request, item_id)
            if is_htmx(request):
                return page(request, "coordinator/reviews.html", block="review_item", status_code=422,
                            item=item, extras=review_extras(db, [item]), failed_id=item.id, errors=errors,
                            values=form, kinds=KIND_NAMES)
            return self._reviews_page(request, db, failed=item, errors=errors, values=form, status_code=422)
        extras = review_extras(db, [item])
        extras[item.id]["resolver"] = principal(request).display_name
        geocoding.review_if_off(db, request.app.state.settings)
        db.commit()
        if not is_htmx(request):
            return Redirect("/coordinator/reviews", status_code=303)
        return page(request, "coordinator/reviews.html", block="review_item", item=item, extras=extras,
                    failed_id=None, errors={}, values={}, kinds=KIND_NAMES, notice=notice)

    @post("/reviews/{item_id:int}/address", opt=POLICY, sync_to_thread=True, status_code=200)
    def fix_address(self, request: Request, db: DB, item_id: PathId,
                    data: FormData) -> Response | Template:
        """Correct an address the map could not place; it is located again."""
        def act(item: ReviewItem, address: AddressIn) -> str:
            reviews.fix_address(db, item, address, actor_id=principal(request).user_id)
            return "Address saved: it is being located on the map."

        return self._settle(request, db, item_id, data, AddressIn, act)

    @post("/reviews/{item_id:int}/point", opt=POLICY, sync_to_thread=True, status_code=200)
    def set_point(self, request: Request, db: DB, item_id: PathId,
                  data: FormData) -> Response | Template:
        """Place the delivery point by hand."""
        def act(item: ReviewItem, point: PointForm) -> str:
            reviews.set_point(db, item, point.lat, point.lon, actor_id=principal(request).user_id)
            return "Point saved: the order can be planned."

        return self._settle(request, db, item_id, data, PointForm, act)

    @post("/reviews/{item_id:int}/candidate", opt=POLICY, sync_to_thread=True, status_code=200)
    def pick_candidate(self, request: Request, db: DB, item_id: PathId,
                       data: FormData) -> Response | Template:
        """Choose one of the places the geocoder offered for an unclear address."""
        def act(item: ReviewItem, form: CandidateForm) -> str:
            reviews.pick_candidate(db, item, form.candidate, actor_id=principal(request).user_id)
            return "Place saved: the order can be planned."

        return self._settle(request, db, item_id, data, CandidateForm, act)

    @post("/reviews/{item_id:int}/accept", opt=POLICY, sync_to_thread=True, status_code=200)
    def accept_address(self, request: Request, db: DB, item_id: PathId,
                       data: FormData) -> Response | Template:
        """Take the clinic's new address."""
        def act(item: ReviewItem, _form: None) -> str:
            reviews.accept_address_change(db, item, actor_id=principal(request).user_id)
            return "The clinic's address is on file now."

        return self._settle(request, db, item_id, data, None, act)

    @post("/reviews/{item_id:int}/keep", opt=POLICY, sync_to_thread=True, status_code=200)
    def keep_address(self, request: Request, db: DB, item_id: PathId,
                     data: FormData) -> Response | Template:
        """Keep the corrected address; set the clinic's proposal aside."""
        def act(item: ReviewItem, _form: None) -> str:
            reviews.keep_corrected_address(db, item, actor_id=principal(request).user_id)
            return "Corrected address kept."

        return self._settle(request, db, item_id, data, None, act)

    @post("/reviews/{item_id:int}/different", opt=POLICY, sync_to_thread=True, status_code=200)
    def different_people(self, request: Request, db: DB, item_id: PathId,
                         data: FormData) -> Response | Template:
        """Not a duplicate: two people who share a name and birth date."""
        def act(item: ReviewItem, _form: None) -> str:
            reviews.different_people(db, item, actor_id=principal(request).user_id)
            return "Marked as two different people."

        return self._settle(request, db, item_id, data, None, act)

    @post("/reviews/{item_id:int}/same", opt=POLICY, sync_to_thread=True, status_code=200)
    def same_person(self, request: Request, db: DB, item_id: PathId,
                    data: FormData) -> Response | Template:
        """One person under two MRNs: the newer referral's order ends, with the reason."""
        def act(item: ReviewItem, form: ReasonForm) -> str:
            today = program_today(request, food_bank_of(db, item.food_bank_id))
            moved = reviews.same_person(db, item, form.reason, actor_id=principal(request).user_id,
                                        today=today)
            return "Marked as the same person." + moved_text(db, moved)

        return self._settle(request, db, item_id, data, ReasonForm, act)

    @post("/reviews/{item_id:int}/resume", opt=POLICY, sync_to_thread=True, status_code=200)
    def resume_deliveries(self, request: Request, db: DB, item_id: PathId,
                          data: FormData) -> Response | Template:
        """A held order (failed attempts, an address problem) delivers again."""
        def act(item: ReviewItem, _form: None) -> str:
            today = program_today(request, food_bank_of(db, item.food_bank_id))
            next_day = reviews.resume_deliveries(db, item, actor_id=principal(request).user_id, today=today)
            return f"Deliveries resume{f' on {next_day:%a %d %b}' if next_day else ''}."

        return self._settle(request, db, item_id, data, None, act)

    @post("/reviews/{item_id:int}/end-order", opt=POLICY, sync_to_thread=True, status_code=200)
    def end_deliveries(self, request: Request, db: DB, item_id: PathId,
                       data: FormData) -> Response | Template:
        """Deliveries end for good, with the reason; waiting patients move up."""
        def act(item: ReviewItem, form: ReasonForm) -> str:
            today = program_today(request, food_bank_of(db, item.food_bank_id))
            moved = reviews.end_deliveries(db, item, form.reason, actor_id=principal(request).user_id,
                                           today=today)
            return "Deliveries ended." + moved_text(db, moved)

        return self._settle(request, db, item_id, data, ReasonForm, act)

    @post("/reviews/{item_id:int}/handled", opt=POLICY, sync_to_thread=True, status_code=200)
    def mark_handled(self, request: Request, db: DB, item_id: PathId,
                     data: FormData) -> Response | Template:
        """A denied receipt settled outside the app, with what was done."""
        def act(item: ReviewItem, form: NoteForm) -> str:
            reviews.mark_handled(db, item, form.note, actor_id=principal(request).user_id)
            return "Marked handled."

        return self._settle(request, db, item_id, data, NoteForm, act)

    # --- referrals ------------------------------------------------------------------------------

    @get("/referrals", opt={**POLICY, "phi": ("R", "referral")}, sync_to_thread=True)
    def referral_list(self, request: Request, db: DB, audit: Audit, status: FromQuery[str] = "",
                      clinic: FromQuery[int] = 0) -> Template:
        """The programs' referrals, newest first, filtered by status and clinic."""
        mine = programs(request)
        clinics = db.execute(select(Organization.id, Organization.name)
                             .where(Organization.food_bank_id.in_(mine)).order_by(Organization.name)).all()
        query = (select(Referral, Order).outerjoin(Order, (Order.referral_id == Referral.id)
                                                   & (Order.status != OrderStatus.ended))
                 .where(Referral.food_bank_id.in_(mine)))
        status = status if status in {s.value for s, _ in STATUSES} else ""
        if status:
            query = query.where(Referral.status == status)
        if clinic:
            query = query.where(Referral.clinic_id == clinic)
        rows = db.execute(query.order_by(Referral.id.desc()).limit(REFERRAL_LIMIT)).all()
        audit_trail.record_reads(request.app.state.database, audit, "referral",
                                 ((r.id, r.patient_id) for r, _ in rows), detail="program's referral list")
        return page(request, "coordinator/referrals.html", rows=rows, clinics=clinics,
                    clinic_names={c.id: c.name for c in clinics}, statuses=STATUSES, status=status,
                    clinic=clinic, limit=REFERRAL_LIMIT, weekdays=orders.WEEKDAYS)

    @get("/referrals/{referral_id:int}", opt={**POLICY, "phi": ("R", "referral")}, sync_to_thread=True)
    def referral_detail(self, request: Request, db: DB, audit: Audit, referral_id: PathId) -> Template:
        """One referral: its timeline, the outcome override and the order controls."""
        referral = own_referral(db, request, referral_id)
        audit_trail.record_reads(request.app.state.database, audit, "referral",
                                 [(referral.id, referral.patient_id)])
        return page(request, "coordinator/referral.html", **self._referral_context(request, db, referral))

    def _referral_context(self, request: Request, db: Session, referral: Referral, *,
                          errors: Errors | None = None,
                          values: dict[str, Any] | None = None, notice: str = "") -> dict[str, Any]:
        food_bank = food_bank_of(db, referral.food_bank_id)
        today = program_today(request, food_bank)
        order = db.scalar(select(Order).where(Order.referral_id == referral.id)
                          .order_by((Order.status != OrderStatus.ended).desc(), Order.id.desc()).limit(1))
        events = [e for e in timeline.history(db, referral.id) if e.kind not in needs.CLINIC_ONLY]
        open_items = db.scalars(select(ReviewItem).where(ReviewItem.patient_id == referral.patient_id,
                                                         ReviewItem.resolved_at.is_(None))).all()
        clinic = db.get(Organization, referral.clinic_id)
        live = order is not None and order.status != OrderStatus.ended
        defaults: dict[str, Any] = {"override.outcome": referral.outcome, **{
            f"address.{k}": v for k, v in address_values(referral.patient).items()}}
        if order is not None:
            defaults |= {"change.weekday": str(order.weekday), "change.boxes": str(order.boxes),
                         "change.box_type": order.box_type,
                         "change.window_start": order.window_start.strftime("%H:%M") if order.window_start
                         else "",
                         "change.window_end": order.window_end.strftime("%H:%M") if order.window_end else ""}
        return {
            "referral": referral, "patient": referral.patient, "clinic": clinic, "food_bank": food_bank,
            "order": order, "live": live, "today": today,
            "paused": live and order.paused_until is not None and order.paused_until >= today,
            "next_delivery": orders.first_delivery(order, today) if live else None,
            "position": waitlist.position(db, order) if order is not None else None,
            "events": events, "actors": user_names(db, (e.actor_id for e in events)),
            "open_items": open_items, "kinds": KIND_NAMES,
            "outcomes": OUTCOMES, "weekdays": orders.WEEKDAYS,
            "weekday_options": WEEKDAY_OPTIONS,
            "box_type_options": [(b.value, b.value.replace("_", " ")) for b in BoxType],
            "priorities": dict(PRIORITY_NAMES),
            "errors": errors or {}, "values": defaults | (values or {}), "notice": notice,
        }

    def _referral_answer(self, request: Request, db: Session, referral_id: int, form_name: str,
                         form: dict[str, Any], action: Callable[[Referral], str]) -> Response | Template:
        """Run one order/outcome action for the referral page; the whole referral body swaps."""
        referral = own_referral(db, request, referral_id)
        try:
            notice = action(referral)
        except (intake.IntakeError, orders.OrderError, reviews.ReviewError, FormInvalid) as exc:
            errors = exc.errors if isinstance(exc, FormInvalid) else {
                f"{form_name}.{getattr(exc, 'field', None) or 'form'}": str(exc)}
            db.rollback()
            referral = own_referral(db, request, referral_id)
            values = {f"{form_name}.{k}": v for k, v in form.items() if k != "csrf_token"}
            context = self._referral_context(request, db, referral, errors=errors, values=values)
            return page(request, "coordinator/referral.html", block="referral_body" if is_htmx(request)
                        else None, status_code=422, **context)
        if geocoding.review_if_off(db, request.app.state.settings):
            notice = ("Address changed. Geocoding is off on this server, so it waits in the review "
                      "queue: set its point on the map there.")
        context = self._referral_context(request, db, referral, notice=notice)
        db.commit()
        if not is_htmx(request):
            return Redirect(f"/coordinator/referrals/{referral.id}", status_code=303)
        return page(request, "coordinator/referral.html", block="referral_body", **context)

    @post("/referrals/{referral_id:int}/outcome", opt=POLICY, sync_to_thread=True, status_code=200)
    def override_outcome(self, request: Request, db: DB, referral_id: PathId,
                         data: FormData) -> Response | Template:
        """Set the outcome by hand, with a written reason that goes on the timeline."""
        def act(referral: Referral) -> str:
            form = valid(OverrideForm, data, "override.")
            today = program_today(request, food_bank_of(db, referral.food_bank_id))
            before = db.scalars(select(Order.id).where(Order.food_bank_id == referral.food_bank_id,
                                                       Order.status == OrderStatus.waitlisted)).all()
            intake.override_outcome(db, referral, form.outcome, form.reason,
                                    principal(request).user_id, today=today)
            moved = [o for o in db.scalars(select(Order).where(Order.id.in_(before))) if
                     o.status == OrderStatus.active and o.referral_id != referral.id]
            return f"Outcome set to {form.outcome.replace('_', ' ')}." + moved_text(db, moved)

        return self._referral_answer(request, db, referral_id, "override", data, act)

    def _order_action(self, request: Request, db: Session, order_id: int, form_name: str,
                      data: dict[str, Any], action: Callable[[Order, dt.date], str]) -> Response | Template:
        order = own_order(db, request, order_id)
        today = program_today(request, food_bank_of(db, order.food_bank_id))
        return self._referral_answer(request, db, order.referral_id, form_name, data,
                                     lambda _referral: action(order, today))

    @post("/orders/{order_id:int}/pause", opt=POLICY, sync_to_thread=True, status_code=200)
    def pause_order(self, request: Request, db: DB, order_id: PathId,
                    data: FormData) -> Response | Template:
        """Pause deliveries through a date (a hospital stay, a trip); the boxes go to waiting patients."""
        def act(order: Order, today: dt.date) -> str:
            form = valid(PauseForm, data, "pause.")
            moved = orders.pause_order(db, order, form.until, form.reason, principal(request).user_id,
                                       today=today)
            return f"Deliveries paused through {form.until:%a %d %b %Y}." + moved_text(db, moved)

        return self._order_action(request, db, order_id, "pause", data, act)

    @post("/orders/{order_id:int}/resume", opt=POLICY, sync_to_thread=True, status_code=200)
    def resume_order(self, request: Request, db: DB, order_id: PathId,
                     data: FormData) -> Response | Template:
        """End a pause early, when its days are still free."""
        def act(order: Order, today: dt.date) -> str:
            orders.resume_order(db, order, actor_id=principal(request).user_id, today=today)
            return "Deliveries start again."

        return self._order_action(request, db, order_id, "resume", data, act)

    @post("/orders/{order_id:int}/change", opt=POLICY, sync_to_thread=True, status_code=200)
    def change_order(self, request: Request, db: DB, order_id: PathId,
                     data: FormData) -> Response | Template:
        """Change the weekday, boxes, box type or time window; more boxes must fit the capacity."""
        def act(order: Order, today: dt.date) -> str:
            form = valid(ChangeForm, data, "change.")
            if (form.window_start is None) != (form.window_end is None):
                raise FormInvalid({"change.window_end": "Give both times, or neither (any time)."})
            window = (parse_time(form.window_start), parse_time(form.window_end))
            moved = orders.change_order(db, order, weekday=form.weekday, boxes=form.boxes,
                                        box_type=form.box_type.value, window=window,
                                        actor_id=principal(request).user_id, today=today)
            return "Order changed." + moved_text(db, moved)

        return self._order_action(request, db, order_id, "change", data, act)

    @post("/orders/{order_id:int}/address", opt=POLICY, sync_to_thread=True, status_code=200)
    def change_address(self, request: Request, db: DB, order_id: PathId,
                       data: FormData) -> Response | Template:
        """Change where the boxes go: the new address is located on the map again."""
        def act(order: Order, _today: dt.date) -> str:
            address = valid(AddressIn, data, "address.")
            said = reviews.correct_address(db, order.patient, address, actor_id=principal(request).user_id)
            return f"Address changed; {said}"

        return self._order_action(request, db, order_id, "address", data, act)

    @post("/orders/{order_id:int}/end", opt=POLICY, sync_to_thread=True, status_code=200)
    def end_order(self, request: Request, db: DB, order_id: PathId,
                  data: FormData) -> Response | Template:
        """End deliveries for good, with a reason; the next waiting patients move up."""
        def act(order: Order, today: dt.date) -> str:
            form = valid(ReasonForm, data, "end.")
            moved = orders.end_order(db, order, form.reason, principal(request).user_id, today=today)
            return "Deliveries ended." + moved_text(db, moved)

        return self._order_action(request, db, order_id, "end", data, act)

    # --- waitlist -------------------------------------------------------------------------------

    def _waitlist_section(self, request: Request, db: Session, food_bank: Organization) -> dict[str, Any]:
        today = program_today(request, food_bank)
        waits = waitlist.waits(db, food_bank, today)
        referrals = {r.id: r for r in db.scalars(select(Referral).where(
            Referral.id.in_([w.order.referral_id for w in waits])))} if waits else {}
        return {"food_bank": food_bank, "rows": [(w, referrals[w.order.referral_id]) for w in waits],
                "clinics": clinic_names(db, [food_bank.id]),
                "room_now": any(w.moves_up_now for w in waits),
                "status": waitlist.program_status(db, food_bank, today)}

    @get("/waitlist", opt=POLICY, sync_to_thread=True)
    def waitlist_page(self, request: Request, db: DB) -> Template:
        """Waiting orders in the order they will be served (priority, then referral date)."""
        food_banks = db.scalars(select(Organization).where(Organization.id.in_(programs(request)))
                                .order_by(Organization.name)).all()
        return page(request, "coordinator/waitlist.html", priorities=PRIORITY_NAMES,
                    sections=[self._waitlist_section(request, db, fb) for fb in food_banks],
                    errors={}, notice="")

    @post("/waitlist/{food_bank_id:int}/serve", opt=POLICY, sync_to_thread=True, status_code=200)
    def serve_waitlist(self, request: Request, db: DB, food_bank_id: PathId) -> Response | Template:
        """Move the first waiting patients onto the program while they fit (room can appear with
        no write that would have served the waitlist: a one-off delivery passed, an order's end date)."""
        if food_bank_id not in programs(request):
            raise NotFoundException("No such program.")
        food_bank = food_bank_of(db, food_bank_id)
        moved = waitlist.promote(db, food_bank, program_today(request, food_bank), principal(request).user_id)
        section = self._waitlist_section(request, db, food_bank)
        notice = moved_text(db, moved).strip() or ("Nobody waiting has room yet: each row says why."
                                                   if section["rows"] else "Nobody is waiting.")
        db.commit()
        if is_htmx(request):
            return page(request, "coordinator/waitlist.html", block="waitlist_section", section=section,
                        priorities=PRIORITY_NAMES, errors={}, notice=notice)
        return page(request, "coordinator/waitlist.html", priorities=PRIORITY_NAMES, sections=[section],
                    errors={}, notice=notice)

    @post("/orders/{order_id:int}/priority", opt=POLICY, sync_to_thread=True, status_code=200)
    def change_priority(self, request: Request, db: DB, order_id: PathId,
                        data: FormData) -> Response | Template:
        """Set a waiting order's priority: normal, high or urgent."""
        order = own_order(db, request, order_id)
        food_bank = food_bank_of(db, order.food_bank_id)
        form, errors = parse(PriorityForm, data)
        notice = ""
        if form is not None:
            try:
                moved = orders.change_priority(db, order, form.priority, actor_id=principal(request).user_id,
                                               today=program_today(request, food_bank))
            except orders.OrderError as exc:
                errors = {"priority": str(exc)}
            else:
                level = dict(PRIORITY_NAMES)[form.priority].lower()
                notice = f"{order.patient.given_name}: priority {level}." + moved_text(db, moved)
        status_code = 200
        if errors:
            db.rollback()
            status_code = 422
        section = self._waitlist_section(request, db, food_bank)
        if not errors:
            db.commit()
            if not is_htmx(request):
                return Redirect("/coordinator/waitlist", status_code=303)
        section_errors = {order_id: next(iter(errors.values()))} if errors else {}
        if is_htmx(request):
            return page(request, "coordinator/waitlist.html", block="waitlist_section", section=section,
                        priorities=PRIORITY_NAMES, errors=section_errors, notice=notice,
                        status_code=status_code)
        return page(request, "coordinator/waitlist.html", priorities=PRIORITY_NAMES, sections=[section],
                    errors=section_errors, notice=notice, status_code=status_code)

    # --- program settings -------------------------------------------------------------------------

    def _program_section(self, request: Request, db: Session, food_bank: Organization, *,
                         values: dict[str, Any] | None = None,
                         errors: Errors | None = None, notice: str = "",
                         over: list[tuple[dt.date, int]] | None = None,
                         choice_values: dict[str, Any] | None = None, choice_errors: Errors | None = None,
                         choice_notice: str = "") -> dict[str, Any]:
        current = {"boxes_per_delivery_day": "" if food_bank.boxes_per_delivery_day is None
                   else str(food_bank.boxes_per_delivery_day),
                   "delivery_weekday": "" if food_bank.delivery_weekday is None
                   else str(food_bank.delivery_weekday),
                   "spread_work": food_bank.spread_work}
        status = waitlist.program_status(db, food_bank, program_today(request, food_bank))
        choices = {c.name: str(getattr(food_bank, c.name)) for c in program_settings.CHOICES}
        choices |= {"require_upstairs": "true" if food_bank.require_upstairs else "",
                    "lend_allocation": "true" if food_bank.lend_allocation else "",
                    "waitlisted_is_rejected": "true" if food_bank.waitlisted_is_rejected else "",
                    "box_types": food_bank.box_types or [b.value for b in BoxType]}
        return {"food_bank": food_bank, "status": status, "values": current | (values or {}),
                "errors": errors or {}, "notice": notice, "over": over or [],
                "choices": program_settings.CHOICES, "upstairs_help": program_settings.UPSTAIRS_HELP,
                "lend_help": program_settings.LEND_HELP,
                "waitlist_rejected_help": program_settings.WAITLIST_REJECTED_HELP,
                "box_type_options": [b.value for b in BoxType],
                "choice_values": choices | (choice_values or {}), "choice_errors": choice_errors or {},
                "choice_notice": choice_notice}

    def _program_answer(self, request: Request, section: dict[str, Any], status_code: int) -> Template:
        """The program's section alone for htmx, else the whole page."""
        if is_htmx(request):
            return page(request, "coordinator/program.html", block="program_section", section=section,
                        weekday_options=WEEKDAY_OPTIONS, spread_options=SPREAD_OPTIONS,
                        status_code=status_code)
        return page(request, "coordinator/program.html", sections=[section], weekday_options=WEEKDAY_OPTIONS,
                    spread_options=SPREAD_OPTIONS, status_code=status_code)

    @post("/program/{food_bank_id:int}/choices", opt={"roles": (Role.admin,)}, sync_to_thread=True,
          status_code=200)
    def update_choices(self, request: Request, db: DB, audit: Audit, food_bank_id: PathId,
                       data: FormData) -> Response | Template:
        """How the program works (admins): service times, the upstairs rule, link grace, the capacity
        horizon, idle sign-out, box types, lending allocations, how FHIR tells a waitlisted referral;
        each change goes on the audit trail."""
        if food_bank_id not in programs(request):
            raise NotFoundException("No such program.")
        food_bank = db.scalar(select(Organization).where(Organization.id == food_bank_id).with_for_update())
        if food_bank is None:
            raise NotFoundException("No such program.")
        numbers: dict[str, int] = {}
        errors: Errors = {}
        for choice in program_settings.CHOICES:
            raw = str(data.get(choice.name, "")).strip()
            if raw.lstrip("-").isdigit():
                numbers[choice.name] = int(raw)
            else:
                errors[choice.name] = f"Enter a whole number of {choice.unit}."
        boxes = data.get("box_types", [])
        changes: list[str] = []
        if not errors:
            try:
                changes = program_settings.update_choices(
                    db, audit, food_bank, numbers, require_upstairs=data.get("require_upstairs") == "true",
                    box_types=boxes if isinstance(boxes, list) else [boxes],
                    lend_allocation=data.get("lend_allocation") == "true",
                    waitlisted_is_rejected=data.get("waitlisted_is_rejected") == "true")
            except program_settings.ProgramError as exc:
                errors = {exc.field or "form": str(exc)}
            except ValueError:
                errors = {"box_types": "Choose box types from the list."}
        if errors:
            db.rollback()
            food_bank = food_bank_of(db, food_bank_id)
            section = self._program_section(request, db, food_bank, choice_errors=errors, choice_values={
                k: v for k, v in data.items() if k != "csrf_token"} | {
                    "require_upstairs": data.get("require_upstairs", ""),
                    "lend_allocation": data.get("lend_allocation", ""),
                    "waitlisted_is_rejected": data.get("waitlisted_is_rejected", ""),
                    "box_types": boxes if isinstance(boxes, list) else [boxes]})
            status_code = 422
        else:
            db.commit()
            section = self._program_section(request, db, food_bank,
                                            choice_notice="Saved: " + "; ".join(changes) + ".")
            status_code = 200
        return self._program_answer(request, section, status_code)

    @get("/program", opt=POLICY, sync_to_thread=True)
    def program_settings(self, request: Request, db: DB) -> Template:
        """The program's settings: boxes per delivery day and the delivery weekday."""
        food_banks = db.scalars(select(Organization).where(Organization.id.in_(programs(request)),
                                                           Organization.kind == "food_bank")
                                .order_by(Organization.name)).all()
        return page(request, "coordinator/program.html", weekday_options=WEEKDAY_OPTIONS,
                    spread_options=SPREAD_OPTIONS,
                    sections=[self._program_section(request, db, fb) for fb in food_banks])

    @post("/program/{food_bank_id:int}", opt=POLICY, sync_to_thread=True, status_code=200)
    def update_program(self, request: Request, db: DB, food_bank_id: PathId,
                       data: FormData) -> Response | Template:
        """Save capacity and delivery day; more capacity moves the waitlist up at once."""
        if food_bank_id not in programs(request):
            raise NotFoundException("No such program.")
        food_bank = db.scalar(select(Organization).where(Organization.id == food_bank_id).with_for_update())
        if food_bank is None:
            raise NotFoundException("No such program.")
        form, errors = parse(ProgramForm, data)
        change = None
        if form is not None:
            try:
                change = program_settings.update_settings(
                    db, food_bank, boxes_per_delivery_day=form.boxes_per_delivery_day,
                    delivery_weekday=form.delivery_weekday, actor_id=principal(request).user_id,
                    today=program_today(request, food_bank), spread_work=form.spread_work)
            except program_settings.ProgramError as exc:
                errors = {exc.field or "form": str(exc)}
        if change is None:
            db.rollback()
            food_bank = food_bank_of(db, food_bank_id)
            section = self._program_section(request, db, food_bank, values={k: v for k, v in data.items()
                                                                   if k != "csrf_token"}, errors=errors)
            status_code = 422
        else:
            notice = "Saved: " + "; ".join(change.changes) + "." + moved_text(db, change.promoted)
            section = self._program_section(request, db, food_bank, notice=notice, over=change.over_capacity)
            db.commit()
            status_code = 200
        return self._program_answer(request, section, status_code)

