"""Geocoding stories: geopy talks to a loopback server that answers like Nominatim (and Photon),
including its failures, and every address ends up either with a point or in the review queue."""

from __future__ import annotations

import dataclasses
import itertools
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from delivery.models import (
    GeocodeCacheEntry,
    GeocodeStatus,
    Job,
    JobState,
    Order,
    OrderStatus,
    Patient,
    ReviewItem,
    ReviewKind,
    Source,
)
from delivery.platform.clock import Clock
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from delivery.platform.settings import Settings
from delivery.referrals import geocoding, intake
from delivery.referrals.addresses import PostalAddress, normalise_query, set_address
from delivery.referrals.geocoding import (
    Candidate,
    GeocodeAnswer,
    geocode_pending,
)
from delivery.referrals.schemas import ReferralIn
from delivery.web.app import create_app
from tests.builders import Program, api_token, referral_body
from tests.conftest import BASE_URL
from tests.geocoder_stub import CITY, HOUSE, SAME_PLACE, StubGeocoder
from tests.job_builders import FakeClock, running_worker

ROSA = "1234 98th ave, oakland, ca 94603"  # the normalised query for the example address
TIMEOUT_S = 1.0  # generous: a loaded CI machine must not turn a good answer into a timeout


@pytest.fixture(scope="module")
def stub() -> Iterator[StubGeocoder]:
    server = StubGeocoder(slow_seconds=TIMEOUT_S * 3).start()
    yield server
    server.stop()


@pytest.fixture
def geo(stub: StubGeocoder, settings: Settings) -> Settings:
    """Settings pointing Nominatim at the stub; no rate limit unless a test asks for one."""
    stub.reset()
    return msgspec.structs.replace(settings, geocoder="nominatim", geocoder_url=stub.url,
                                   geocoder_min_delay_s=0.0, geocoder_timeout_s=TIMEOUT_S)


@pytest.fixture
def adapter_settings(stub: StubGeocoder) -> Settings:
    """For tests of the adapters alone (no database, so they run once, not per database)."""
    stub.reset()
    return Settings(database_url="sqlite://", secret_key="test-secret", geocoder="nominatim",
                    geocoder_url=stub.url, geocoder_min_delay_s=0.0, geocoder_timeout_s=TIMEOUT_S)


def refer(database: Database, program: Program, *, mrn: str, given: str = "Rosa",
          line1: str = "1234 98th Ave", unit: str | None = "3B") -> int:
    """A clinic refers a patient with an address but no coordinates; returns the patient id."""
    address = {"line1": line1, "unit": unit, "city": "Oakland", "state": "CA", "postal_code": "94603"}
    body = referral_body(patient__mrn=mrn, patient__given_name=given, patient__address=address)
    with database.writer() as db:
        result = intake.refer(db, msgspec.convert(body, ReferralIn), clinic_id=program.clinic1_id,
                              actor_id=None, source=Source.api, clock=Clock())
        db.commit()
        assert result.order is not None and result.referral.patient.geocode_status == GeocodeStatus.pending
        return result.referral.patient_id


def patient(database: Database, patient_id: int) -> Patient:
    with database.reader() as db:
        found = db.get(Patient, patient_id)
        assert found is not None
        return found


def open_reviews(database: Database, patient_id: int) -> list[ReviewItem]:
    with database.reader() as db:
        return list(db.scalars(select(ReviewItem).where(
            ReviewItem.patient_id == patient_id, ReviewItem.resolved_at.is_(None),
            ReviewItem.kind.in_(geocoding.REVIEW_KINDS))))


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# --- the happy path ------------------------------------------------------------------------------


def test_a_referral_without_coordinates_gets_geocoded(database: Database, program: Program,
                                                      geo: Settings, stub: StubGeocoder) -> None:
    stub.script(ROSA, "house")
    rosa = refer(database, program, mrn="A-1")

    summary = geocode_pending(database, geo)

    assert (summary.found, summary.review, summary.retry_later) == (1, 0, 0)
    assert str(summary).startswith("found 1, review 0, retry later 0")
    placed = patient(database, rosa)
    assert placed.geocode_status == GeocodeStatus.found
    assert (placed.lat, placed.lon) == pytest.approx((37.7491, -122.1690))
    [seen] = stub.requests
    assert seen.path == "/search"
    assert seen.params["q"] == ROSA  # the unit (3B) is not sent
    assert seen.params["format"] == "json"
    assert seen.params["countrycodes"] == "us"
    assert seen.params["limit"] == "5"
    assert seen.user_agent == geocoding.USER_AGENT == "produce-box-delivery/0.1 (+contact)"


