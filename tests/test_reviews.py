"""The review queue: every item a person has to settle gets settled, with who, when and what on
the item and on the patient's referral timeline; through the services and through the page."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from delivery.models import (
    GeocodeStatus,
    Order,
    OrderStatus,
    Patient,
    Referral,
    ReferralStatus,
    ReviewItem,
    ReviewKind,
    User,
)
from delivery.referrals import reviews
from delivery.referrals.geocoding import Candidate, GeocodeAnswer
from delivery.referrals.schemas import AddressIn
from tests.builders import sign_in
from tests.coordinator_builders import (
    geocode_with,
    htmx,
    other_program,
    program_today,
    refer,
    set_capacity,
    timeline,
)

TODAY = dt.date(2026, 11, 23)
ROSA_POINT = (37.7491, -122.1690)


def failed_address(database, settings, program, mrn: str = "G1", today: dt.date = TODAY) -> tuple[int, int]:
    """A referral whose address the map cannot find: (review item id, referral id)."""
    with database.writer() as db:
        result = refer(db, program, mrn, today=today, point=False)
        db.commit()
    geocode_with(database, settings, GeocodeAnswer.not_found())
    with database.reader() as db:
        item = db.scalar(select(ReviewItem).where(ReviewItem.patient_id == result.referral.patient_id))
        assert item is not None and item.kind == ReviewKind.geocode_failed
        return item.id, result.referral.id


def coordinator_id(db, program) -> int:
    return db.scalar(select(User.id).where(User.email == program.coordinator))


# --- geocoding items ---------------------------------------------------------------------------


def test_a_point_set_by_hand_resolves_the_item_and_is_on_the_timeline(database, settings, program) -> None:
    """Not found → point by hand: the patient has a manual point, the item says who and what."""
    item_id, referral_id = failed_address(database, settings, program)
    with database.writer() as db:
        me = coordinator_id(db, program)
        reviews.set_point(db, db.get(ReviewItem, item_id), *ROSA_POINT, actor_id=me)
        db.commit()
    with database.reader() as db:
        item = db.get(ReviewItem, item_id)
        assert item.resolved_at is not None and item.resolved_by_id == me
        assert "Point set by hand at 37.74910, -122.16900" in item.resolution
        patient = item.patient
        assert (patient.lat, patient.lon) == ROSA_POINT and patient.geocode_status == GeocodeStatus.manual
        assert patient.address_corrected_at is not None
        assert ("review_resolved", f"Review: {item.resolution}") in timeline(db, referral_id)


@pytest.mark.parametrize(("lat", "lon", "words"), [
    (95.0, -122.2, "Latitude is between -90 and 90"),
    (37.7, -190.0, "Longitude is between -180 and 180"),
    (0.0, 0.0, "0, 0 is in the ocean"),
    (37.7491, 122.1690, "km from Eastside warehouse"),  # the minus sign lost: China, not Oakland
    (-122.1690, 37.7491, "Latitude is between -90 and 90"),  # swapped
])
def test_a_point_far_from_the_program_is_refused(database, settings, program, lat, lon, words) -> None:
    """Typos in a hand-set point are caught: off the globe, 0,0, or far from every depot."""
    item_id, _ = failed_address(database, settings, program)
    with database.writer() as db:
        with pytest.raises(reviews.ReviewError, match=words):
            reviews.set_point(db, db.get(ReviewItem, item_id), lat, lon, actor_id=coordinator_id(db, program))
        assert db.get(ReviewItem, item_id).resolved_at is None


def test_fixing_the_address_sends_it_back_to_the_geocoder(database, settings, program) -> None:
    """A corrected address is geocoded again; if it fails too, a new item opens (nothing dropped)."""
    item_id, referral_id = failed_address(database, settings, program)
    better = AddressIn(line1="1243 98th Ave", city="Oakland", state="CA", postal_code="94603", unit="3B")
    with database.writer() as db:
        reviews.fix_address(db, db.get(ReviewItem, item_id), better, actor_id=coordinator_id(db, program))
        db.commit()
    with database.reader() as db:
        item = db.get(ReviewItem, item_id)
        patient = item.patient
        assert item.resolved_at is not None and "1243 98th Ave" in item.resolution
        assert patient.geocode_status == GeocodeStatus.pending and patient.lat is None
        assert patient.address_corrected_at is not None and patient.address_line1 == "1243 98th Ave"
        assert any("1243 98th Ave" in message for _, message in timeline(db, referral_id))
    geocode_with(database, settings, GeocodeAnswer.not_found())
    with database.reader() as db:
        open_now = db.scalars(select(ReviewItem).where(ReviewItem.patient_id == patient.id,
                                                       ReviewItem.resolved_at.is_(None))).all()
        assert len(open_now) == 1 and open_now[0].id != item_id


def test_the_same_address_again_is_refused_with_what_to_do(database, settings, program) -> None:
    """The geocoder's 'not found' is cached: saving the same street again would only bounce back."""
    item_id, _ = failed_address(database, settings, program)
    same = AddressIn(line1="1234 98th Ave", unit="4C", city="Oakland", state="CA", postal_code="94603")
    with database.writer() as db, pytest.raises(reviews.ReviewError, match="set the point by hand"):
        reviews.fix_address(db, db.get(ReviewItem, item_id), same, actor_id=coordinator_id(db, program))


