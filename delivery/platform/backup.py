"""Online backups: SQLite's backup API (consistent while writes go on) or pg_dump."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupError(RuntimeError):
    pass


def backup(database_url: str, target: Path) -> str:
    """Copy the live database to `target` without stopping the app; returns a one-line summary."""
    url = make_url(database_url)
    target = target.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        source_path = url.database
        if not source_path or not Path(source_path).exists():
            raise BackupError(f"no SQLite database at {source_path}; run `delivery db upgrade` first")
        with sqlite3.connect(source_path) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
            check = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the backup at {target} failed its integrity check: {check}")
        target.chmod(0o600)
        return f"backed up {source_path} to {target} (integrity ok)"
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed; install the PostgreSQL client tools")
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    subprocess.run([pg_dump, "-Fc", "-f", str(target), plain], check=True)
    target.chmod(0o600)
    return f"backed up {url.database} to {target} (pg_dump custom format)"