def test_the_app_geocodes_a_new_referral_in_the_background(database: Database, program: Program,
                                                          geo: Settings, stub: StubGeocoder) -> None:
    stub.script(ROSA, "house")
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    body = referral_body()
    del body["patient"]["address"]["lat"], body["patient"]["address"]["lon"]
    with (TestClient(app=create_app(geo, database), base_url=BASE_URL) as client,
          running_worker(database, geo)):
        created = client.post("/api/v1/referrals", json=body, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["geocode_status"] == "pending"
        assert created.json()["order_id"] is not None

        def placed() -> bool:
            answer = client.get(f"/api/v1/referrals/{created.json()['id']}", headers=headers)
            return answer.json()["geocode_status"] == "found"

        wait_for(placed)
    assert stub.count(ROSA) == 1


# --- the review queue ----------------------------------------------------------------------------


def test_an_address_not_found_goes_to_the_review_queue_and_its_order_is_kept(
        database: Database, program: Program, geo: Settings, stub: StubGeocoder) -> None:
    nowhere = "1 nowhere lane, oakland, ca 94603"
    stub.script(nowhere, "none")
    ghost = refer(database, program, mrn="A-2", given="Gus", line1="1 Nowhere Lane")

    summary = geocode_pending(database, geo)

    assert (summary.found, summary.review, summary.retry_later) == (0, 1, 0)
    assert patient(database, ghost).geocode_status == GeocodeStatus.needs_review
    [item] = open_reviews(database, ghost)
    assert item.kind == ReviewKind.geocode_failed
    assert item.food_bank_id == program.food_bank_id
    assert "1 Nowhere Lane" in item.message and "by hand" in item.message
    with database.reader() as db:  # nothing dropped: the Order waits for its point
        [order] = db.scalars(select(Order).where(Order.patient_id == ghost))
        assert order.status == OrderStatus.active

    # A coordinator sends the same address back to geocoding: the cached answer is used and the
    # open item is updated, not doubled.
    with database.writer() as db:
        again = db.get(Patient, ghost)
        assert again is not None
        set_address(db, again, relocate=True)
        db.commit()
    summary = geocode_pending(database, geo)
    assert (summary.review, summary.from_cache) == (1, 1)
    assert stub.count(nowhere) == 1
    assert len(open_reviews(database, ghost)) == 1


def test_an_ambiguous_address_goes_to_the_review_queue_with_its_candidates(
        database: Database, program: Program, geo: Settings, stub: StubGeocoder) -> None:
    stub.script(ROSA, "far_apart")
    rosa = refer(database, program, mrn="A-1")

    assert geocode_pending(database, geo).review == 1

    placed = patient(database, rosa)
    assert placed.geocode_status == GeocodeStatus.needs_review and placed.lat is None
    [item] = open_reviews(database, rosa)
    assert item.kind == ReviewKind.geocode_ambiguous
    assert "places more than 300 m apart" in item.message
    assert len(item.details["candidates"]) == 2
    assert {"lat", "lon", "display_name"} <= set(item.details["candidates"][0])


# --- failures are not "not found" ----------------------------------------------------------------


@pytest.mark.parametrize("failure", ["429", "500", "slow"])
def test_a_failing_geocoder_puts_the_address_in_review_at_once_and_retries_later(
        database: Database, program: Program, geo: Settings, stub: StubGeocoder, failure: str) -> None:
    """A geocoder error opens a review item with the reason at once (a coordinator may place the
    point now); the patient stays pending, and the try that finds it closes the item."""
    stub.script(ROSA, failure, "house")
    rosa = refer(database, program, mrn="A-1")

    summary = geocode_pending(database, geo)

    assert (summary.found, summary.review, summary.retry_later) == (0, 0, 1)
    assert summary.last_error
    waiting = patient(database, rosa)
    assert (waiting.geocode_status, waiting.geocode_attempts) == (GeocodeStatus.pending, 1)
    [item] = open_reviews(database, rosa)
    assert "could not answer" in item.message and item.details["last_error"] == summary.last_error
    with database.reader() as db:  # an error is never cached
        assert db.scalar(select(func.count()).select_from(GeocodeCacheEntry)) == 0

    summary = geocode_pending(database, geo)  # the geocoder has recovered

    assert summary.found == 1
    assert patient(database, rosa).geocode_status == GeocodeStatus.found
    assert stub.count(ROSA) == 2
    assert open_reviews(database, rosa) == []


def test_the_first_error_ends_the_pass(database: Database, program: Program, geo: Settings,
                                       stub: StubGeocoder) -> None:
    stub.script(ROSA, "429")
    refer(database, program, mrn="A-1")
    later = refer(database, program, mrn="A-2", given="Gus", line1="77 Elm St")

    summary = geocode_pending(database, geo)

    assert (summary.retry_later, summary.not_tried) == (1, 1)
    assert "1 not tried yet" in str(summary)
    assert stub.count() == 1  # a rate-limited geocoder is not asked again straight away
    assert patient(database, later).geocode_attempts == 0


def test_a_geocoder_that_keeps_failing_sends_the_address_to_review(
        database: Database, program: Program, geo: Settings, stub: StubGeocoder) -> None:
    stub.script(ROSA, "500")
    rosa = refer(database, program, mrn="A-1")

    for _ in range(geocoding.MAX_ATTEMPTS - 1):
        assert geocode_pending(database, geo).retry_later == 1
    assert geocode_pending(database, geo).review == 1

    assert patient(database, rosa).geocode_status == GeocodeStatus.needs_review
    [item] = open_reviews(database, rosa)
    assert item.kind == ReviewKind.geocode_failed and "kept failing" in item.message
    assert item.details["attempts"] == geocoding.MAX_ATTEMPTS
    assert geocode_pending(database, geo).review == 0  # nothing pending any more
    assert stub.count(ROSA) == geocoding.MAX_ATTEMPTS


def test_an_unreachable_geocoder_is_an_error_not_a_missing_address(
        database: Database, program: Program, geo: Settings) -> None:
    with socket.socket() as probe:  # a free port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    rosa = refer(database, program, mrn="A-1")

    summary = geocode_pending(database, msgspec.structs.replace(geo, geocoder_url=url))

    assert summary.retry_later == 1 and "refused" in summary.last_error
    assert patient(database, rosa).geocode_status == GeocodeStatus.pending


# --- the cache and the rate limit ----------------------------------------------------------------


def test_the_cache_avoids_a_second_request_for_the_same_address(
        database: Database, program: Program, geo: Settings, stub: StubGeocoder) -> None:
    stub.script(ROSA, "house")
    first = refer(database, program, mrn="A-1", unit="3B")
    # A neighbour in the same building, the unit written into line 1 the way people do.
    second = refer(database, program, mrn="A-2", given="Gus", line1="1234  98th Ave Apt 5", unit=None)

    summary = geocode_pending(database, geo)

    assert (summary.found, summary.from_cache) == (2, 1)
    assert stub.count() == 1
    assert patient(database, first).lat == patient(database, second).lat
    with database.reader() as db:
        [entry] = db.scalars(select(GeocodeCacheEntry))
        assert (entry.provider, entry.query, entry.status) == ("nominatim", ROSA, "found")


def test_the_rate_limiter_spaces_requests(adapter_settings: Settings, stub: StubGeocoder) -> None:
    geocoder = geocoding.make_geocoder(msgspec.structs.replace(adapter_settings, geocoder_min_delay_s=0.2))
    assert geocoder is not None

    answers = [geocoder.lookup(f"{n} elm st, oakland, ca 94603").kind for n in range(3)]

    assert answers == ["not_found"] * 3
    times = [r.at for r in stub.requests]
    # Arrival times at the stub carry scheduling noise on a loaded machine; without the limiter the
    # gaps are a few milliseconds, so 0.15 s still tells the two apart.
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.15


def test_the_limit_takes_patients_in_id_order(database: Database, program: Program, geo: Settings,
                                              stub: StubGeocoder) -> None:
    first = refer(database, program, mrn="A-1")
    second = refer(database, program, mrn="A-2", given="Gus", line1="77 Elm St")
    stub.script(ROSA, "house")

    assert geocode_pending(database, geo, limit=1).found == 1

    assert patient(database, first).geocode_status == GeocodeStatus.found
    assert patient(database, second).geocode_status == GeocodeStatus.pending


# --- other providers, and none -------------------------------------------------------------------


def test_photon_is_an_alternative(adapter_settings: Settings, stub: StubGeocoder) -> None:
    stub.script(ROSA, "photon_house")
    geocoder = geocoding.make_geocoder(msgspec.structs.replace(adapter_settings, geocoder="photon"))
    assert isinstance(geocoder, geocoding.PhotonGeocoder)

    answer = geocoder.lookup(ROSA)

    assert answer.kind == "found"
    assert (answer.lat, answer.lon) == pytest.approx((37.7491, -122.169))
    assert answer.display_name == "1234, 98th Avenue, Oakland, California, 94603"
    assert geocoder.lookup("somewhere else").kind == "not_found"
    seen = stub.requests[0]
    assert (seen.path, seen.params["q"], seen.params["limit"]) == ("/api", ROSA, "5")
    assert seen.user_agent == geocoding.USER_AGENT


def test_geocoder_none_asks_nobody_and_sends_the_address_to_review(
        database: Database, program: Program, adapter_settings: Settings, stub: StubGeocoder) -> None:
    """With DELIVERY_GEOCODER=none a pending address goes to the review queue with the reason."""
    off = msgspec.structs.replace(adapter_settings, geocoder="none")
    rosa = refer(database, program, mrn="A-1")

    assert geocoding.make_geocoder(off) is None
    summary = geocode_pending(database, off)
    assert "geocoding is off" in str(summary) and summary.review == 1
    assert stub.requests == []
    assert patient(database, rosa).geocode_status == GeocodeStatus.needs_review
    [item] = open_reviews(database, rosa)
    assert "Geocoding is off" in item.message and "Set the point on the map" in item.message
    with pytest.raises(ValueError, match="nominatim, photon or none"):
        geocoding.make_geocoder(msgspec.structs.replace(off, geocoder="google"))


# --- races and the worker ------------------------------------------------------------------------


class FakeGeocoder:
    """In memory: answers found for everything, and runs `during` while "on the network"."""

    provider = "fake"

    def __init__(self, during: Callable[[], Any] = lambda: None) -> None:
        self.during = during
        self.calls: list[str] = []

    def lookup(self, query: str) -> GeocodeAnswer:
        self.calls.append(query)
        self.during()
        return GeocodeAnswer.found(37.75, -122.17, query)


def test_an_answer_is_not_applied_when_the_patient_changed_during_the_lookup(
        database: Database, program: Program, geo: Settings) -> None:
    rosa = refer(database, program, mrn="A-1")
    gus = refer(database, program, mrn="A-2", given="Gus", line1="77 Elm St")

    def meanwhile() -> None:  # geocode_pending holds no transaction while it asks
        with database.writer() as db:
            first, second = db.get(Patient, rosa), db.get(Patient, gus)
            assert first is not None and second is not None
            # A coordinator sets Rosa's point by hand, and corrects Gus's address.
            first.lat, first.lon, first.geocode_status = 37.1, -122.1, GeocodeStatus.manual
            set_address(db, second, dataclasses.replace(PostalAddress.of_patient(second), line1="9 Oak St"))
            db.commit()

    fake = FakeGeocoder(meanwhile)
    assert geocode_pending(database, geo, geocoder=fake).found == 0

    placed = patient(database, rosa)
    assert (placed.geocode_status, placed.lat) == (GeocodeStatus.manual, 37.1)  # not overwritten
    assert patient(database, gus).geocode_status == GeocodeStatus.pending  # the old answer is unused

    fake.during = lambda: None
    assert geocode_pending(database, geo, geocoder=fake).found == 1
    assert fake.calls == [ROSA, "77 elm st, oakland, ca 94603", "9 oak st, oakland, ca 94603"]
    assert patient(database, gus).geocode_status == GeocodeStatus.found


class DownGeocoder(FakeGeocoder):
    """Answers "try again later" until `up` is set."""

    up = False

    def lookup(self, query: str) -> GeocodeAnswer:
        self.calls.append(query)
        return GeocodeAnswer.found(37.75, -122.17, query) if self.up else GeocodeAnswer.error("HTTP 503")


def test_new_addresses_queue_one_geocode_job_that_retries_while_the_geocoder_is_down(
        database: Database, program: Program, geo: Settings) -> None:
    rosa = refer(database, program, mrn="A-1")
    gus = refer(database, program, mrn="A-2", given="Gus", line1="77 Elm St")
    with database.reader() as db:  # two addresses waiting, one pass asked for
        queued = db.scalars(select(Job).where(Job.kind == geocoding.KIND)).all()
    assert [j.state for j in queued] == [JobState.queued]

    clock, geocoder = FakeClock(), DownGeocoder()
    runner = Runner(database, geo, [geocoding.job_kind(geocoder)], clock=clock)
    assert runner.run_once()
    with database.reader() as db:
        job = db.get(Job, queued[0].id)
    assert job.state == JobState.queued and job.attempts == 1 and "HTTP 503" in job.last_error
    assert 60 <= (job.run_after - clock.now()).total_seconds() <= 120  # 1 minute, plus jitter
    assert patient(database, rosa).geocode_status == GeocodeStatus.pending

    assert not runner.run_once()  # not due yet: the geocoder is left alone
    assert len(geocoder.calls) == 1
    clock.advance(120)
    geocoder.up = True
    assert runner.run_once()
    with database.reader() as db:
        assert db.get(Job, queued[0].id).state == JobState.done
    assert patient(database, rosa).geocode_status == GeocodeStatus.found
    assert patient(database, gus).geocode_status == GeocodeStatus.found


# --- the rules, on the real answer formats --------------------------------------------------------


def test_what_counts_as_a_house_in_nominatim_answers() -> None:
    street = {**CITY, "class": "highway", "type": "residential", "addresstype": "road", "place_rank": 26}
    postcode = {**CITY, "class": "place", "type": "postcode", "addresstype": "postcode", "place_rank": 21,
                "boundingbox": ["37.7", "37.7", "-122.2", "-122.2"]}
    assert geocoding._nominatim_precise(HOUSE)
    assert geocoding._nominatim_precise(SAME_PLACE[1])  # a building
    assert not geocoding._nominatim_precise(CITY)
    assert not geocoding._nominatim_precise(street)
    assert not geocoding._nominatim_precise(postcode)


def test_how_candidates_decide_the_answer() -> None:
    house = Candidate(37.7491, -122.1690, "1234 98th Ave", precise=True)
    building = Candidate(37.7492, -122.1691, "the same building", precise=True)  # ~15 m away
    elsewhere = Candidate(37.7800, -122.2200, "1234 98th St", precise=True)  # ~6 km away
    city = Candidate(37.8044, -122.2712, "Oakland", precise=False)

    assert geocoding.decide([]).kind == "not_found"
    assert geocoding.decide([house, building, city]) == GeocodeAnswer.found(37.7491, -122.1690,
                                                                            "1234 98th Ave")
    assert geocoding.decide([city, house]).kind == "found"  # a coarse match ranked first is no rival
    far = geocoding.decide([house, elsewhere, city])
    assert (far.kind, far.candidates) == ("ambiguous", (house, elsewhere))
    coarse = geocoding.decide([city])
    assert (coarse.kind, coarse.candidates) == ("ambiguous", (city,))
    assert "approximate" in coarse.reason


# --- query normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(("line1", "expected"), [
    ("1234 98th Ave", ROSA),
    ("  1234   98TH AVE. ", "1234 98th ave., oakland, ca 94603"),
    ("1234 98th Ave Apt 3B", ROSA),
    ("1234 98th Ave, Unit 3-B", ROSA),
    ("1234 98th Ave #3B", ROSA),
    ("1234 98th Ave Ste. 200", ROSA),
    ("12 Unity Way", "12 unity way, oakland, ca 94603"),
])
def test_queries_are_normalised_without_the_unit(line1: str, expected: str) -> None:
    assert normalise_query(line1, "Oakland", "CA", "94603") == expected
