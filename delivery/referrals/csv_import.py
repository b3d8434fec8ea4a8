"""Bulk intake from CSV: every row valid or nothing imported, then one `intake.refer()` per row.

The columns mirror the JSON API's `ReferralIn` with flat names (see `COLUMNS` and
docs/csv-format.md). A file is checked whole before anything is written, so the report names every
bad row, column and reason at once; when all rows are valid they go through `intake.refer()` (the
one write path) in the caller's transaction, and the report counts what happened.

Two steps, so that SQLite's single writer is held only for the write: `check_file()` parses and
checks every row and only reads (run it on `database.reader()`); `import_checked()` makes the reads
that decide the write (the patients on record, the clinics' programs) and the write, on the writer.
"""

from __future__ import annotations

import csv
import io
import math
import re
import typing
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import msgspec
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from delivery.models import (
    BoxType,
    Cadence,
    Dietary,
    HungerAnswer,
    NeedKind,
    Organization,
    OrganizationKind,
    Outcome,
    Patient,
    ReviewItem,
    SnapAnswer,
    Source,
)
from delivery.platform.clock import Clock
from delivery.platform.db import Database
from delivery.platform.validation import error_path, explain, rule_of
from delivery.referrals import intake
from delivery.referrals.schemas import ReferralIn
from delivery.timeline.text import change_text

MAX_ROWS = 50_000
"""A bigger file is refused up front: split it (the upload page is limited to 2 MB anyway)."""
MAX_PROBLEMS = 500
"""The report stops listing problems after this many (they are usually the same mistake repeated)."""
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_FALSE = frozenset({"no", "n", "false", "f", "0"})


# --- the columns ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One CSV column: where its value goes in `ReferralIn`, how a cell is read, and its help."""

    name: str
    path: tuple[str, ...]  # the field in ReferralIn, e.g. ("patient", "address", "line1")
    kind: str  # text, int, float, bool, enum, list, weekday, date, time
    help: str
    example: str = ""
    choices: type[StrEnum] | None = None
    required: bool = False  # filled in from the schema below


_P = ("patient",)
_A = ("patient", "address")
_S = ("screening",)
_O = ("order",)
_N = ("needs",)

