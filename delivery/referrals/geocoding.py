"""Geocoding through geopy: a patient's address becomes a point a route can visit.

- A small `Geocoder` protocol with two adapters over geopy: Nominatim (the default; point it at a
  self-hosted server with DELIVERY_GEOCODER_URL) and Photon. `make_geocoder(settings)` returns None
  when DELIVERY_GEOCODER=none.
- Every request goes through geopy's `RateLimiter` (Nominatim's usage policy: one request per
  second) with `swallow_exceptions=False`: its default turns a 429 or a timeout into `None`, which
  would read like "no such address" and send a good address to the review queue.
- An answer is one of: found, not_found, ambiguous (several houses far apart, or only a street /
  city / postcode level match), or a retryable error (HTTP 429, 5xx, timeout, unreachable).
- Answers other than errors are cached in the database (`GeocodeCacheEntry`) under the normalised
  query, so the same address is never asked twice.
- `geocode_pending()` works through patients whose `geocode_status` is pending. It never holds the
  database writer during network I/O: the batch is read first, then each answer is written in its
  own short write transaction. Not found / ambiguous go to the coordinators' review queue (one open
  item per patient); errors are retried on later passes and go to review after `MAX_ATTEMPTS`.
  Nothing is dropped: the patient's Order stays, it is only not planned until it has a point.
- The geocode job (`delivery worker` runs it) is one `geocode_pending()` pass. Whatever leaves a
  patient pending queues it in the same transaction (`addresses.set_address` calls `queue(db)`: at
  most one queued at a time);
  while the geocoder keeps failing the job is retried with growing delays (up to 15 minutes).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

from geopy.adapters import URLLibAdapter
from geopy.distance import great_circle
from geopy.exc import GeocoderQueryError, GeopyError
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders import Nominatim, Photon
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from delivery.models import (
    GeocodeCacheEntry,
    GeocodeStatus,
    Organization,
    Patient,
    Referral,
    ReviewItem,
    ReviewKind,
    utcnow,
)
from delivery.platform import jobs
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.referrals.addresses import KIND, Point, patient_query, set_address

log = logging.getLogger(__name__)

USER_AGENT = "produce-box-delivery/0.1 (+contact)"
COUNTRY_CODES = "us"
RESULT_LIMIT = 5
SAME_PLACE_M = 300.0
"""Precise results closer than this to the best one are the same place (a building and its address
node, say); farther apart they are different places and a person has to choose."""
MAX_ATTEMPTS = 5
"""Retryable errors for one patient before the address goes to the review queue anyway."""
NEGATIVE_CACHE_DAYS = 30
"""not_found / ambiguous answers are asked again after this long (the map data improves)."""
REVIEW_KINDS = (ReviewKind.geocode_failed, ReviewKind.geocode_ambiguous)
_PG_LOCK_KEY = 0x67656F63  # "geoc": one geocoding pass at a time across app processes (PostgreSQL)


# --- answers -------------------------------------------------------------------------------------


class AnswerKind(StrEnum):
    found = "found"
    not_found = "not_found"
    ambiguous = "ambiguous"
    error = "error"  # retryable: 429, 5xx, timeout, unreachable; never cached


@dataclass(frozen=True, slots=True)
class Candidate:
    """One place the geocoder offered."""

    lat: float
    lon: float
    display_name: str
    precise: bool  # a house or building, not a street, postcode or city

    def as_dict(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "display_name": self.display_name,
                "precise": self.precise}


@dataclass(frozen=True, slots=True)
class GeocodeAnswer:
    """What a geocoder said about one query. Build it with the class methods."""

    kind: AnswerKind
    lat: float | None = None
    lon: float | None = None
    display_name: str | None = None
    candidates: tuple[Candidate, ...] = ()
    reason: str = ""  # plain words: why not found / ambiguous, or the error

    @classmethod
    def found(cls, lat: float, lon: float, display_name: str) -> GeocodeAnswer:
        return cls(AnswerKind.found, lat=lat, lon=lon, display_name=display_name)

    @classmethod
    def not_found(cls, reason: str = "no place matches this address") -> GeocodeAnswer:
        return cls(AnswerKind.not_found, reason=reason)

    @classmethod
    def ambiguous(cls, candidates: Sequence[Candidate], reason: str) -> GeocodeAnswer:
        return cls(AnswerKind.ambiguous, candidates=tuple(candidates), reason=reason)

    @classmethod
    def error(cls, reason: str) -> GeocodeAnswer:
        return cls(AnswerKind.error, reason=reason)


def decide(candidates: Sequence[Candidate]) -> GeocodeAnswer:
    """The rule shared by all adapters, in the geocoder's ranking order.

    Found: at least one precise (house-level) result, and every other precise result within
    `SAME_PLACE_M` of the best one. Ambiguous: precise results far apart, or only coarse ones
    (the street, postcode or city: a driver cannot find the door with that).
    """
    if not candidates:
        return GeocodeAnswer.not_found()
    precise = [c for c in candidates if c.precise]
    if not precise:
        return GeocodeAnswer.ambiguous(
            candidates, f"only an approximate match (for example “{candidates[0].display_name}”), "
                        "not the house itself")
    best = precise[0]
    far = [c for c in precise[1:]
           if great_circle((best.lat, best.lon), (c.lat, c.lon)).meters > SAME_PLACE_M]
    if far:
        return GeocodeAnswer.ambiguous(
            precise, f"the address matches {len(far) + 1} places more than {SAME_PLACE_M:.0f} m apart")
    return GeocodeAnswer.found(best.lat, best.lon, best.display_name)


# --- adapters ------------------------------------------------------------------------------------


class Geocoder(Protocol):
    provider: str  # the cache key's first half: "nominatim", "photon"

    def lookup(self, query: str) -> GeocodeAnswer:
        """Never raises for a geocoder's failure: that is an `AnswerKind.error` answer."""
        ...