def test_an_ambiguous_address_is_settled_by_picking_a_candidate(database, settings, program) -> None:
    """Two houses far apart: the coordinator picks the second one; that is the patient's point."""
    with database.writer() as db:
        result = refer(db, program, "A1", today=TODAY, point=False)
        db.commit()
    places = [Candidate(37.7491, -122.1690, "1234 98th Ave, Oakland", True),
              Candidate(37.7600, -122.1900, "1234 98th Ave, San Leandro", True)]
    geocode_with(database, settings, GeocodeAnswer.ambiguous(places, "two places"))
    with database.writer() as db:
        item = db.scalar(select(ReviewItem).where(ReviewItem.patient_id == result.referral.patient_id))
        assert item.kind == ReviewKind.geocode_ambiguous
        with pytest.raises(reviews.ReviewError, match="Choose one of the places"):
            reviews.pick_candidate(db, item, 7, actor_id=coordinator_id(db, program))
        reviews.pick_candidate(db, item, 1, actor_id=coordinator_id(db, program))
        db.commit()
        assert (item.patient.lat, item.patient.lon) == (37.76, -122.19)
        assert "San Leandro" in item.resolution


# --- a clinic proposes a new address for a corrected one -----------------------------------------


def corrected_then_resent(database, program, **address) -> tuple[int, int]:
    """A coordinator corrected the address; the clinic's next referral proposes another."""
    with database.writer() as db:
        result = refer(db, program, "C1", today=TODAY)
        patient = result.referral.patient
        reviews.correct_address(db, patient, AddressIn(line1="1236 98th Ave", city="Oakland", state="CA",
                                                       postal_code="94603", lat=37.7492, lon=-122.1691),
                                actor_id=coordinator_id(db, program))
        db.commit()
    with database.writer() as db:
        refer(db, program, "C1", today=TODAY, address={"line1": "55 Elm St", "city": "Oakland", "state": "CA",
                                                       "postal_code": "94601", **address})
        db.commit()
        item = db.scalar(select(ReviewItem).where(ReviewItem.kind == ReviewKind.address_change))
        assert item is not None and patient.address_line1 == "1236 98th Ave"  # not overwritten
        return item.id, result.referral.id


def test_accepting_the_clinics_address_applies_it_and_relocates(database, program) -> None:
    """Accept: the proposed address is on file, located again; later clinic changes apply freely."""
    item_id, referral_id = corrected_then_resent(database, program)
    with database.writer() as db:
        item = db.get(ReviewItem, item_id)
        reviews.accept_address_change(db, item, actor_id=coordinator_id(db, program))
        db.commit()
        patient = item.patient
        assert patient.address_line1 == "55 Elm St" and patient.postal_code == "94601"
        assert patient.geocode_status == GeocodeStatus.pending and patient.address_corrected_at is None
        assert any("55 Elm St" in message for _, message in timeline(db, referral_id))


def test_accepting_keeps_the_clinics_point_when_it_sent_one(database, program) -> None:
    item_id, _ = corrected_then_resent(database, program, lat=37.78, lon=-122.22)
    with database.writer() as db:
        item = db.get(ReviewItem, item_id)
        reviews.accept_address_change(db, item, actor_id=coordinator_id(db, program))
        assert (item.patient.lat, item.patient.lon, item.patient.geocode_status) == (37.78, -122.22, "given")