COLUMNS: tuple[Column, ...] = (
    Column("mrn", (*_P, "mrn"), "text", "The clinic's patient identifier (letters, digits, . _ -). "
           "Re-importing the same MRN updates that patient instead of adding another.", "A-1001"),
    Column("given_name", (*_P, "given_name"), "text", "Given (first) name.", "Rosa"),
    Column("family_name", (*_P, "family_name"), "text", "Family (last) name.", "Diaz"),
    Column("birth_date", (*_P, "birth_date"), "date", "Birth date as YYYY-MM-DD.", "1948-03-02"),
    Column("phone", (*_P, "phone"), "text", "Phone number, digits with optional + ( ) - . and spaces.",
           "+15105550101"),
    Column("language", (*_P, "language"), "text", "Preferred language code; blank means en for a new patient "
           "(a patient on record keeps the stored one, as for every blank cell below).", "es"),
    Column("address_line1", (*_A, "line1"), "text", "Street address.", "1234 98th Ave"),
    Column("unit", (*_A, "unit"), "text", "Apartment or unit.", "3B"),
    Column("city", (*_A, "city"), "text", "City.", "Oakland"),
    Column("state", (*_A, "state"), "text", "State.", "CA"),
    Column("postal_code", (*_A, "postal_code"), "text", "ZIP code: 5 digits or ZIP+4.", "94603"),
    Column("lat", (*_A, "lat"), "float", "Latitude; give lat and lon together, or neither "
           "(the address is then geocoded).", "37.7491"),
    Column("lon", (*_A, "lon"), "float", "Longitude (see lat).", "-122.1690"),
    Column("floor", (*_P, "floor"), "int", "Floor of the door; blank means 0 (street level) for a new "
           "patient.", "3"),
    Column("elevator", (*_P, "elevator"), "bool", "Is there an elevator? blank means no for a new "
           "patient.", "no"),
    Column("access_notes", (*_P, "access_notes"), "text", "Gate codes, which door, pets.",
           "gate code 1234"),
    Column("dietary", (*_P, "dietary"), "list", "Dietary needs separated by semicolons.", "diabetic",
           choices=Dietary),
    Column("consent_to_share", (*_P, "consent_to_share"), "bool", "The patient agreed to share name, "
           "address and phone with the food bank and its drivers; blank means yes, no refuses the row.",
           "yes"),
    Column("do_not_contact", (*_P, "do_not_contact"), "bool",
           "Do not phone the patient; blank means no for a new patient.", "no"),
    Column("consent_to_text", (*_P, "consent_to_text"), "bool",
           "The patient agreed to texts about their deliveries in their language; blank means no for a "
           "new patient.", "yes"),
    Column("hunger_worried", (*_S, "hunger_worried"), "enum", "Hunger Vital Sign 1: worried food would "
           "run out (often, sometimes, never).", "often", choices=HungerAnswer),
    Column("hunger_ran_out", (*_S, "hunger_ran_out"), "enum", "Hunger Vital Sign 2: food did not last "
           "(often, sometimes, never).", "sometimes", choices=HungerAnswer),
    Column("transportation_barrier", (*_S, "transportation_barrier"), "bool",
           "Cannot get to a pantry or store (yes/no).", "yes"),
    Column("mobility_barrier", (*_S, "mobility_barrier"), "bool",
           "Cannot carry groceries or climb stairs (yes/no).", "no"),
    Column("errands_barrier", (*_S, "errands_barrier"), "bool",
           "Has difficulty doing errands alone; blank means no.", "no"),
    Column("snap_enrolled", (*_S, "snap_enrolled"), "enum", "Enrolled in SNAP/CalFresh: yes, no or unknown; "
           "blank means unknown. Food insecure and no: flagged for benefits-enrollment staff.", "no",
           choices=SnapAnswer),
    Column("needs", (*_N, "picks"), "list", "Other than medical care, what the patient needs to be more "
           "healthy, separated by semicolons; it goes on your clinic's needs list.", "ride; fridge_stove",
           choices=NeedKind),
    Column("needs_words", (*_N, "words"), "text", "The patient's answer to the same question in their own "
           "words (up to 500 characters).", "help with the gas bill"),
    Column("boxes", (*_O, "boxes"), "int", "Boxes per delivery, 1 to 6; blank means 1.", "1"),
    Column("box_type", (*_O, "box_type"), "enum", "Kind of box; blank means standard.", "diabetic",
           choices=BoxType),
    Column("cadence", (*_O, "cadence"), "enum", "weekly, biweekly (every two weeks) or once; blank "
           "means weekly.", "weekly", choices=Cadence),
    Column("weekday", (*_O, "weekday"), "weekday", "Delivery day: Monday … Sunday (or 0 = Monday … "
           "6 = Sunday); blank means the program's delivery day.", ""),
    Column("window_start", (*_O, "window_start"), "time", "Earliest delivery time, HH:MM (24-hour); "
           "give it with window_end, or neither.", ""),
    Column("window_end", (*_O, "window_end"), "time", "Latest delivery time, HH:MM.", ""),
    Column("start_date", (*_O, "start_date"), "date", "First delivery on or after this date, "
           "YYYY-MM-DD; blank means as soon as possible.", ""),
    Column("priority", ("priority",), "int", "0 normal, 1 high, 2 urgent; blank means 0.", "0"),
    Column("note", ("note",), "text", "A note for the food bank, shown on the referral's timeline.", ""),
)
CLINIC_COLUMN = Column("clinic", (), "text", "The referring clinic's name or id, when the import does "
                       "not name one (the upload page always imports for your own clinic).", "")


def _field_type(path: tuple[str, ...]) -> tuple[Any, bool]:
    """The annotated type of a ReferralIn field by path, and whether the field is required."""
    struct: Any = ReferralIn
    tp: Any = None
    required = True
    for part in path:
        hints = typing.get_type_hints(struct, include_extras=True)
        field = next(f for f in msgspec.structs.fields(struct) if f.name == part)
        required = required and field.required
        tp = hints[part]
        struct = next((a for a in (tp, *typing.get_args(tp)) if isinstance(a, type)
                       and issubclass(a, msgspec.Struct)), None)
    return tp, required