def _endpoint(url: str, default_domain: str) -> tuple[str, str]:
    """(scheme, domain) for geopy from DELIVERY_GEOCODER_URL; a path prefix stays in the domain."""
    if not url:
        return "https", default_domain
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.scheme or "http", (parts.netloc + parts.path).rstrip("/")


def _error_answer(exc: GeopyError) -> GeocodeAnswer:
    return GeocodeAnswer.error(f"{type(exc).__name__}: {exc}"[:300])


class _GeopyGeocoder:
    """Shared plumbing: a geopy geocoder behind a RateLimiter that raises instead of swallowing."""

    provider = ""

    def __init__(self, geolocator: Any, *, min_delay_s: float, **geocode_kwargs: Any) -> None:
        self.geolocator = geolocator
        # Retries happen on later passes (the patient stays pending), so none in here: a retry in
        # here would block the worker for error_wait_seconds while holding nothing useful.
        self._geocode = RateLimiter(geolocator.geocode, min_delay_seconds=min_delay_s, max_retries=0,
                                    error_wait_seconds=min_delay_s, swallow_exceptions=False)
        self._kwargs = geocode_kwargs

    def lookup(self, query: str) -> GeocodeAnswer:
        try:
            locations = self._geocode(query, exactly_one=False, **self._kwargs)
        except GeocoderQueryError as exc:  # HTTP 400 and friends: this query will never work
            return GeocodeAnswer.not_found(f"the geocoder refused the query ({exc})"[:300])
        except GeopyError as exc:
            return _error_answer(exc)
        try:
            return decide([c for c in (self._candidate(loc.raw) for loc in locations or ()) if c])
        except (KeyError, TypeError, ValueError) as exc:  # an answer we cannot read: try again later
            log.warning("unreadable %s answer for %r: %s", self.provider, query, exc)
            return GeocodeAnswer.error(f"unreadable answer: {exc}"[:300])

    def _candidate(self, raw: dict[str, Any]) -> Candidate | None:
        raise NotImplementedError