def test_keeping_the_corrected_address_changes_nothing_but_the_item(database, program) -> None:
    item_id, referral_id = corrected_then_resent(database, program)
    with database.writer() as db:
        item = db.get(ReviewItem, item_id)
        reviews.keep_corrected_address(db, item, actor_id=coordinator_id(db, program))
        db.commit()
        assert item.patient.address_line1 == "1236 98th Ave" and item.patient.lat == 37.7492
        assert "not the clinic's 55 Elm St" in item.resolution
        assert timeline(db, referral_id)[-1][0] == "review_resolved"


# --- possible duplicates ------------------------------------------------------------------------------


def twins(database, program) -> tuple[int, int, int]:
    """Same name and birth date under two MRNs, both referred: (item id, older, newer referral id)."""
    with database.writer() as db:
        first = refer(db, program, "D1", today=TODAY, given="Rosa")
        second = refer(db, program, "D2", today=TODAY, given="Rosa")
        db.commit()
        item = db.scalar(select(ReviewItem).where(ReviewItem.kind == ReviewKind.possible_duplicate))
        assert item is not None and item.patient_id == second.referral.patient_id
        return item.id, first.referral.id, second.referral.id


def test_same_person_ends_the_newer_referrals_order_and_frees_its_boxes(database, program) -> None:
    """The newer referral's order ends with the reason; the freed box goes to the next in line."""
    with database.writer() as db:
        set_capacity(db, program, 2)
        db.commit()
    item_id, older, newer = twins(database, program)
    with database.writer() as db:
        waiting = refer(db, program, "W1", today=TODAY)
        assert waiting.order.status == OrderStatus.waitlisted
        item = db.get(ReviewItem, item_id)
        with pytest.raises(reviews.ReviewError, match="how you know"):
            reviews.same_person(db, item, " ", actor_id=coordinator_id(db, program), today=TODAY)
        moved = reviews.same_person(db, item, "same phone, clinic confirmed",
                                    actor_id=coordinator_id(db, program), today=TODAY)
        db.commit()
        assert [o.id for o in moved] == [waiting.order.id]
        assert db.get(Referral, newer).status == ReferralStatus.closed
        assert db.get(Referral, older).status == ReferralStatus.active
        ended = db.scalar(select(Order).where(Order.referral_id == newer))
        assert ended.status == OrderStatus.ended and "same phone, clinic confirmed" in ended.end_reason
        assert "ended" in [kind for kind, _ in timeline(db, newer)]
        assert "duplicate_checked" in [kind for kind, _ in timeline(db, older)]


def test_different_people_keep_both_referrals(database, program) -> None:
    item_id, older, newer = twins(database, program)
    with database.writer() as db:
        item = db.get(ReviewItem, item_id)
        reviews.different_people(db, item, actor_id=coordinator_id(db, program))
        db.commit()
        assert "not the same person as MRN D1" in item.resolution
        assert {db.get(Referral, r).status for r in (older, newer)} == {ReferralStatus.active}


def test_an_item_is_resolved_once(database, settings, program) -> None:
    """A second resolution (another coordinator, a double click) is refused, saying what was done;
    so is a resolution meant for another kind of item."""
    item_id, _ = failed_address(database, settings, program)
    with database.writer() as db:
        item = db.get(ReviewItem, item_id)
        with pytest.raises(reviews.ReviewError, match="does not resolve a geocode failed item"):
            reviews.different_people(db, item, actor_id=coordinator_id(db, program))
        reviews.set_point(db, item, *ROSA_POINT, actor_id=coordinator_id(db, program))
        with pytest.raises(reviews.ReviewError, match="already resolved"):
            reviews.set_point(db, item, 37.75, -122.17, actor_id=coordinator_id(db, program))


# --- the page ------------------------------------------------------------------------------------------


