"""Drivers from a spreadsheet: every row valid and all imported together, or none, with a per-row report.

Each row goes through `roster.add_driver`, the one write path for a new driver, inside a savepoint the
whole file shares: a refusal in row 40 leaves rows 1 to 39 unwritten too.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.orm import Session

from delivery.program import roster

COLUMNS = ("email", "name", "phone", "vehicle", "capacity_boxes", "languages", "carries_upstairs")
REQUIRED = ("email", "name", "capacity_boxes")
MAX_ROWS = 2_000
MAX_BYTES = 1024 * 1024
_YES, _NO = {"yes", "y", "true", "1"}, {"no", "n", "false", "0"}
_FIELD = {"display_name": "name"}  # DriverIn's field -> the column people write


@dataclass(frozen=True)
class RowProblem:
    row: int | None  # the spreadsheet's row number (the header is row 1); None: the whole file
    column: str | None
    reason: str


@dataclass
class DriverImport:
    rows: int = 0
    imported: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.imported == self.rows > 0

    def text(self) -> str:
        if self.ok:
            return f"{self.imported} driver(s) imported."
        lines = [f"{len(self.problems)} problem(s); nothing was imported. Fix the file and import it again."]
        lines += [f"row {p.row or '-'}, {p.column or 'file'}: {p.reason}" for p in self.problems]
        return "\n".join(lines)


def template_csv() -> str:
    return ",".join(COLUMNS) + "\r\nana@example.org,Ana Ruiz,+1 510 555 0100,car,10,en es,yes\r\n"


def _row_body(record: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"email": record.get("email", ""), "display_name": record.get("name", ""),
                            "capacity_boxes": record.get("capacity_boxes", "")}
    if record.get("phone"):
        body["phone"] = record["phone"]
    if record.get("vehicle"):
        body["vehicle"] = record["vehicle"].lower()
    if record.get("languages"):
        body["languages"] = record["languages"].replace(",", " ").split()
    upstairs = record.get("carries_upstairs", "").lower()
    if upstairs:
        body["carries_upstairs"] = True if upstairs in _YES else False if upstairs in _NO else upstairs
    return body


def import_drivers(db: Session, food_bank_id: int, content: bytes) -> DriverImport:
    """Check every row, then add all drivers, or none (the caller commits when the report is ok)."""
    report = DriverImport()
    if len(content) > MAX_BYTES:
        report.problems.append(RowProblem(None, None, f"The file is larger than {MAX_BYTES // 1024} KB."))
        return report
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.problems.append(RowProblem(None, None, "Save the file as CSV (UTF-8)."))
        return report
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        report.problems.append(RowProblem(1, None, f"Missing column(s): {', '.join(missing)}. "
                                                   f"The columns are: {', '.join(COLUMNS)}."))
        return report
    drivers: list[tuple[int, roster.DriverIn]] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            report.problems.append(RowProblem(number, None, f"At most {MAX_ROWS} rows per file."))
            break
        record = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        if not any(record.values()):
            continue
        report.rows += 1
        try:
            data = msgspec.convert(_row_body(record), roster.DriverIn, strict=False)
        except msgspec.ValidationError as exc:
            message, _, where = str(exc).partition(" - at `$.")
            column = _FIELD.get(where.rstrip("`").split("[")[0], where.rstrip("`").split("[")[0]) or None
            report.problems.append(RowProblem(number, column, message))
            continue
        email = data.email.strip().lower()
        if email in seen:
            report.problems.append(RowProblem(number, "email", f"{email} is also on row {seen[email]}."))
            continue
        seen[email] = number
        drivers.append((number, data))
    if report.problems or not drivers:
        if not report.problems:
            report.problems.append(RowProblem(None, None, "The file has no driver rows."))
        return report
    savepoint = db.begin_nested()
    for number, data in drivers:
        try:
            roster.add_driver(db, food_bank_id=food_bank_id, data=data)
        except roster.RosterError as exc:
            report.problems.append(RowProblem(number, _FIELD.get(exc.field, exc.field) or None, str(exc)))
    if report.problems:
        savepoint.rollback()
        return report
    savepoint.commit()
    report.imported = len(drivers)
    return report