_TYPES: dict[str, Any] = {c.name: _field_type(c.path)[0] for c in COLUMNS}
COLUMNS = tuple(replace(c, required=_field_type(c.path)[1]) for c in COLUMNS)
BY_NAME = {c.name: c for c in COLUMNS}
BY_PATH = {c.path: c for c in COLUMNS}
REQUIRED = tuple(c.name for c in COLUMNS if c.required)


def template_csv() -> str:
    """A CSV with the header and one example row, for people to fill in."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.name for c in COLUMNS])
    writer.writerow([c.example for c in COLUMNS])
    return out.getvalue()


# --- the report -----------------------------------------------------------------------------


class Problem(msgspec.Struct, kw_only=True):
    """One thing to fix: a cell (row and column), a header (row 1) or the whole file (row None)."""

    row: int | None
    column: str | None
    reason: str
    value: str | None = None


class ReviewNote(msgspec.Struct, kw_only=True):
    """A review item the import raised for coordinators (a possible duplicate, an address change)."""

    row: int
    mrn: str
    kind: str
    message: str


class ChangeNote(msgspec.Struct, kw_only=True):
    """Stored details of a patient on record that a row changed (or proposed to change)."""

    row: int
    mrn: str
    changes: str  # "phone +1 510 555 0101 → +1 510 555 0199; floor 3 → 4"


class ImportReport(msgspec.Struct, kw_only=True):
    """What an import found or did; `ok` when every row was valid and all were imported."""

    source: str = "file"
    rows: int = 0
    problems: list[Problem] = msgspec.field(default_factory=list)
    problems_total: int = 0
    imported: bool = False
    referred: dict[str, int] = msgspec.field(default_factory=dict)  # outcome -> count
    already_referred: int = 0
    new_patients: int = 0
    updated_patients: int = 0
    to_geocode: int = 0
    reviews: list[ReviewNote] = msgspec.field(default_factory=list)
    changes: list[ChangeNote] = msgspec.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.imported and not self.problems_total

    @property
    def referred_total(self) -> int:
        return sum(self.referred.values())

    def add(self, row: int | None, column: str | None, reason: str, value: str | None = None) -> None:
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            if value is not None and len(value) > 60:
                value = value[:57] + "..."
            self.problems.append(Problem(row=row, column=column, reason=reason, value=value))

    def text(self) -> str:
        """The report as people read it in a terminal."""
        if not self.ok:
            lines = [f"{self.source}: {self.problems_total} problem(s); nothing was imported."]
            if self.problems:
                width = max(len(p.column or "") for p in self.problems)
                width = max(width, len("column"))
                lines.append(f"{'row':>5}  {'column':<{width}}  reason")
                for p in self.problems:
                    row = str(p.row) if p.row is not None else "-"
                    value = f" (cell: {p.value!r})" if p.value else ""
                    lines.append(f"{row:>5}  {(p.column or '-'):<{width}}  {p.reason}{value}")
            if self.problems_total > len(self.problems):
                lines.append(f"… and {self.problems_total - len(self.problems)} more.")
            if any(p.row is not None for p in self.problems):
                lines.append("Fix the file and import it again: its rows are imported all together "
                             "or not at all.")
            return "\n".join(lines)
        by_outcome = ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in self.referred.items() if n)
        lines = [f"{self.source}: {self.rows} row(s) imported.",
                 f"  referred: {self.referred_total}" + (f" ({by_outcome})" if by_outcome else ""),
                 f"  already referred, unchanged: {self.already_referred}",
                 f"  patients: {self.new_patients} new, {self.updated_patients} updated",
                 f"  addresses to geocode: {self.to_geocode}",
                 f"  for review by a coordinator: {len(self.reviews)}"]
        lines += [f"    row {r.row} (MRN {r.mrn}): {r.kind.replace('_', ' ')}: {r.message}"
                  for r in self.reviews]
        if self.changes:
            lines.append("  stored details changed (blank cells kept what was stored):")
        lines += [f"    row {c.row} (MRN {c.mrn}): {c.changes}" for c in self.changes]
        return "\n".join(lines)


# --- reading cells --------------------------------------------------------------------------


class CellError(ValueError):
    """A cell that cannot be read; the message says what to write instead."""


def _choice(value: str, choices: type[StrEnum]) -> str:
    key = re.sub(r"[\s-]+", "_", value.strip().lower())
    if choices is HungerAnswer:
        key = key.removesuffix("_true")  # the Hunger Vital Sign's own words: "often true"
    if key not in choices.__members__.values():
        raise CellError("Choose one of: " + ", ".join(choices.__members__.values()) + ".")
    return key


def _read_cell(column: Column, value: str) -> Any:
    """A non-blank cell as the JSON value the API would get; CellError says what is wrong."""
    kind = column.kind
    if kind == "bool":
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise CellError("Write yes or no (true/false and 1/0 work too).")
    if kind == "int":
        if not re.fullmatch(r"[+-]?\d+(\.0*)?", value):
            raise CellError("Enter a whole number.")
        return int(value.split(".")[0])
    if kind == "float":
        try:
            number = float(value.replace(",", "."))  # a decimal comma from a European spreadsheet
        except ValueError:
            raise CellError("Enter a number, such as 37.7491.") from None
        if not math.isfinite(number):
            raise CellError("Enter a number, such as 37.7491.")
        return number
    if kind == "enum":
        assert column.choices is not None
        return _choice(value, column.choices)
    if kind == "list":
        assert column.choices is not None
        items = [item for item in re.split(r"[;,]", value) if item.strip()]
        bad = []
        out = []
        for item in items:
            try:
                out.append(_choice(item, column.choices))
            except CellError:
                bad.append(item.strip())
        if bad:
            raise CellError(f"Unknown: {', '.join(bad)}. Choose from: "
                            + ", ".join(column.choices.__members__.values()) + " (separated by ;).")
        return out
    if kind == "weekday":
        lowered = value.lower()
        for number, name in enumerate(WEEKDAYS):
            if lowered in (name, name[:3]):
                return number
        if re.fullmatch(r"[0-6]", value):
            return int(value)
        raise CellError("Write a day (Monday … Sunday) or a number from 0 (Monday) to 6 (Sunday).")
    if kind == "time":
        match = re.fullmatch(r"(\d{1,2}):(\d{2})(:00)?", value)
        return f"{int(match[1]):02d}:{match[2]}" if match else value
    return value


# --- checking rows --------------------------------------------------------------------------


@dataclass
class _Row:
    number: int  # as in a spreadsheet: the header is row 1
    data: ReferralIn
    clinic_id: int


def _nest(cells: dict[str, Any]) -> dict[str, Any]:
    """Flat column values into the JSON API's nested body (blank cells already left out)."""
    body: dict[str, Any] = {"patient": {"address": {}}, "screening": {}}
    for name, value in cells.items():
        *parents, leaf = BY_NAME[name].path
        target = body
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return body


