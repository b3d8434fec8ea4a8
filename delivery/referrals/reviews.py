"""The coordinators' review queue: how a person settles each item, and a coordinator's own
address corrections.

Geocoding opens items for addresses it cannot place (not found, ambiguous); intake opens them for a
clinic proposing a new address for one a coordinator corrected, and for a possible duplicate
patient. Nothing here is dropped silently: every resolution records who, when and what on the
item, and a timeline event on the patient's referral, in the caller's transaction. The caller
commits, then wakes the geocoder when a patient went back to `pending`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from geopy.distance import great_circle
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import (
    OPEN_STATUSES,
    Depot,
    EventKind,
    GeocodeStatus,
    Order,
    Patient,
    Referral,
    ReviewItem,
    ReviewKind,
    utcnow,
)
from delivery.platform.errors import FieldError
from delivery.program import orders
from delivery.referrals.addresses import (
    Point,
    PostalAddress,
    patient_query,
    referral_of,
    set_address,
)
from delivery.referrals.schemas import AddressIn
from delivery.timeline import events as timeline
from delivery.timeline import payloads, text

GEOCODE_KINDS = (ReviewKind.geocode_failed, ReviewKind.geocode_ambiguous)
MAX_KM_FROM_DEPOT = 150.0
"""A point set by hand farther than this from every depot of the program is a typo (swapped
latitude and longitude, a lost minus sign), not a patient the program can reach."""


class ReviewError(FieldError):
    """A resolution that cannot be applied as asked; the message says what to do instead."""

    default_code = "review_refused"


# --- reading the queue -----------------------------------------------------------------------


def open_items(db: Session, food_bank_ids: Sequence[int]) -> list[ReviewItem]:
    """The programs' unresolved items, oldest first (first come, first checked)."""
    return list(db.scalars(select(ReviewItem).where(ReviewItem.food_bank_id.in_(food_bank_ids),
                                                    ReviewItem.resolved_at.is_(None))
                           .order_by(ReviewItem.created_at, ReviewItem.id)))


def recently_resolved(db: Session, food_bank_ids: Sequence[int], limit: int = 20) -> list[ReviewItem]:
    return list(db.scalars(select(ReviewItem).where(ReviewItem.food_bank_id.in_(food_bank_ids),
                                                    ReviewItem.resolved_at.is_not(None))
                           .order_by(ReviewItem.resolved_at.desc(), ReviewItem.id.desc()).limit(limit)))


def duplicate_pair(db: Session, item: ReviewItem) -> tuple[Referral | None, Referral | None]:
    """For a possible duplicate: (the newer open referral, the other patient's open referral).

    "Same person" ends the first one. Either may be None when that patient has no open referral.
    """
    other_id = int(item.details.get("other_patient_id") or 0)
    found = []
    for patient_id in (item.patient_id, other_id):
        found.append(db.scalar(select(Referral).where(Referral.patient_id == patient_id,
                                                      Referral.status.in_(OPEN_STATUSES))
                               .order_by(Referral.id.desc()).limit(1)))
    mine, theirs = found
    if mine is not None and theirs is not None and theirs.created_at > mine.created_at:
        return theirs, mine
    return (mine, theirs) if mine is not None else (theirs, None)


# --- geocoding items ----------------------------------------------------------------------------


def fix_address(db: Session, item: ReviewItem, address: AddressIn, *, actor_id: int,
                now: dt.datetime | None = None) -> ReviewItem:
    """A geocoding item: the coordinator corrects the address; it is located on the map again."""
    _check_open(item, GEOCODE_KINDS)
    now = now or utcnow()
    patient = item.patient
    new_query = _postal(address).query
    if address.lat is None and new_query == patient_query(patient) and "last_error" not in item.details:
        # The geocoder's answer for this query is cached: asking again would only bring it back.
        raise ReviewError("The map could not place this exact address (the unit is not part of the "
                          "search). Change the street, city or ZIP code, or set the point by hand.",
                          "line1")
    said = text.POINT[_apply_address(db, patient, address, actor_id, now, relocate=True)]
    _resolve(db, item, f"Address corrected to {patient.address_text}; {said}", actor_id, now)
    return item