def test_the_queue_page_fixes_a_failed_address_by_hand(database, settings, program, client) -> None:
    """Through the page with htmx: the row swaps to 'resolved', the patient has a point, the
    referral page's timeline says so."""
    item_id, referral_id = failed_address(database, settings, program, today=program_today())
    token = sign_in(client, program.coordinator)
    queue = client.get("/coordinator/reviews")
    assert queue.status_code == 200 and f'id="review-{item_id}"' in queue.text
    assert "Address not found" in queue.text

    bad = client.post(f"/coordinator/reviews/{item_id}/point", data={"lat": "37.7491", "lon": ""},
                      headers=htmx(token))
    assert bad.status_code == 422 and "<html" not in bad.text
    assert 'aria-invalid="true"' in bad.text and "Longitude is required." in bad.text

    done = client.post(f"/coordinator/reviews/{item_id}/point",
                       data={"lat": "37.7491", "lon": "-122.1690"}, headers=htmx(token))
    assert done.status_code == 200, done.text
    assert done.text.lstrip().startswith(f'<section id="review-{item_id}"')
    assert "Point saved" in done.text and "Casey Coordinator" in done.text
    with database.reader() as db:
        patient = db.get(Patient, db.get(ReviewItem, item_id).patient_id)
        assert patient.geocode_status == GeocodeStatus.manual and patient.lat == 37.7491
    page = client.get(f"/coordinator/referrals/{referral_id}")
    assert "Review: Point set by hand at 37.74910, -122.16900" in page.text
    still_open = client.get("/coordinator/reviews").text.split("Recently resolved")[0]
    assert f'id="review-{item_id}"' not in still_open


def test_the_queue_page_works_without_javascript(database, settings, program, client) -> None:
    """A plain form post (CSRF in a hidden field) redirects back to the queue; errors re-render it."""
    item_id, _ = failed_address(database, settings, program, today=program_today())
    token = sign_in(client, program.coordinator)
    refused = client.post(f"/coordinator/reviews/{item_id}/address",
                          data={"csrf_token": token, "line1": "1234 98th Ave", "city": "Oakland",
                                "state": "CA", "postal_code": "94603"})
    assert refused.status_code == 422 and "<html" in refused.text and "set the point by hand" in refused.text
    fixed = client.post(f"/coordinator/reviews/{item_id}/address", follow_redirects=False,
                        data={"csrf_token": token, "line1": "1243 98th Ave", "city": "Oakland",
                              "state": "CA", "postal_code": "94603"})
    assert fixed.status_code == 303 and fixed.headers["location"] == "/coordinator/reviews"


def test_another_food_banks_review_item_is_not_found(database, settings, program, client) -> None:
    """A coordinator cannot see or settle another program's item: 404, and it stays open."""
    with database.writer() as db:
        west = other_program(db)
        result = refer(db, program, "X1", today=program_today(), point=False, clinic_id=west.clinic_id)
        db.commit()
    geocode_with(database, settings, GeocodeAnswer.not_found())
    with database.reader() as db:
        item = db.scalar(select(ReviewItem).where(ReviewItem.patient_id == result.referral.patient_id))
        assert item.food_bank_id == west.food_bank_id
    token = sign_in(client, program.coordinator)
    assert f'id="review-{item.id}"' not in client.get("/coordinator/reviews").text
    for action, data in [("point", {"lat": "37.7491", "lon": "-122.169"}), ("different", {})]:
        response = client.post(f"/coordinator/reviews/{item.id}/{action}", data=data, headers=htmx(token))
        assert response.status_code == 404
    assert client.get(f"/coordinator/referrals/{result.referral.id}").status_code == 404
    with database.reader() as db:
        assert db.get(ReviewItem, item.id).resolved_at is None


def test_the_duplicate_row_needs_a_reason_for_same_person(database, program, client) -> None:
    item_id, _older, newer = twins(database, program)
    token = sign_in(client, program.coordinator)
    page = client.get("/coordinator/reviews")
    assert f"Referral #{newer} (the newer one) ends" in page.text
    missing = client.post(f"/coordinator/reviews/{item_id}/same", data={"reason": ""}, headers=htmx(token))
    assert missing.status_code == 422 and "Reason is required." in missing.text
    done = client.post(f"/coordinator/reviews/{item_id}/same", data={"reason": "same phone"},
                       headers=htmx(token))
    assert done.status_code == 200 and "Marked as the same person" in done.text


def test_posts_without_the_csrf_token_are_refused(database, settings, program, client) -> None:
    item_id, _ = failed_address(database, settings, program)
    sign_in(client, program.coordinator)
    response = client.post(f"/coordinator/reviews/{item_id}/point", data={"lat": "37.7", "lon": "-122.2"})
    assert response.status_code == 403


def test_clinic_staff_cannot_open_the_queue(program, client) -> None:
    sign_in(client, program.clinic1)
    assert client.get("/coordinator/reviews").status_code == 403

