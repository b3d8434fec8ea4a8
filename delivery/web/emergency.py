"""Emergency mode (R12.3): a day's route sheets from the latest backup, with the app down.

The backup is decrypted into a private temporary folder (`backup.open_backup`, checksums checked),
opened read-only, and the same route sheets the coordinator prints are rendered into one HTML file
that carries its own styles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from delivery.models import Plan, PlanStatus
from delivery.platform.backup import SQLITE_NAME, BackupError, open_backup
from delivery.platform.db import Database
from delivery.web.app import ROOT, template_engine
from delivery.web.coordinator.sheets import route_sheets
from delivery.web.driver import day_label


class EmergencyError(RuntimeError):
    pass


def sheets_from_backup(backup_file: Path, identity_file: Path, date: dt.date) -> str:
    """Every published route of `date` in the backup, as one printable HTML page."""
    try:
        with open_backup(backup_file, identity_file) as (folder, manifest):
            if manifest["database"] != SQLITE_NAME:
                raise EmergencyError("this backup is a PostgreSQL dump: restore it into a scratch database "
                                     "with `delivery restore`, then print the sheets from the app there")
            copy = folder / SQLITE_NAME
            taken = dt.datetime.fromtimestamp(copy.stat().st_mtime, dt.UTC)
            database = Database(f"sqlite:///{copy}")
            try:
                with database.reader() as db:
                    plans = db.scalars(select(Plan).where(
                        Plan.date == date, Plan.status.in_([PlanStatus.published, PlanStatus.done]))).all()
                    sheets = [sheet for plan in plans for sheet in route_sheets(db, plan)]
                    template = template_engine().engine.get_template("print/emergency_sheets.html")
                    return template.render(day=day_label(date), sheets=sheets,
                                           taken=f"{taken:%Y-%m-%d %H:%M} UTC",
                                           css=(ROOT / "static" / "css" / "app.css").read_text())
            finally:
                database.dispose()
    except BackupError as exc:
        raise EmergencyError(str(exc)) from None