# Nominatim's words for a house-level result (class/type, addresstype) and its place_rank scale
# (30: a house or point of interest; 26-27: a street; 21-25: suburbs, postcodes; 16: a city).
_NOMINATIM_PRECISE_CLASSES = {"building"}
_NOMINATIM_PRECISE_TYPES = {"house", "building", "apartments", "residential_building"}
_NOMINATIM_PRECISE_ADDRESSTYPES = {"house", "building"}
_POINT_LIKE_M = 100.0  # a bounding box smaller than this is a building, whatever its tags


def _adapter(*, proxies: Any, ssl_context: Any) -> URLLibAdapter:
    # geopy picks requests when it is installed, whose session retries a 429 that carries
    # Retry-After on its own: our pass must see every error once, whatever else is installed.
    return URLLibAdapter(proxies=proxies, ssl_context=ssl_context)


class NominatimGeocoder(_GeopyGeocoder):
    provider = "nominatim"

    def __init__(self, settings: Settings) -> None:
        scheme, domain = _endpoint(settings.geocoder_url, "nominatim.openstreetmap.org")
        super().__init__(
            Nominatim(domain=domain, scheme=scheme, user_agent=USER_AGENT,
                      timeout=settings.geocoder_timeout_s, adapter_factory=_adapter),
            min_delay_s=settings.geocoder_min_delay_s, limit=RESULT_LIMIT, country_codes=COUNTRY_CODES)

    def _candidate(self, raw: dict[str, Any]) -> Candidate:
        return Candidate(float(raw["lat"]), float(raw["lon"]), str(raw.get("display_name", "")),
                         precise=_nominatim_precise(raw))


def _nominatim_precise(raw: dict[str, Any]) -> bool:
    if raw.get("class") in _NOMINATIM_PRECISE_CLASSES or raw.get("type") in _NOMINATIM_PRECISE_TYPES:
        return True
    if raw.get("addresstype") in _NOMINATIM_PRECISE_ADDRESSTYPES:
        return True
    rank = raw.get("place_rank")
    if rank is not None and int(rank) >= 28:
        return True
    box = raw.get("boundingbox")  # [south, north, west, east] as strings
    if box and len(box) == 4 and raw.get("class") not in ("highway", "boundary", "place"):
        south, north, west, east = (float(v) for v in box)
        return great_circle((south, west), (north, east)).meters < _POINT_LIKE_M
    return False


class PhotonGeocoder(_GeopyGeocoder):
    provider = "photon"

    def __init__(self, settings: Settings) -> None:
        scheme, domain = _endpoint(settings.geocoder_url, "photon.komoot.io")
        super().__init__(
            Photon(domain=domain, scheme=scheme, user_agent=USER_AGENT, timeout=settings.geocoder_timeout_s,
                   adapter_factory=_adapter),
            min_delay_s=settings.geocoder_min_delay_s, limit=RESULT_LIMIT)

    def _candidate(self, raw: dict[str, Any]) -> Candidate | None:
        props = raw.get("properties") or {}
        country = props.get("countrycode")
        if country and str(country).lower() != COUNTRY_CODES:  # Photon has no country filter
            return None
        lon, lat = raw["geometry"]["coordinates"][:2]
        words = [props.get(k) for k in ("name", "housenumber", "street", "city", "state", "postcode")]
        if props.get("housenumber") and props.get("street") and props.get("name"):
            words[0] = None  # "1234" and "1234 98th Ave" say the same
        display = ", ".join(str(w) for w in words if w)
        precise = bool(props.get("housenumber")) or props.get("type") == "house"
        return Candidate(float(lat), float(lon), display, precise=precise)


def make_geocoder(settings: Settings) -> Geocoder | None:
    """The configured geocoder, or None when DELIVERY_GEOCODER=none."""
    name = settings.geocoder.strip().lower()
    if name == "none":
        return None
    if name == "nominatim":
        return NominatimGeocoder(settings)
    if name == "photon":
        return PhotonGeocoder(settings)
    raise ValueError(f"DELIVERY_GEOCODER={settings.geocoder!r}: use nominatim, photon or none")


# --- queries and the cache -----------------------------------------------------------------------