def _rule_errors(struct: Any, data: dict[str, Any], path: tuple[str, ...]) -> list[tuple[str, str]]:
    """Rules across fields (both lat and lon, a window's start before its end …), each struct on
    its own from the inside out, so one broken rule does not hide another. (column, reason) pairs."""
    errors: list[tuple[str, str]] = []
    hints = typing.get_type_hints(struct, include_extras=True)
    for field in msgspec.structs.fields(struct):
        value = data.get(field.name)
        inner = next((a for a in (hints[field.name], *typing.get_args(hints[field.name]))
                      if isinstance(a, type) and issubclass(a, msgspec.Struct)), None)
        if inner is not None and isinstance(value, dict):
            inner_errors = _rule_errors(inner, value, (*path, field.name))
            if inner_errors:  # check this struct's own rules with a valid stand-in for the part
                errors += inner_errors
                data = {**data, field.name: _example_body((*path, field.name))}
    try:
        msgspec.convert(data, struct, strict=False)
    except msgspec.ValidationError as exc:
        rule = rule_of(exc)
        if rule is None:
            errors.append((".".join(path) or "row", _unknown(exc)))
        else:
            columns = [BY_PATH[(*path, name)].name for name in rule.fields if (*path, name) in BY_PATH]
            errors.append((", ".join(columns) or ".".join(path) or "row", rule.message))
    return errors


