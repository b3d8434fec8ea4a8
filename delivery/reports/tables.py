"""The report as tables (one column per scope: the program, then each clinic), for the page, the
PDF and the CSV exports alike, so every copy of a figure is the same figure."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from delivery.platform.spreadsheets import safe_cell
from delivery.reports.funder import Figures, Report

Value = int | float | str | None


@dataclass(frozen=True)
class Table:
    name: str  # in URLs and file names
    title: str
    label: str  # the heading of the first column
    columns: list[str]  # the scopes
    rows: list[tuple[str, list[Value]]]


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


FIGURES: list[tuple[str, Callable[[Figures], Value]]] = [
    ("Patients served", lambda f: f.patients_served),
    ("Boxes delivered", lambda f: f.boxes_delivered),
    ("Deliveries attempted", lambda f: f.deliveries_attempted),
    ("Deliveries succeeded", lambda f: f.deliveries_succeeded),
    ("Success rate (%)", lambda f: _pct(f.success_rate)),
    ("Days from referral to first box, median", lambda f: f.days_to_first_box.median),
    ("Days from referral to first box, 90th percentile", lambda f: f.days_to_first_box.p90),
    ("Patients with their first box", lambda f: f.days_to_first_box.patients),
    ("Receipts confirmed", lambda f: f.receipts_confirmed),
    ("Receipts denied", lambda f: f.receipts_denied),
    ("Referrals received", lambda f: f.referrals_received),
    ("Needs raised (besides food)", lambda f: f.needs_raised),
    ("Needs resolved", lambda f: f.needs_resolved),
    ("Flagged for SNAP/CalFresh enrollment help", lambda f: f.benefits_flagged),
    ("Enrolled in SNAP/CalFresh", lambda f: f.benefits_enrollments),
    ("On the waitlist at the end", lambda f: f.waitlist.length_at_end),
    ("Joined the waitlist", lambda f: f.waitlist.joined),
    ("Moved off the waitlist", lambda f: f.waitlist.moved_off),
    ("Median wait on the waitlist (days)", lambda f: f.waitlist.median_wait_days),
    ("Volunteer hours", lambda f: f.volunteer_hours),
    ("Miles driven", lambda f: f.miles_driven),
    ("Cost per delivered box ($)", lambda f: f.cost_per_box),
]
WORDS = {"no_answer": "No answer", "refused": "Refused", "wrong_address": "Wrong address",
         "unsafe": "Unsafe", "other": "Other", "home_delivery": "Home delivery",
         "waitlisted": "Waitlisted", "pickup": "Pick-up", "not_eligible": "Not eligible"}


def scopes(report: Report) -> list[tuple[str, Figures]]:
    """The columns: the program (or the one clinic asked for), then each clinic."""
    if report.clinic is not None:
        return [(report.clinic, report)]
    return [("All clinics", report), *report.by_clinic.items()]


def _counts(name: str, title: str, label: str, columns: Sequence[tuple[str, Figures]],
            counts: Callable[[Figures], dict[str, int]]) -> Table:
    keys = list(dict.fromkeys(key for _, f in columns for key in counts(f)))
    return Table(name, title, label, [c for c, _ in columns],
                 [(WORDS.get(k, k), [counts(f).get(k, 0) for _, f in columns]) for k in keys])


def tables(report: Report) -> list[Table]:
    columns = scopes(report)
    names = [c for c, _ in columns]
    weeks = sorted({w.start for _, f in columns for w in f.weeks})
    boxes = [{w.start: w.boxes_delivered for w in f.weeks} for _, f in columns]
    return [
        Table("figures", "The figures", "Figure", names,
              [(label, [get(f) for _, f in columns]) for label, get in FIGURES]),
        _counts("failed_attempts", "Failed attempts by reason", "Reason", columns,
                lambda f: f.failed_attempts_by_reason),
        _counts("referrals", "Referrals received, by the program's decision", "Decision", columns,
                lambda f: f.referrals_by_outcome),
        Table("weeks", "Boxes delivered by week", "Week of", names,
              [(monday.isoformat(), [b.get(monday, 0) for b in boxes]) for monday in weeks]),
    ]


def table(report: Report, name: str) -> Table | None:
    return next((t for t in tables(report) if t.name == name), None)


def to_csv(chosen: Sequence[Table]) -> str:
    """CSV of the tables, safe to open in a spreadsheet. One table: its own columns; several: a
    first column says which table each row belongs to (they share their scope columns)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    several = len(chosen) > 1
    for n, t in enumerate(chosen):
        if n == 0:
            writer.writerow([safe_cell(c) for c in (["table"] if several else []) + [t.label, *t.columns]])
        for label, values in t.rows:
            cells = ([t.name] if several else []) + [label, *("" if v is None else v for v in values)]
            writer.writerow([safe_cell(c) for c in cells])
    return out.getvalue()


def display(value: Value) -> str:
    """A cell as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    return f"{value:,}" if isinstance(value, int) else str(value)