def _cached(db: Session, provider: str, query: str, now: dt.datetime) -> GeocodeAnswer | None:
    entry = db.scalar(select(GeocodeCacheEntry).where(GeocodeCacheEntry.provider == provider,
                                                      GeocodeCacheEntry.query == query))
    if entry is None:
        return None
    if entry.status == AnswerKind.found and entry.lat is not None and entry.lon is not None:
        return GeocodeAnswer.found(entry.lat, entry.lon, entry.display_name or "")
    if now - entry.created_at > dt.timedelta(days=NEGATIVE_CACHE_DAYS):
        return None
    data = entry.candidates or {}
    candidates = tuple(Candidate(float(c["lat"]), float(c["lon"]), str(c.get("display_name", "")),
                                 bool(c.get("precise"))) for c in data.get("items", ()))
    return GeocodeAnswer(AnswerKind(entry.status), candidates=candidates, reason=data.get("reason", ""))


def _store(db: Session, provider: str, query: str, answer: GeocodeAnswer) -> None:
    if answer.kind == AnswerKind.error:
        return
    entry = db.scalar(select(GeocodeCacheEntry).where(GeocodeCacheEntry.provider == provider,
                                                      GeocodeCacheEntry.query == query))
    if entry is None:
        entry = GeocodeCacheEntry(provider=provider, query=query)
        db.add(entry)
    entry.status = answer.kind.value
    entry.lat, entry.lon, entry.display_name = answer.lat, answer.lon, answer.display_name
    entry.candidates = {"reason": answer.reason, "items": [c.as_dict() for c in answer.candidates]}
    entry.created_at = utcnow()


# --- the pending queue ---------------------------------------------------------------------------


@dataclass
class GeocodeSummary:
    """What one pass did; `str()` is the line the CLI prints."""

    found: int = 0
    review: int = 0
    retry_later: int = 0
    not_tried: int = 0  # left pending: the geocoder was failing, or the pass was stopped
    busy: bool = False  # another process was geocoding: nothing was tried
    from_cache: int = 0
    last_error: str = ""
    note: str = ""

    @property
    def geocoder_failing(self) -> bool:
        return self.retry_later > 0

    def __str__(self) -> str:
        text_ = f"found {self.found}, review {self.review}, retry later {self.retry_later}"
        extras = []
        if self.from_cache:
            extras.append(f"{self.from_cache} from the cache")
        if self.not_tried:
            extras.append(f"{self.not_tried} not tried yet")
        if self.last_error:
            extras.append(f"geocoder error: {self.last_error}")
        if self.note:
            extras.append(self.note)
        return text_ + (f" ({'; '.join(extras)})" if extras else "")


@dataclass(frozen=True, slots=True)
class _Pending:
    patient_id: int
    query: str


def review_unlocated(db: Session) -> int:
    """With geocoding off (DELIVERY_GEOCODER=none), every address still waiting for a point goes
    to the review queue at once, so a coordinator places it by hand instead of it waiting for a
    geocoder that never comes. The caller commits; returns how many went."""
    waiting = list(db.scalars(select(Patient).where(Patient.geocode_status == GeocodeStatus.pending)
                              .order_by(Patient.id)))
    for patient in waiting:
        _send_to_review(db, patient, ReviewKind.geocode_failed,
                        "Geocoding is off on this server (DELIVERY_GEOCODER=none), so "
                        f"“{patient.address_text}” cannot be placed on the map by itself. Set the "
                        "point on the map by hand.",
                        {"query": patient_query(patient), "reason": "geocoding is off"})
    db.flush()
    return len(waiting)


def review_if_off(db: Session, settings: Settings) -> int:
    """`review_unlocated` when this server geocodes nothing, in the caller's transaction: the geocode
    job would do the same, but only once a worker runs, and the page answering now should show it."""
    return review_unlocated(db) if settings.geocoder == "none" else 0