def _unknown(exc: msgspec.ValidationError) -> str:
    """A refusal the column checks did not foresee: where msgspec found it, in its own words."""
    where = ".".join(error_path(exc)) or "the row"
    return f"{where}: {str(exc).rpartition(' - at `')[0] or exc}"


_ORDER = {c.name: i for i, c in enumerate(COLUMNS)}
_EXAMPLES = {c.name: c.example for c in COLUMNS}


def _example_body(path: tuple[str, ...]) -> dict[str, Any]:
    """The documented example's part of the body at `path` (valid, as a test checks)."""
    body = _nest({c.name: _read_cell(c, c.example) for c in COLUMNS if c.example})
    for part in path:
        body = body[part]
    return body


def _check_row(cells: dict[str, str], number: int, report: ImportReport) -> ReferralIn | None:
    """The row as a ReferralIn, or None after adding every problem in it to the report."""
    values: dict[str, Any] = {}
    problems: dict[str, tuple[str, str | None]] = {}  # column -> (reason, cell)
    for name, raw in cells.items():
        if not raw:
            continue
        try:
            values[name] = _read_cell(BY_NAME[name], raw)
        except CellError as exc:
            problems[name] = (str(exc), raw)
    if not problems:
        try:
            return msgspec.convert(_nest(values), ReferralIn, strict=False)  # the fast path
        except msgspec.ValidationError:
            pass
    # Something is wrong: check every cell on its own so the report names each one.
    for column in COLUMNS:
        if column.name in problems:
            continue
        if column.name in values:
            try:
                msgspec.convert(values[column.name], _TYPES[column.name], strict=False)
            except msgspec.ValidationError:
                problems[column.name] = (explain(_TYPES[column.name], values[column.name], column.name),
                                         cells[column.name])
        elif column.required:  # the header check made sure the column exists: the cell is blank
            problems[column.name] = ("This is required.", None)
    # Then the rules across fields, with each bad cell stood in for by a valid example, so that a
    # rule on good cells (consent_to_share is no) is reported with the bad cells, not after them.
    stand_in = {name: value for name, value in values.items() if name not in problems}
    for name in problems:
        if _EXAMPLES.get(name):
            stand_in[name] = _read_cell(BY_NAME[name], _EXAMPLES[name])
    for label, reason in _rule_errors(ReferralIn, _nest(stand_in), ()):
        if not set(label.split(", ")) & problems.keys():
            problems.setdefault(label, (reason, cells.get(label) or None))
    if not problems:  # a case the checks above do not know: say what msgspec says, not nothing
        try:
            return msgspec.convert(_nest(values), ReferralIn, strict=False)
        except msgspec.ValidationError as exc:
            problems["row"] = (_unknown(exc), None)
    for name in sorted(problems, key=lambda n: _ORDER.get(n.split(", ")[0], len(_ORDER))):
        reason, raw = problems[name]
        report.add(number, name, reason, raw)
    return None


def _decode(source: str | bytes | IO[str] | IO[bytes], report: ImportReport) -> str | None:
    data = source.read() if hasattr(source, "read") else source
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            report.add(None, None, "The file is not UTF-8 text. In Excel choose Save As, "
                       "'CSV UTF-8 (Comma delimited)'.")
            return None
    assert isinstance(data, str)
    return data.removeprefix("\ufeff")