def set_point(db: Session, item: ReviewItem, lat: float, lon: float, *, actor_id: int,
              now: dt.datetime | None = None) -> ReviewItem:
    """A geocoding item: the coordinator places the point by hand (from a map, a phone call)."""
    _check_open(item, GEOCODE_KINDS)
    check_point(db, item.food_bank_id, lat, lon)
    now = now or utcnow()
    patient = item.patient
    set_address(db, patient, point=Point(lat, lon, GeocodeStatus.manual), corrected=True,
                actor_id=actor_id, now=now)
    _resolve(db, item, f"Point set by hand at {lat:.5f}, {lon:.5f} for {patient.address_text}.",
             actor_id, now)
    return item


def pick_candidate(db: Session, item: ReviewItem, index: int, *, actor_id: int,
                   now: dt.datetime | None = None) -> ReviewItem:
    """An ambiguous address: the coordinator picks one of the places the geocoder offered."""
    _check_open(item, (ReviewKind.geocode_ambiguous,))
    candidates: list[dict[str, Any]] = list(item.details.get("candidates") or [])
    if not 0 <= index < len(candidates):
        raise ReviewError("Choose one of the places listed.", "candidate")
    chosen = candidates[index]
    lat, lon = float(chosen["lat"]), float(chosen["lon"])
    check_point(db, item.food_bank_id, lat, lon)
    now = now or utcnow()
    patient = item.patient
    set_address(db, patient, point=Point(lat, lon, GeocodeStatus.manual), actor_id=actor_id, now=now)
    _resolve(db, item, f"Place chosen: {str(chosen.get('display_name') or '')[:300]} "
                       f"({lat:.5f}, {lon:.5f}).", actor_id, now)
    return item


def check_point(db: Session, food_bank_id: int, lat: float, lon: float) -> None:
    """A point typed by hand: on Earth, not 0,0, and within reach of one of the program's depots."""
    if not (-90 <= lat <= 90):
        raise ReviewError("Latitude is between -90 and 90 (Oakland is about 37.8).", "lat")
    if not (-180 <= lon <= 180):
        raise ReviewError("Longitude is between -180 and 180 (Oakland is about -122.2; west is "
                          "negative).", "lon")
    if lat == 0 and lon == 0:
        raise ReviewError("0, 0 is in the ocean: enter the patient's latitude and longitude.", "lat")
    depots = db.execute(select(Depot.name, Depot.lat, Depot.lon)
                        .where(Depot.organization_id == food_bank_id)).all()
    if depots:
        name, km = min(((d.name, great_circle((lat, lon), (d.lat, d.lon)).km) for d in depots),
                       key=lambda pair: pair[1])
        if km > MAX_KM_FROM_DEPOT:
            raise ReviewError(f"That point is {km:,.0f} km from {name}. Check the numbers: latitude "
                              "first, then longitude, and west of Greenwich is negative.", "lat")


# --- a coordinator's address correction, from anywhere -------------------------------------------


def correct_address(db: Session, patient: Patient, address: AddressIn, *, actor_id: int,
                    now: dt.datetime | None = None) -> str:
    """A coordinator changes a patient's address (the order controls on a referral page).

    The new address is located again (or placed at the given point); an open geocoding item for
    the old address is resolved as superseded. Returns what happened, in words.
    """
    now = now or utcnow()
    current = (patient.address_line1, patient.unit, patient.city, patient.state, patient.postal_code)
    wanted = (address.line1.strip(), (address.unit or "").strip() or None, address.city.strip(),
              address.state.strip(), address.postal_code.strip())
    if wanted == current and address.lat is None:
        raise ReviewError("That is the address on file already.", "line1")
    old_query = patient_query(patient)
    said = text.POINT[_apply_address(db, patient, address, actor_id, now)]
    if address.lat is not None or patient_query(patient) != old_query:
        # An open item was about the old address; if the new one fails too, geocoding opens another.
        for item in db.scalars(select(ReviewItem).where(ReviewItem.patient_id == patient.id,
                                                        ReviewItem.kind.in_(GEOCODE_KINDS),
                                                        ReviewItem.resolved_at.is_(None))):
            _mark_resolved(item, "Superseded: a coordinator changed the address to "
                                 f"{patient.address_text}.", actor_id, now)
    db.flush()
    return said


