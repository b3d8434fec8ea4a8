"""The funder report over a known month, built through the real services: every figure exact,
overall and per clinic, and the same numbers whatever asks for them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from delivery.models import Organization
from delivery.platform.db import Database
from delivery.reports import figures, funder
from tests.builders import Program, make_program
from tests.report_builders import Story, at

MARCH = (dt.date(2030, 3, 1), dt.date(2030, 3, 31))
TUESDAYS = [dt.date(2030, 2, 26), dt.date(2030, 3, 5), dt.date(2030, 3, 12), dt.date(2030, 3, 19),
            dt.date(2030, 4, 2)]


@dataclass(frozen=True)
class KnownMonth:
    program: Program
    referrals: dict[str, int]


def act_out_march(database: Database) -> KnownMonth:
    """March 2030 of a program with room for 5 boxes a Tuesday (the comments are the figures' sources).

    Fruitvale refers Zoe (February: served before March), Ana, Ben (2 boxes) and Eve (not eligible);
    Elmhurst refers Cal, Dee (waitlisted 6 March, moved on 14 March when Ana's order ends: 8 days)
    and Fay at 23:30 on 31 March (waitlisted; already 1 April in UTC, still March for the program).
    """
    with database.writer() as db:
        program = make_program(db, boxes_per_delivery_day=5)
        db.commit()
    story = Story(database, program)
    c1, c2 = program.clinic1_id, program.clinic2_id
    feb26, mar5, mar12, mar19, apr2 = TUESDAYS
    r = {"zoe": story.refer(at(dt.date(2030, 2, 20)), c1, "Z")}
    story.deliver(feb26, {r["zoe"]: "delivered"})
    r |= {"ana": story.refer(at(dt.date(2030, 3, 4)), c1, "A"),
          "ben": story.refer(at(dt.date(2030, 3, 4)), c1, "B", boxes=2),
          "cal": story.refer(at(dt.date(2030, 3, 4)), c2, "C")}
    story.deliver(mar5, {r["zoe"]: "delivered", r["ana"]: "delivered", r["ben"]: "no_answer",
                         r["cal"]: "left_at_door"})
    r["dee"] = story.refer(at(dt.date(2030, 3, 6)), c2, "D")
    story.receipt(at(dt.date(2030, 3, 6), 15), r["ana"])
    r["eve"] = story.refer(at(dt.date(2030, 3, 7)), c1, "E", eligible=False)
    story.deliver(mar12, {r["zoe"]: "delivered", r["ana"]: "delivered", r["ben"]: "delivered",
                          r["cal"]: "refused"})
    story.receipt(at(dt.date(2030, 3, 13)), r["zoe"], received=False)
    story.end(at(dt.date(2030, 3, 14)), r["ana"], "Moved out of the area")
    story.deliver(mar19, {r["zoe"]: "delivered", r["ben"]: "delivered", r["cal"]: "delivered",
                          r["dee"]: "delivered"})
    story.receipt(at(dt.date(2030, 3, 20)), r["cal"])
    r["fay"] = story.refer(at(dt.date(2030, 3, 31), 23, 30), c2, "F")
    story.deliver(apr2, {r["zoe"]: "delivered"})
    return KnownMonth(program, r)


@pytest.fixture
def march(database: Database) -> KnownMonth:
    return act_out_march(database)


def report_for(database: Database, month: KnownMonth, clinic: str | None = None) -> funder.Report:
    with database.reader() as db:
        food_bank = db.get(Organization, month.program.food_bank_id)
        assert food_bank is not None
        chosen = funder.find_clinic(funder.clinics_of(db, food_bank), clinic) if clinic else None
        return funder.build(db, food_bank, *MARCH, clinic=chosen)


def test_every_figure_of_a_known_month_overall(database: Database, march: KnownMonth) -> None:
    """Twelve attempts on 5, 12 and 19 March (two failed), twelve boxes, five patients; first boxes
    after 1, 8, 1 and 13 days; three 10-mile, 2-hour routes; February and April left out."""
    report = report_for(database, march)
    assert (report.program, report.clinic, report.from_date, report.to_date) == (
        "Eastside Food Bank", None, *MARCH)
    assert report.patients_served == 5
    assert report.boxes_delivered == 12
    assert (report.deliveries_attempted, report.deliveries_succeeded) == (12, 10)
    assert report.success_rate == 0.8333
    assert report.failed_attempts_by_reason == {"no_answer": 1, "refused": 1}
    assert report.days_to_first_box == funder.DaysToFirstBox(median=4.5, p90=13.0, patients=4)
    assert (report.receipts_confirmed, report.receipts_denied) == (2, 1)
    assert report.referrals_received == 6
    assert report.referrals_by_outcome == {"home_delivery": 3, "waitlisted": 2, "not_eligible": 1}
    assert report.waitlist == funder.Waitlist(length_at_end=1, joined=2, moved_off=1, median_wait_days=8.0)
    assert (report.volunteer_hours, report.miles_driven) == (6.0, 30.0)
    assert (report.box_cost, report.mileage_rate) == (25.0, 0.7)
    assert report.cost_per_box == 26.75  # (12 × $25 + 30 mi × $0.70) / 12
    assert [(w.start, w.deliveries_succeeded, w.deliveries_failed, w.boxes_delivered)
            for w in report.weeks] == [(dt.date(2030, 3, 4), 3, 1, 3), (dt.date(2030, 3, 11), 3, 1, 4),
                                       (dt.date(2030, 3, 18), 4, 0, 5)]


def test_every_figure_per_clinic(database: Database, march: KnownMonth) -> None:
    """Each clinic's own patients, with the routes' miles and hours shared by its stops on each
    route (3 of 4, 3 of 4, then 2 of 4 for Fruitvale): the clinics add up to the program."""
    report = report_for(database, march)
    assert list(report.by_clinic) == ["Elmhurst Clinic", "Fruitvale Clinic"]
    fruitvale, elmhurst = report.by_clinic["Fruitvale Clinic"], report.by_clinic["Elmhurst Clinic"]
    assert fruitvale.clinic_id == march.program.clinic1_id
    assert (fruitvale.patients_served, fruitvale.boxes_delivered, fruitvale.deliveries_attempted,
            fruitvale.deliveries_succeeded, fruitvale.success_rate) == (3, 9, 8, 7, 0.875)
    assert fruitvale.failed_attempts_by_reason == {"no_answer": 1}
    assert fruitvale.days_to_first_box == funder.DaysToFirstBox(median=4.5, p90=8.0, patients=2)
    assert (fruitvale.receipts_confirmed, fruitvale.receipts_denied) == (1, 1)
    assert fruitvale.referrals_by_outcome == {"home_delivery": 2, "not_eligible": 1}
    assert fruitvale.waitlist == funder.Waitlist(length_at_end=0, joined=0, moved_off=0,
                                                 median_wait_days=None)
    assert (fruitvale.volunteer_hours, fruitvale.miles_driven, fruitvale.cost_per_box) == (4.0, 20.0, 26.56)

    assert (elmhurst.patients_served, elmhurst.boxes_delivered, elmhurst.deliveries_attempted,
            elmhurst.deliveries_succeeded, elmhurst.success_rate) == (2, 3, 4, 3, 0.75)
    assert elmhurst.failed_attempts_by_reason == {"refused": 1}
    assert elmhurst.days_to_first_box == funder.DaysToFirstBox(median=7.0, p90=13.0, patients=2)
    assert (elmhurst.receipts_confirmed, elmhurst.receipts_denied) == (1, 0)
    assert elmhurst.referrals_by_outcome == {"waitlisted": 2, "home_delivery": 1}
    assert elmhurst.waitlist == funder.Waitlist(length_at_end=1, joined=2, moved_off=1, median_wait_days=8.0)
    assert (elmhurst.volunteer_hours, elmhurst.miles_driven, elmhurst.cost_per_box) == (2.0, 10.0, 27.33)


def test_one_clinics_report_holds_only_that_clinic(database: Database, march: KnownMonth) -> None:
    """Asked for Elmhurst, the top-level figures are Elmhurst's and no other clinic is listed."""
    report = report_for(database, march, clinic="elmhurst clinic")
    assert report.clinic == "Elmhurst Clinic"
    assert list(report.by_clinic) == ["Elmhurst Clinic"]
    assert (report.patients_served, report.boxes_delivered, report.miles_driven) == (2, 3, 10.0)


def test_a_period_that_ends_before_it_starts_is_refused(database: Database, march: KnownMonth) -> None:
    with database.reader() as db:
        food_bank = db.get(Organization, march.program.food_bank_id)
        with pytest.raises(funder.ReportError, match="swap the dates"):
            funder.build(db, food_bank, dt.date(2030, 3, 31), dt.date(2030, 3, 1))  # type: ignore[arg-type]
        with pytest.raises(funder.ReportError, match="its clinics: Elmhurst Clinic, Fruitvale Clinic"):
            funder.find_clinic(funder.clinics_of(db, food_bank), "Nowhere")  # type: ignore[arg-type]


@pytest.mark.parametrize(("values", "median", "p90"), [
    ([], None, None), ([7], 7.0, 7.0), ([1, 8, 1, 13], 4.5, 13.0),
    (list(range(1, 11)), 5.5, 9.0), (list(range(1, 12)), 6.0, 10.0)])
def test_median_and_nearest_rank_90th_percentile(values: list[int], median: float | None,
                                                 p90: float | None) -> None:
    assert (figures.median(values), figures.p90(values)) == (median, p90)


def test_cost_per_box_adds_the_miles_at_the_rate() -> None:
    assert figures.cost_per_box(12, 30.0, 2500, 70) == 26.75
    assert figures.cost_per_box(0, 30.0, 2500, 70) is None
    assert figures.month_bounds(dt.date(2030, 2, 14)) == (dt.date(2030, 2, 1), dt.date(2030, 2, 28))
    assert figures.week_start(dt.date(2030, 3, 10)) == dt.date(2030, 3, 4)