def _header(names: list[str], report: ImportReport, *, need_clinic: bool) -> list[str | None] | None:
    """Column names by position (None: a blank header cell), or None when the header is wrong."""
    columns: list[str | None] = []
    seen: set[str] = set()
    for position, raw in enumerate(names, start=1):
        name = re.sub(r"[\s-]+", "_", raw.strip().lower())
        if not name:
            columns.append(None)
            continue
        if name in seen:
            report.add(1, name, f"Column {name} appears twice.")
        elif name not in BY_NAME and name != CLINIC_COLUMN.name:
            hint = ""
            if ";" in raw or "\t" in raw:
                hint = " The file seems to use ; or tabs between columns: save it comma-separated."
            report.add(1, raw.strip()[:60], f"Unknown column (column {position}).{hint}")
        seen.add(name)
        columns.append(name)
    for name in REQUIRED:
        if name not in seen:
            report.add(1, name, "Required column is missing.")
    if need_clinic and CLINIC_COLUMN.name not in seen:
        report.add(1, CLINIC_COLUMN.name, "Name the clinic: add a clinic column, or choose the clinic "
                   "for the whole file (delivery import referrals FILE --clinic NAME).")
    return None if report.problems_total else columns


class Clinics:
    """Clinics by id and by name (case-insensitive), for a `clinic` cell or the --clinic option."""

    def __init__(self, db: Session) -> None:
        self.all = list(db.execute(select(Organization.id, Organization.name)
                                   .where(Organization.kind == OrganizationKind.clinic)
                                   .order_by(Organization.id)))

    def resolve(self, value: str) -> int:
        """The clinic's id; ValueError saying why not."""
        wanted = value.strip()
        matches = {i for i, name in self.all if name.casefold() == wanted.casefold()}
        if wanted.isdigit():
            matches |= {i for i, _ in self.all if i == int(wanted)}
        if len(matches) == 1:
            return matches.pop()
        if matches:
            raise ValueError(f"{wanted!r} names more than one clinic; use the clinic's id.")
        known = ", ".join(f"{name} ({i})" for i, name in self.all[:10]) or "none yet"
        raise ValueError(f"No clinic has the name or id {wanted!r}. Clinics: {known}.")

    def name(self, clinic_id: int) -> str:
        return next((name for i, name in self.all if i == clinic_id), str(clinic_id))


RowCheck = Callable[[dict[str, str], int, ImportReport], ReferralIn | None]
"""Checks one row's cells (by column name) as row `number`; adds its problems to the report."""


@dataclass(frozen=True)
class Checked:
    """A file read and checked (without the writer): the report so far and the valid rows."""

    report: ImportReport
    rows: list[_Row]


def check_file(db: Session, source: str | bytes | IO[str] | IO[bytes], *, clinic_id: int | None,
               source_name: str = "file", check_row: RowCheck | None = None) -> Checked:
    """Read and check the whole file. Only reads (the clinics), so run it on `database.reader()`
    before taking the writer: parsing a big file takes seconds. `check_row` replaces the row check
    (a caller that wants to watch or time it); by default each row is checked against ReferralIn."""
    report = ImportReport(source=source_name)
    rows = _check_rows(db, source, clinic_id=clinic_id, report=report, check_row=check_row or _check_row)
    return Checked(report, rows)