def _postal(address: AddressIn) -> PostalAddress:
    return PostalAddress.of(address.line1, address.unit, address.city, address.state, address.postal_code)


def _apply_address(db: Session, patient: Patient, address: AddressIn, actor_id: int, now: dt.datetime, *,
                   relocate: bool = False) -> str:
    """A coordinator's correction: the address, placed at their point or located again."""
    point = (Point(address.lat, address.lon, GeocodeStatus.manual)
             if address.lat is not None and address.lon is not None else None)
    return set_address(db, patient, _postal(address), point=point, corrected=True, now=now,
                       relocate=relocate or patient.geocode_status == GeocodeStatus.needs_review,
                       actor_id=actor_id)


# --- a clinic proposed a new address for a corrected one ----------------------------------------


def accept_address_change(db: Session, item: ReviewItem, *, actor_id: int,
                          now: dt.datetime | None = None) -> ReviewItem:
    """Take the clinic's proposed address (and its point, if it sent one; else locate it again).

    The address on file is the clinic's again, so its later changes apply without review.
    """
    _check_open(item, (ReviewKind.address_change,))
    proposed: dict[str, Any] = dict(item.details.get("proposed") or {})
    if not proposed.get("address_line1"):
        raise ReviewError("This item carries no proposed address; keep the current one.")
    now = now or utcnow()
    patient = item.patient
    point = None
    if proposed.get("lat") is not None and proposed.get("lon") is not None:
        point = Point(float(proposed["lat"]), float(proposed["lon"]), GeocodeStatus.given)
    state = set_address(db, patient, PostalAddress.from_dict(proposed), point=point, corrected=False,
                        relocate=point is None, actor_id=actor_id, now=now)
    said = "with the clinic's point." if point is not None else text.POINT[state]
    for other in db.scalars(select(ReviewItem).where(ReviewItem.patient_id == patient.id,
                                                     ReviewItem.kind.in_(GEOCODE_KINDS),
                                                     ReviewItem.resolved_at.is_(None))):
        _mark_resolved(other, "Superseded: the clinic's new address was accepted.", actor_id, now)
    _resolve(db, item, f"Clinic's address accepted: {patient.address_text}; {said}", actor_id, now)
    return item


def keep_corrected_address(db: Session, item: ReviewItem, *, actor_id: int,
                           now: dt.datetime | None = None) -> ReviewItem:
    """Keep the address a coordinator corrected; the clinic's proposal is set aside."""
    _check_open(item, (ReviewKind.address_change,))
    proposed = dict(item.details.get("proposed") or {})
    offered = ", ".join(str(proposed[k]) for k in ("address_line1", "city", "postal_code") if proposed.get(k))
    resolution = f"Kept the corrected address {item.patient.address_text}"
    if offered:
        resolution += f", not the clinic's {offered}"
    _resolve(db, item, resolution + ".", actor_id, now or utcnow())
    return item


# --- possible duplicates ---------------------------------------------------------------------------


def different_people(db: Session, item: ReviewItem, *, actor_id: int,
                     now: dt.datetime | None = None) -> ReviewItem:
    """Same name and birth date, but two people: both keep their referrals."""
    _check_open(item, (ReviewKind.possible_duplicate,))
    other = item.details.get("other_mrn") or "the other record"
    _resolve(db, item, f"Checked: not the same person as MRN {other}.", actor_id, now or utcnow())
    return item


def same_person(db: Session, item: ReviewItem, reason: str, *, actor_id: int,
                today: dt.date, now: dt.datetime | None = None) -> list[Order]:
    """One person under two MRNs: the newer referral's order ends (with the reason) and the older
    one carries on. Returns the orders that moved off the waitlist into the freed capacity."""
    _check_open(item, (ReviewKind.possible_duplicate,))
    reason = reason.strip()
    if len(reason) < 3:
        raise ReviewError("Write how you know it is the same person.", "reason")
    now = now or utcnow()
    newer, kept = duplicate_pair(db, item)
    other = item.details.get("other_mrn") or "another record"
    moved: list[Order] = []
    if newer is not None and kept is not None:
        moved = orders.close_referral(db, newer, f"Same person as referral #{kept.id}: {reason}",
                                      actor_id, today)
        said = f"Same person as MRN {other}: referral #{newer.id} ended, #{kept.id} carries on. {reason}"
        timeline.record(db, kept, EventKind.duplicate_checked,
                        payloads.DuplicateChecked(other_referral_id=newer.id), actor_id=actor_id)
    else:
        said = f"Same person as MRN {other}; only one open referral, so nothing was ended. {reason}"
    _resolve(db, item, said, actor_id, now, referral=newer)
    return moved