def geocode_pending(database: Database, settings: Settings, limit: int | None = None, *,
                    geocoder: Geocoder | None = None,
                    should_stop: Callable[[], bool] = lambda: False) -> GeocodeSummary:
    """Geocode patients whose status is pending, in id order; each result commits on its own.

    `geocoder` defaults to `make_geocoder(settings)`; a long-lived caller (the worker) passes its
    own so the rate limiter's clock carries over between passes. The first retryable error ends
    the pass: a geocoder answering 429 or down is not asked again for every other address.
    """
    summary = GeocodeSummary()
    geocoder = geocoder if geocoder is not None else make_geocoder(settings)
    if geocoder is None:
        with database.writer() as db:
            summary.review = review_unlocated(db)
            db.commit()
        summary.note = "geocoding is off: DELIVERY_GEOCODER=none"
        return summary
    with _one_pass_at_a_time(database) as ours:
        if not ours:
            summary.note = "another process is geocoding; skipped"
            summary.busy = True
            return summary
        with database.reader() as db:
            stmt = select(Patient).where(Patient.geocode_status == GeocodeStatus.pending).order_by(Patient.id)
            if limit is not None:
                stmt = stmt.limit(limit)
            batch = [_Pending(p.id, patient_query(p)) for p in db.scalars(stmt)]
        for index, item in enumerate(batch):
            if should_stop():
                summary.not_tried += len(batch) - index
                summary.note = "stopped"
                break
            with database.reader() as db:
                answer = _cached(db, geocoder.provider, item.query, settings.clock.now())
            if answer is not None:
                summary.from_cache += 1
            else:
                answer = _lookup(geocoder, item.query)
            try:
                _record(database, geocoder.provider, item, answer, summary)
            except Exception:  # this patient stays pending; the others still get their turn
                log.exception("could not record the geocoding answer for patient %s", item.patient_id)
            if answer.kind == AnswerKind.error:
                summary.last_error = answer.reason
                summary.not_tried += len(batch) - index - 1
                break
    return summary


def _lookup(geocoder: Geocoder, query: str) -> GeocodeAnswer:
    try:
        return geocoder.lookup(query)
    except Exception as exc:  # an adapter bug must not loop forever: it counts as an attempt
        log.exception("geocoder %s failed on %r", geocoder.provider, query)
        return GeocodeAnswer.error(f"unexpected {type(exc).__name__}: {exc}"[:300])


def _record(database: Database, provider: str, item: _Pending, answer: GeocodeAnswer,
            summary: GeocodeSummary) -> None:
    """Write one answer in its own short write transaction."""
    with database.writer() as db:
        _store(db, provider, item.query, answer)
        patient = db.get(Patient, item.patient_id)
        # Someone may have changed the address or set the point while we were asking.
        if (patient is None or patient.geocode_status != GeocodeStatus.pending
                or patient_query(patient) != item.query):
            db.commit()
            return
        if answer.kind == AnswerKind.found:
            assert answer.lat is not None and answer.lon is not None
            set_address(db, patient, point=Point(answer.lat, answer.lon, GeocodeStatus.found))
            waiting = _open_geocoding_item(db, patient)
            if waiting is not None:  # opened while the geocoder was failing: settled by itself
                waiting.resolved_at = utcnow()
                waiting.resolution = f"Located by the geocoder on a later try: {answer.display_name}"[:500]
            summary.found += 1
        elif answer.kind == AnswerKind.error:
            patient.geocode_attempts = (patient.geocode_attempts or 0) + 1
            details = {"query": item.query, "last_error": answer.reason, "attempts": patient.geocode_attempts}
            if patient.geocode_attempts >= MAX_ATTEMPTS:
                _send_to_review(db, patient, ReviewKind.geocode_failed,
                                f"The geocoder kept failing for this address ({patient.geocode_attempts} "
                                f"tries). Check the address, or set the point on the map by hand.", details)
                summary.review += 1
            else:
                # In the queue at once, so a coordinator can place it before a delivery day; the
                # patient stays pending and a later pass that finds it closes the item.
                _open_item(db, patient, ReviewKind.geocode_failed,
                           f"The geocoder could not answer for “{patient.address_text}” ({answer.reason}). "
                           "It will try again; set the point on the map now if a delivery is soon.",
                           details)
                summary.retry_later += 1
        elif answer.kind == AnswerKind.not_found:
            _send_to_review(db, patient, ReviewKind.geocode_failed,
                            f"The address “{patient.address_text}” could not be found on the map "
                            f"({answer.reason}). Fix the address, or set the point on the map by hand.",
                            {"query": item.query, "reason": answer.reason})
            summary.review += 1
        else:
            _send_to_review(db, patient, ReviewKind.geocode_ambiguous,
                            f"The address “{patient.address_text}” is not clear enough to deliver to: "
                            f"{answer.reason}. Pick the right place, fix the address, or set the point "
                            "by hand.",
                            {"query": item.query, "reason": answer.reason,
                             "candidates": [c.as_dict() for c in answer.candidates]})
            summary.review += 1
        db.commit()