def _check_rows(db: Session, source: str | bytes | IO[str] | IO[bytes], *, clinic_id: int | None,
                report: ImportReport, check_row: RowCheck) -> list[_Row]:
    """Read and check every row; the valid rows, or [] with every problem in the report."""
    text = _decode(source, report)
    if text is None:
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            report.add(None, None, "The file is empty: the first row must name the columns.")
            return []
        columns = _header(header, report, need_clinic=clinic_id is None)
        if columns is None:
            return []
        clinics = Clinics(db)
        rows: list[_Row] = []
        first_row_of: dict[tuple[int | None, str], int] = {}
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # spreadsheets leave blank lines at the end
            report.rows += 1
            if report.rows > MAX_ROWS:
                report.add(number, None, f"The file has more than {MAX_ROWS} rows; split it.")
                return []
            if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns):]):
                report.add(number, None, f"This row has {len(cells)} cells but the header names "
                           f"{len(columns)} columns (a comma inside a cell needs \"quotes\").")
                continue
            named: dict[str, str] = {}
            for position, column in enumerate(columns):
                value = cells[position].strip() if position < len(cells) else ""
                if column is None:
                    if value:
                        report.add(number, f"column {position + 1}", "This column has no name in the "
                                   "header row.", value)
                    continue
                named[column] = value
            row_clinic = clinic_id
            clinic_cell = named.pop(CLINIC_COLUMN.name, "")
            if clinic_cell:
                try:
                    named_clinic = clinics.resolve(clinic_cell)
                except ValueError as exc:
                    report.add(number, CLINIC_COLUMN.name, str(exc), clinic_cell)
                    continue
                if clinic_id is not None and named_clinic != clinic_id:
                    report.add(number, CLINIC_COLUMN.name, "This row names another clinic than the one "
                               f"the file is imported for ({clinics.name(clinic_id)}).", clinic_cell)
                    continue
                row_clinic = named_clinic
            elif row_clinic is None:
                report.add(number, CLINIC_COLUMN.name, "This is required: name the referring clinic.")
            mrn = named.get("mrn", "")
            first = first_row_of.setdefault((row_clinic, mrn), number) if mrn else number
            if first != number:
                report.add(number, "mrn", f"MRN {mrn} is also on row {first}: one row per patient.", mrn)
            data = check_row(named, number, report)
            if data is not None and row_clinic is not None and first == number:
                rows.append(_Row(number, data, row_clinic))
    except csv.Error as exc:
        report.add(reader.line_num, None, f"The file is not valid CSV here: {exc}.")
        return []
    if report.rows == 0 and not report.problems_total:
        report.add(None, None, "The file has a header but no referral rows.")
    for used in {row.clinic_id for row in rows}:
        try:
            intake.clinic_for(db, used)
        except intake.IntakeError as exc:
            report.add(None, CLINIC_COLUMN.name, str(exc))
    return [] if report.problems_total else rows


# --- importing ------------------------------------------------------------------------------

_PATIENT_FIELDS = ("given_name", "family_name", "birth_date", "phone", "language", "address_line1",
                   "unit", "city", "state", "postal_code", "lat", "lon", "floor", "elevator",
                   "access_notes", "dietary", "consent_to_share", "do_not_contact", "text_consent")


def _snapshot(patient: Patient) -> tuple[Any, ...]:
    return tuple(getattr(patient, name) for name in _PATIENT_FIELDS)


def _existing_patients(db: Session, rows: list[_Row]) -> dict[tuple[int, str], Patient]:
    """The file's patients already on record, loaded in a few queries (and kept in the session)."""
    found: dict[tuple[int, str], Patient] = {}
    by_clinic: dict[int, list[str]] = {}
    for row in rows:
        by_clinic.setdefault(row.clinic_id, []).append(row.data.patient.mrn)
    for clinic_id, mrns in by_clinic.items():
        for start in range(0, len(mrns), 500):
            chunk = mrns[start:start + 500]
            for patient in db.scalars(select(Patient).where(Patient.clinic_id == clinic_id,
                                                            Patient.mrn.in_(chunk))):
                found[(clinic_id, patient.mrn)] = patient
    return found


class _RowFailed(Exception):
    def __init__(self, row: _Row, error: intake.IntakeError) -> None:
        super().__init__(str(error))
        self.row = row
        self.error = error