# --- the follow-up of deliveries: failed attempts, an address problem, a receipt denied ------------

HELD_KINDS = (ReviewKind.failed_attempts, ReviewKind.address_problem)


def held_order(db: Session, item: ReviewItem) -> Order:
    order = db.get(Order, int(item.details.get("order_id") or 0))
    if order is None:
        raise ReviewError("This item names no order; mark it handled instead.")
    return order


def resume_deliveries(db: Session, item: ReviewItem, *, actor_id: int, today: dt.date,
                      now: dt.datetime | None = None) -> dt.date | None:
    """The coordinator reached the patient (or fixed the address): the held order delivers again.
    Returns its next delivery day."""
    _check_open(item, HELD_KINDS)
    try:
        next_day = orders.resume_held(db, held_order(db, item), today=today)
    except orders.OrderError as exc:
        raise ReviewError(str(exc)) from None
    when = f"next delivery {next_day:%a %d %b %Y}" if next_day else "no delivery day ahead"
    _resolve(db, item, f"Deliveries resume; {when}.", actor_id, now or utcnow())
    return next_day


def end_deliveries(db: Session, item: ReviewItem, reason: str, *, actor_id: int, today: dt.date,
                   now: dt.datetime | None = None) -> list[Order]:
    """Deliveries end for good (moved away, no longer wanted), with the reason. Returns the orders
    that moved off the waitlist into the freed boxes."""
    _check_open(item, (*HELD_KINDS, ReviewKind.receipt_denied))
    reason = reason.strip()
    if len(reason) < 3:
        raise ReviewError("Write why deliveries end.", "reason")
    moved = orders.end_order(db, held_order(db, item), reason, actor_id, today)
    _resolve(db, item, f"Deliveries ended: {reason}", actor_id, now or utcnow())
    return moved


def mark_handled(db: Session, item: ReviewItem, note: str, *, actor_id: int,
                 now: dt.datetime | None = None) -> ReviewItem:
    """A denied receipt settled outside the app (a box re-sent, the patient called back): what
    was done, in words. (A held order is resumed or ended instead, never left held unnoticed.)"""
    _check_open(item, (ReviewKind.receipt_denied,))
    note = note.strip()
    if len(note) < 3:
        raise ReviewError("Write what was done.", "note")
    _resolve(db, item, f"Handled: {note}", actor_id, now or utcnow())
    return item


# --- shared -----------------------------------------------------------------------------------------


def _check_open(item: ReviewItem, kinds: Sequence[str]) -> None:
    if item.resolved_at is not None:
        raise ReviewError(f"Someone already resolved this item: {item.resolution}")
    if item.kind not in kinds:
        raise ReviewError(f"That does not resolve a {item.kind.replace('_', ' ')} item.")


def _mark_resolved(item: ReviewItem, resolution: str, actor_id: int, now: dt.datetime) -> None:
    item.resolved_at = now
    item.resolved_by_id = actor_id
    item.resolution = resolution[:500]


def _resolve(db: Session, item: ReviewItem, resolution: str, actor_id: int, now: dt.datetime,
             referral: Referral | None = None) -> None:
    """Record who/when/what on the item and on the patient's referral timeline."""
    _mark_resolved(item, resolution, actor_id, now)
    referral = referral or referral_of(db, item.patient_id)
    if referral is not None:
        timeline.record(db, referral, EventKind.review_resolved,
                        payloads.ReviewResolved(review_item_id=item.id, review_kind=item.kind,
                                                resolution=item.resolution or ""), actor_id=actor_id)
    db.flush()