def _send_to_review(db: Session, patient: Patient, kind: ReviewKind, message: str,
                    details: dict[str, Any]) -> None:
    """needs_review plus one open geocoding ReviewItem for the patient (updated, never doubled)."""
    patient.geocode_status = GeocodeStatus.needs_review
    _open_item(db, patient, kind, message, details)


def _open_geocoding_item(db: Session, patient: Patient) -> ReviewItem | None:
    return db.scalar(select(ReviewItem).where(ReviewItem.patient_id == patient.id,
                                              ReviewItem.kind.in_(REVIEW_KINDS),
                                              ReviewItem.resolved_at.is_(None))
                     .order_by(ReviewItem.id).limit(1))


def _open_item(db: Session, patient: Patient, kind: ReviewKind, message: str,
               details: dict[str, Any]) -> None:
    """The patient's one open geocoding ReviewItem, opened or updated (never doubled)."""
    item = _open_geocoding_item(db, patient)
    if item is None:
        item = ReviewItem(patient_id=patient.id, food_bank_id=_food_bank_id(db, patient))
        db.add(item)
    item.kind = kind
    item.message = message[:500]
    item.details = details


def _food_bank_id(db: Session, patient: Patient) -> int:
    clinic = db.get(Organization, patient.clinic_id)
    if clinic is not None and clinic.food_bank_id is not None:
        return clinic.food_bank_id
    food_bank_id = db.scalar(select(Referral.food_bank_id).where(Referral.patient_id == patient.id)
                             .order_by(Referral.id.desc()).limit(1))
    if food_bank_id is None:
        raise ValueError(f"patient {patient.id}: no food bank to send the review item to")
    return food_bank_id


class _one_pass_at_a_time:
    """On PostgreSQL, a session advisory lock (on an autocommit connection, so no transaction stays
    open) lets one process geocode at a time: several app processes share one rate limit. On
    SQLite there is one app process and its worker thread runs one pass at a time anyway."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.conn: Any = None

    def __enter__(self) -> bool:
        if self.database.is_sqlite:
            return True
        self.conn = self.database.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = bool(self.conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LOCK_KEY}))
        if not got:
            self.conn.close()
            self.conn = None
        return got

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            finally:
                self.conn.close()


# --- the job ------------------------------------------------------------------------------------


class GeocoderUnavailable(Exception):
    """A pass ended with patients still pending: the geocoder failed, or someone else was at it."""


class GeocodeJob:
    """The geocode kind's handler: one `geocode_pending()` pass per job.

    The geocoder (and so its rate limiter's clock) lives as long as the worker, across passes.
    """

    def __init__(self, geocoder: Geocoder | None = None) -> None:
        self._geocoder = geocoder

    def __call__(self, ctx: jobs.JobContext) -> None:
        if self._geocoder is None:
            self._geocoder = make_geocoder(ctx.settings)
        summary = geocode_pending(ctx.database, ctx.settings, geocoder=self._geocoder,
                                  should_stop=ctx.stopping.is_set)
        if summary.found or summary.review or summary.retry_later:
            log.info("geocoding: %s", summary)
        if summary.retry_later or summary.not_tried or summary.busy:
            raise GeocoderUnavailable(str(summary))


def job_kind(geocoder: Geocoder | None = None) -> jobs.Kind:
    """geocode: retried after 1, 2, 4 … minutes (at most 15) while the geocoder fails."""
    return jobs.Kind(KIND, GeocodeJob(geocoder), backoff=jobs.exponential(first_s=60.0, max_s=15 * 60.0))
