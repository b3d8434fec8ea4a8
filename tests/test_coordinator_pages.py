"""The coordinator's referral-side pages through the real app: referrals with their timeline, the
outcome override, the order controls, the waitlist and the program's capacity. htmx posts get the
changed part back (422 with the message inline when refused); other food banks' ids are 404."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from delivery.models import GeocodeStatus, Order, OrderStatus, Organization, Referral, ReviewItem
from tests.builders import sign_in
from tests.coordinator_builders import htmx, other_program, program_today, refer, set_capacity, timeline


def referred(database, program, *mrns: str, capacity: int | None = None, **kwargs):  # type: ignore[no-untyped-def]
    """Refer patients (today, where the program is) after setting capacity; returns the results."""
    with database.writer() as db:
        if capacity is not None:
            set_capacity(db, program, capacity)
        results = [refer(db, program, mrn, today=program_today(), given=f"Pat{mrn}", **kwargs)
                   for mrn in mrns]
        db.commit()
    return results


def order_status(database, order_id: int) -> str:
    with database.reader() as db:
        return db.get(Order, order_id).status


@pytest.mark.parametrize("path", ["/coordinator/referrals", "/coordinator/reviews", "/coordinator/waitlist",
                                  "/coordinator/program", "/coordinator"])
def test_every_page_opens_with_links_to_the_others(database, program, client, path: str) -> None:
    referred(database, program, "S1")
    sign_in(client, program.coordinator)
    response = client.get(path)
    assert response.status_code == 200, response.text
    for link in ("referrals", "reviews", "waitlist", "program"):
        assert f'href="/coordinator/{link}"' in response.text


def test_an_admin_of_the_food_bank_may_use_the_pages(database, program, client) -> None:
    (first,) = referred(database, program, "S1")
    sign_in(client, program.admin)
    assert client.get(f"/coordinator/referrals/{first.referral.id}").status_code == 200


# --- referrals --------------------------------------------------------------------------------


def test_the_referral_list_filters_by_status_and_clinic(database, program, client) -> None:
    first, second = referred(database, program, "F1", "F2", capacity=1)
    with database.writer() as db:
        west = other_program(db)
        today = program_today()
        foreign = refer(db, program, "F3", today=today, given="Elsewhere", clinic_id=west.clinic_id)
        clinic2 = refer(db, program, "F4", today=today, given="Second", clinic_id=program.clinic2_id)
        db.commit()
    sign_in(client, program.coordinator)
    everything = client.get("/coordinator/referrals").text
    assert "PatF1" in everything and "PatF2" in everything and "Second" in everything
    assert "Elsewhere" not in everything and f"/coordinator/referrals/{foreign.referral.id}" not in everything
    waiting = client.get("/coordinator/referrals", params={"status": "waitlisted"}).text
    assert "PatF2" in waiting and "PatF1" not in waiting
    by_clinic = client.get("/coordinator/referrals", params={"clinic": program.clinic2_id}).text
    assert f"/coordinator/referrals/{clinic2.referral.id}" in by_clinic and "PatF1" not in by_clinic
    assert first.referral.id != second.referral.id


@pytest.mark.req("R4.6")
def test_a_note_with_a_script_renders_as_text(database, program, client) -> None:
    """The clinic's note and access notes come back escaped on the coordinator's referral page."""
    (result,) = referred(database, program, "X1", note="<script>alert('note')</script>",
                         access_notes="<img src=x onerror=alert(1)> gate <b>4</b>")
    sign_in(client, program.coordinator)
    page = client.get(f"/coordinator/referrals/{result.referral.id}").text
    assert "<script>alert(" not in page and "<img src=x" not in page and "<b>4</b>" not in page
    assert "&lt;script&gt;alert(&#39;note&#39;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt; gate &lt;b&gt;4&lt;/b&gt;" in page


def test_an_override_needs_a_reason_and_is_on_the_timeline(database, program, client) -> None:
    """Without a reason: 422 with the message by the field, nothing changes. With one: the new
    outcome, the reason on the timeline with who did it."""
    (result,) = referred(database, program, "O1")
    token = sign_in(client, program.coordinator)
    url = f"/coordinator/referrals/{result.referral.id}/outcome"
    refused = client.post(url, data={"outcome": "not_eligible", "reason": "  "}, headers=htmx(token))
    assert refused.status_code == 422 and "<html" not in refused.text
    assert 'id="override-reason-error"' in refused.text and "Reason is required." in refused.text
    assert "<details open>" in refused.text  # the form with the error is open
    too_short = client.post(url, data={"outcome": "not_eligible", "reason": "no"}, headers=htmx(token))
    assert too_short.status_code == 422 and "Write the reason for the override." in too_short.text
    assert order_status(database, result.order.id) == OrderStatus.active

    done = client.post(url, data={"outcome": "not_eligible", "reason": "Moved in with family who cook"},
                       headers=htmx(token))
    assert done.status_code == 200 and done.text.lstrip().startswith('<div id="referral-body">')
    assert "Outcome set to not eligible." in done.text
    assert ("Outcome changed from home_delivery to not_eligible. Reason: Moved in with family who cook"
            in done.text)
    assert "Casey Coordinator" in done.text  # who, on the timeline
    assert order_status(database, result.order.id) == OrderStatus.ended


def test_an_override_without_javascript_redirects_back(database, program, client) -> None:
    (result,) = referred(database, program, "O2")
    token = sign_in(client, program.coordinator)
    response = client.post(f"/coordinator/referrals/{result.referral.id}/outcome", follow_redirects=False,
                           data={"csrf_token": token, "outcome": "pickup", "reason": "prefers to pick up"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/coordinator/referrals/{result.referral.id}"
    with database.reader() as db:
        assert db.get(Referral, result.referral.id).outcome == "pickup"


# --- the order controls -------------------------------------------------------------------------


def test_pausing_an_order_frees_its_boxes_for_a_one_off(database, program, client) -> None:
    weekly, once = referred(database, program, "P1", capacity=1)[0], None
    (once,) = referred(database, program, "P2", cadence="once")
    assert once.order.status == OrderStatus.waitlisted
    token = sign_in(client, program.coordinator)
    until = program_today() + dt.timedelta(days=13)
    response = client.post(f"/coordinator/orders/{weekly.order.id}/pause",
                           data={"until": until.isoformat(), "reason": "in hospital"}, headers=htmx(token))
    assert response.status_code == 200, response.text
    assert f"Deliveries paused through {until:%a %d %b %Y}." in response.text
    assert "1 waiting patient moved onto the program: PatP2 (Fruitvale Clinic)." in response.text
    assert order_status(database, once.order.id) == OrderStatus.active
    assert "Resume deliveries now" in response.text


def test_a_pause_in_the_past_is_refused_inline(database, program, client) -> None:
    (result,) = referred(database, program, "P3")
    token = sign_in(client, program.coordinator)
    response = client.post(f"/coordinator/orders/{result.order.id}/pause", headers=htmx(token),
                           data={"until": (program_today() - dt.timedelta(days=1)).isoformat(),
                                 "reason": "trip"})
    assert response.status_code == 422 and "The pause must end today or later." in response.text


def test_ending_an_order_frees_its_boxes_for_the_next_in_line(database, program, client) -> None:
    first, second, third = referred(database, program, "E1", "E2", "E3", capacity=1)
    token = sign_in(client, program.coordinator)
    missing = client.post(f"/coordinator/orders/{first.order.id}/end", data={"reason": ""},
                          headers=htmx(token))
    assert missing.status_code == 422 and order_status(database, first.order.id) == OrderStatus.active
    response = client.post(f"/coordinator/orders/{first.order.id}/end", data={"reason": "moved away"},
                           headers=htmx(token))
    assert response.status_code == 200 and "Deliveries ended." in response.text
    assert order_status(database, second.order.id) == OrderStatus.active
    assert order_status(database, third.order.id) == OrderStatus.waitlisted
    with database.reader() as db:
        assert ("ended", "Deliveries ended. Reason: moved away") in timeline(db, first.referral.id)
        assert "moved_off_waitlist" in [kind for kind, _ in timeline(db, second.referral.id)]


def test_more_boxes_than_capacity_is_refused_with_a_clear_message(database, program, client) -> None:
    first, _second = referred(database, program, "B1", "B2", capacity=3)
    token = sign_in(client, program.coordinator)
    response = client.post(f"/coordinator/orders/{first.order.id}/change", headers=htmx(token),
                           data={"weekday": "1", "boxes": "3", "box_type": "standard"})
    assert response.status_code == 422
    assert "No room:" in response.text and "has only 2 boxes free for this order" in response.text
    assert "The order stays at 1 box(es) on Tuesday" in response.text
    assert 'value="3"' in response.text  # what was typed stays in the form
    with database.reader() as db:
        assert db.get(Order, first.order.id).boxes == 1
    fine = client.post(f"/coordinator/orders/{first.order.id}/change", headers=htmx(token),
                       data={"weekday": "1", "boxes": "2", "box_type": "standard",
                             "window_start": "10:00", "window_end": "12:00"})
    assert fine.status_code == 200 and "boxes 1 → 2; time window any time → 10:00–12:00" in fine.text
    half = client.post(f"/coordinator/orders/{first.order.id}/change", headers=htmx(token),
                       data={"weekday": "1", "boxes": "2", "box_type": "standard", "window_start": "10:00"})
    assert half.status_code == 422 and "Give both times" in half.text


def test_a_new_address_is_located_again_and_on_the_timeline(database, program, client) -> None:
    """With geocoding off (the test app) the new address waits in the review queue, and says so."""
    (result,) = referred(database, program, "A1")
    token = sign_in(client, program.coordinator)
    response = client.post(f"/coordinator/orders/{result.order.id}/address", headers=htmx(token),
                           data={"line1": "8000 International Blvd", "city": "Oakland", "state": "CA",
                                 "postal_code": "94621"})
    assert response.status_code == 200, response.text
    assert "Geocoding is off on this server, so it waits in the review queue" in response.text
    with database.reader() as db:
        patient = db.get(Referral, result.referral.id).patient
        assert patient.geocode_status == GeocodeStatus.needs_review
        assert patient.address_corrected_at is not None
    bad = client.post(f"/coordinator/orders/{result.order.id}/address", headers=htmx(token),
                      data={"line1": "8000 International Blvd", "city": "Oakland", "state": "CA",
                            "postal_code": "9462"})
    assert bad.status_code == 422 and 'id="address-postal_code-error"' in bad.text


def test_another_food_banks_orders_and_program_are_not_found(database, program, client) -> None:
    with database.writer() as db:
        west = other_program(db)
        foreign = refer(db, program, "Z1", today=program_today(), clinic_id=west.clinic_id)
        db.commit()
    token = sign_in(client, program.coordinator)
    for action, data in [("pause", {"until": "2030-01-01", "reason": "x"}), ("end", {"reason": "x"}),
                         ("change", {"weekday": "1", "boxes": "2", "box_type": "standard"}),
                         ("priority", {"priority": "2"}), ("resume", {})]:
        response = client.post(f"/coordinator/orders/{foreign.order.id}/{action}", data=data,
                               headers=htmx(token))
        assert response.status_code == 404, action
    response = client.post(f"/coordinator/program/{west.food_bank_id}", headers=htmx(token),
                           data={"boxes_per_delivery_day": "1", "delivery_weekday": "1"})
    assert response.status_code == 404
    assert order_status(database, foreign.order.id) == OrderStatus.active


# --- waitlist and program ------------------------------------------------------------------------


def test_the_waitlist_shows_serving_order_and_takes_a_new_priority(database, program, client) -> None:
    _first, second, third = referred(database, program, "L1", "L2", "L3", capacity=1)
    token = sign_in(client, program.coordinator)
    page = client.get("/coordinator/waitlist").text
    assert page.index("PatL2") < page.index("PatL3") and "Fruitvale Clinic" in page
    assert "Diaz" not in page  # first names only
    response = client.post(f"/coordinator/orders/{third.order.id}/priority", data={"priority": "2"},
                           headers=htmx(token))
    assert response.status_code == 200 and response.text.lstrip().startswith("<section id=\"waitlist-")
    assert "PatL3: priority urgent." in response.text
    assert response.text.index("PatL3") < response.text.index("PatL2")
    with database.reader() as db:
        assert ("priority_changed", "Priority normal → urgent.") in timeline(db, third.referral.id)
    same = client.post(f"/coordinator/orders/{third.order.id}/priority", data={"priority": "2"},
                       headers=htmx(token))
    assert same.status_code == 422 and "urgent already" in same.text
    assert second.order.status == OrderStatus.waitlisted


def next_delivery_day(database, program) -> dt.date:  # type: ignore[no-untyped-def]
    with database.reader() as db:
        weekday = db.get(Organization, program.food_bank_id).delivery_weekday
    return program_today() + dt.timedelta(days=(weekday - program_today().weekday()) % 7)


def test_the_waitlist_names_the_day_without_room_though_the_next_day_has_some(database, program,
                                                                               client) -> None:
    """Issue 8.3: a standing order needs room on every delivery day ahead, not only the next one.
    A fortnightly order fills every other week, so the next day shows 1 free while a weekly
    one-box order waits: its row names the full day."""
    day = next_delivery_day(database, program)
    with database.writer() as db:
        set_capacity(db, program, 2)
        refer(db, program, "W1", today=program_today(), given="PatW1")
        refer(db, program, "W2", today=program_today(), given="PatW2", cadence="biweekly",
              start_date=day + dt.timedelta(weeks=1))
        waiting = refer(db, program, "W3", today=program_today(), given="PatW3")
        db.commit()
    assert waiting.order.status == OrderStatus.waitlisted
    sign_in(client, program.coordinator)
    page = client.get("/coordinator/waitlist").text
    assert f"1 free on {day:%A %d %B}" in page
    full = day + dt.timedelta(weeks=1)
    assert f"No room on {full:%a} {full.day} {full:%b}: 2 of 2 boxes promised." in page


def test_a_small_order_waiting_behind_a_big_one_is_told_so(database, program, client) -> None:
    """One box free: the two-box order first in line does not fit, the one-box order behind it
    waits its turn (nobody jumps the queue), and each row says which."""
    day = next_delivery_day(database, program)
    with database.writer() as db:
        set_capacity(db, program, 2)
        refer(db, program, "B1", today=program_today(), given="PatB1")
        refer(db, program, "B2", today=program_today(), given="PatB2", boxes=2)
        refer(db, program, "B3", today=program_today(), given="PatB3")
        db.commit()
    sign_in(client, program.coordinator)
    page = client.get("/coordinator/waitlist").text
    assert f"No room on {day:%a} {day.day} {day:%b}: 1 of 2 boxes promised, 2 needed." in page
    assert "Room now, but number 1 is served first." in page
    assert "Move them onto the program" not in page


def test_room_that_appears_by_itself_is_shown_and_served_by_a_post(database, program, client) -> None:
    """A one-off delivery that has passed frees its day with no write that would serve the waitlist:
    the page says the first in line has room and offers to move them; only the POST moves them."""
    with database.writer() as db:
        set_capacity(db, program, 1)
        once = refer(db, program, "O1", today=program_today(), given="PatO1", cadence="once")
        waiting = refer(db, program, "O2", today=program_today(), given="PatO2")
        db.commit()
    assert waiting.order.status == OrderStatus.waitlisted
    with database.writer() as db:  # a week on: the one-off delivery is in the past
        db.get(Order, once.order.id).start_date -= dt.timedelta(weeks=1)
        db.commit()
    token = sign_in(client, program.coordinator)
    page = client.get("/coordinator/waitlist").text
    assert "Room now: moves up when the waitlist is served." in page
    assert "Move them onto the program" in page
    assert order_status(database, waiting.order.id) == OrderStatus.waitlisted  # GET never writes

    url = f"/coordinator/waitlist/{program.food_bank_id}/serve"
    response = client.post(url, headers=htmx(token))
    assert response.status_code == 200, response.text
    assert "1 waiting patient moved onto the program: PatO2 (Fruitvale Clinic)." in response.text
    assert order_status(database, waiting.order.id) == OrderStatus.active
    with database.reader() as db:
        assert "moved_off_waitlist" in [kind for kind, _ in timeline(db, waiting.referral.id)]
    again = client.post(url, headers=htmx(token))
    assert again.status_code == 200 and "Nobody is waiting." in again.text


def test_raising_capacity_moves_the_first_waiting_patient_onto_the_program(database, program, client) -> None:
    _first, second, third = referred(database, program, "K1", "K2", "K3", capacity=1)
    token = sign_in(client, program.coordinator)
    url = f"/coordinator/program/{program.food_bank_id}"

    def save(boxes: str):  # type: ignore[no-untyped-def]
        return client.post(url, data={"boxes_per_delivery_day": boxes, "delivery_weekday": "1"},
                           headers=htmx(token))

    refused = save("0")
    assert refused.status_code == 422 and "Boxes per delivery day must be between 1 and" in refused.text
    response = save("2")
    assert response.status_code == 200, response.text
    assert ("Saved: boxes per delivery day 1 → 2. 1 waiting patient moved onto the program: PatK2"
            in response.text)
    assert order_status(database, second.order.id) == OrderStatus.active
    assert order_status(database, third.order.id) == OrderStatus.waitlisted
    with database.reader() as db:
        assert db.get(Organization, program.food_bank_id).boxes_per_delivery_day == 2
        assert "moved_off_waitlist" in [kind for kind, _ in timeline(db, second.referral.id)]
    lowered = save("1")
    assert lowered.status_code == 200 and "Nobody is removed" in lowered.text
    assert order_status(database, second.order.id) == OrderStatus.active


def test_the_review_queue_link_from_a_referral_with_an_open_item(database, settings, program, client) -> None:
    """A referral whose address is in the queue says so and links to the item."""
    (result,) = referred(database, program, "Q1", point=False)
    with database.writer() as db:
        db.get(Referral, result.referral.id).patient.geocode_status = GeocodeStatus.needs_review
        db.add(ReviewItem(kind="geocode_failed", patient_id=result.referral.patient_id,
                          food_bank_id=program.food_bank_id, message="Not found."))
        db.commit()
        item_id = db.scalar(select(ReviewItem.id))
    sign_in(client, program.coordinator)
    page = client.get(f"/coordinator/referrals/{result.referral.id}").text
    assert f'href="/coordinator/reviews#review-{item_id}"' in page
    assert "(not planned until the address has a point on the map)" in page