def import_checked(db: Session, checked: Checked, *, actor_id: int | None, clock: Clock) -> ImportReport:
    """Refer every row of a checked file through `intake.refer()` (source csv), all or none.

    The first query here takes a request's writer: call it only after `check_file()` (a file with
    problems returns its report without touching the database). The caller commits when
    `report.ok` (and must not commit otherwise: then nothing was written, and nothing should be).
    """
    report, rows = checked.report, checked.rows
    if not rows or report.problems_total:
        return report
    before = _existing_patients(db, rows)
    snapshots = {key: _snapshot(patient) for key, patient in before.items()}
    raised: list[ReviewItem] = []

    def collect(_session: Session, instance: object) -> None:
        if isinstance(instance, ReviewItem):
            raised.append(instance)

    # Held for the whole import: the session's identity map is weak, and without a reference
    # refer() would load the clinic and its food bank again for every row.
    programs = [intake.clinic_for(db, clinic_id) for clinic_id in {row.clinic_id for row in rows}]
    outcomes: Counter[str] = Counter({o.value: 0 for o in Outcome})
    patient_row: dict[int, _Row] = {}
    event.listen(db, "transient_to_pending", collect)
    try:
        with db.begin_nested():  # a failure half-way leaves the caller's session as it was
            for row in rows:
                try:
                    result = intake.refer(db, row.data, clinic_id=row.clinic_id, actor_id=actor_id,
                                          source=Source.csv, clock=clock)
                except intake.IntakeError as exc:
                    raise _RowFailed(row, exc) from None
                patient_row[result.referral.patient_id] = row
                key = (row.clinic_id, row.data.patient.mrn)
                if key not in before:
                    report.new_patients += 1
                elif snapshots[key] != _snapshot(before[key]):
                    report.updated_patients += 1
                if result.changes:
                    said = "; ".join(change_text(c) for c in result.changes)
                    report.changes.append(ChangeNote(row=row.number, mrn=row.data.patient.mrn, changes=said))
                if result.created:
                    outcomes[result.referral.outcome] += 1
                else:
                    report.already_referred += 1
                if row.data.patient.address.lat is None:
                    report.to_geocode += 1
    except _RowFailed as failed:
        report.add(failed.row.number, _column_of(failed.error.field), str(failed.error))
        report.referred.clear()
        report.new_patients = report.updated_patients = report.already_referred = report.to_geocode = 0
        report.changes.clear()
        return report
    finally:
        event.remove(db, "transient_to_pending", collect)
    del programs
    report.referred = dict(outcomes)
    report.imported = True
    for item in raised:
        row = patient_row.get(item.patient_id)
        report.reviews.append(ReviewNote(row=row.number if row else 0,
                                         mrn=row.data.patient.mrn if row else "?",
                                         kind=item.kind, message=item.message))
    report.reviews.sort(key=lambda r: r.row)
    return report


def _column_of(field: str | None) -> str | None:
    if field is None:
        return None
    path = tuple(field.split("."))
    column = BY_PATH.get(path)
    return column.name if column else field


def import_file(database: Database, path: Path | str, *, clinic: str | None, clock: Clock,
                check_row: RowCheck | None = None) -> ImportReport:
    """The `delivery import referrals FILE [--clinic NAME]` command: check on a reader, then
    import and commit on the writer.

    The clinic comes from `clinic` (a name or an id), else from a `clinic` column, else it is the
    only clinic there is.
    """
    path = Path(path)
    report = ImportReport(source=path.name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        report.add(None, None, f"Cannot read {path}: {exc.strerror or exc}.")
        return report
    with database.reader() as db:
        clinics = Clinics(db)
        clinic_id: int | None = None
        if clinic is not None:
            try:
                clinic_id = clinics.resolve(clinic)
            except ValueError as exc:
                report.add(None, "--clinic", str(exc))
                return report
        elif len(clinics.all) == 1 and not _has_clinic_column(data):
            clinic_id = clinics.all[0][0]
        elif not clinics.all:
            report.add(None, "--clinic", "There is no clinic yet: an admin adds the clinic first.")
            return report
        checked = check_file(db, data, clinic_id=clinic_id, source_name=path.name, check_row=check_row)
    if checked.report.problems_total:
        return checked.report
    with database.writer() as db:
        report = import_checked(db, checked, actor_id=None, clock=clock)
        if report.ok:
            db.commit()
    return report


def _has_clinic_column(data: bytes) -> bool:
    first = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    return any(cell.strip().lower() == CLINIC_COLUMN.name for cell in next(csv.reader([first]), []))


def columns_help() -> Iterable[Column]:
    """The columns in file order with the clinic column last (for the upload page and the docs)."""
    return (*COLUMNS, CLINIC_COLUMN)
