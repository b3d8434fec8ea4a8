"""Online backups and their restore.

The database is copied while the app keeps writing: SQLite's backup API (a consistent snapshot) or
`pg_dump -Fc`. With age recipients (R12.2) the copy, the delivery photos and a manifest of the photos'
SHA-256 go into one tar archive encrypted with `age` (through `pyrage`): only the holder of the
identity (the private key, kept off the app's machine) can read it. `restore` and `open_backup`
take the same path back: decrypt, check every photo against the manifest, check the database.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyrage
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

MANIFEST = "manifest.json"
SQLITE_NAME = "database.sqlite"
PG_NAME = "database.pgdump"


class BackupError(RuntimeError):
    pass


def backup(database_url: str, target: Path, *, recipients: Sequence[str] = (),
           photos: Path | None = None) -> str:
    """Copy the live database to `target` without stopping the app; returns a one-line summary.
    With `recipients` (age public keys) the copy and the photos are encrypted for them."""
    target = target.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not recipients:
        return _copy_database(database_url, target)
    keys = _recipients(recipients)
    with tempfile.TemporaryDirectory(prefix="delivery-backup-") as work:
        folder = Path(work)
        name = SQLITE_NAME if make_url(database_url).get_backend_name() == "sqlite" else PG_NAME
        _copy_database(database_url, folder / name)
        sums = _photo_sums(photos) if photos is not None and photos.is_dir() else {}
        (folder / MANIFEST).write_text(json.dumps({"database": name, "photos": sums}, indent=1))
        archive = folder / "backup.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(folder / name, arcname=name)
            tar.add(folder / MANIFEST, arcname=MANIFEST)
            for relative in sums:
                tar.add(photos / relative, arcname=f"photos/{relative}")  # type: ignore[operator]
        pyrage.encrypt_file(str(archive), str(target), keys)
    target.chmod(0o600)
    return (f"backed up the database and {len(sums)} photo(s) to {target}, encrypted for "
            f"{len(keys)} recipient(s)")


def _copy_database(database_url: str, target: Path) -> str:
    url = make_url(database_url)
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


def _recipients(recipients: Sequence[str]) -> list[pyrage.x25519.Recipient]:
    keys = []
    for text in recipients:
        try:
            keys.append(pyrage.x25519.Recipient.from_str(text.strip()))
        except pyrage.RecipientError:
            raise BackupError(f"{text.strip()[:20]}… is not an age public key (one starts with age1)"
                              ) from None
    return keys


def _photo_sums(photos: Path) -> dict[str, str]:
    return {str(path.relative_to(photos)): _sha256(path)
            for path in sorted(photos.rglob("*")) if path.is_file()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def open_backup(backup_file: Path, identity_file: Path) -> Iterator[tuple[Path, dict]]:
    """Decrypt and unpack an encrypted backup into a private temporary folder, check every photo
    against the manifest, and yield (folder, manifest); the folder is removed afterwards."""
    try:
        identities = [pyrage.x25519.Identity.from_str(line.strip())
                      for line in identity_file.read_text().splitlines()
                      if line.strip().startswith("AGE-SECRET-KEY-")]
    except (OSError, pyrage.IdentityError) as exc:
        raise BackupError(f"cannot read the age identity in {identity_file}: {exc}") from None
    if not identities:
        raise BackupError(f"{identity_file} holds no age identity (a line starting AGE-SECRET-KEY-)")
    with tempfile.TemporaryDirectory(prefix="delivery-restore-") as work:
        folder = Path(work)
        archive = folder / "backup.tar"
        try:
            pyrage.decrypt_file(str(backup_file), str(archive), identities)
        except (OSError, pyrage.DecryptError) as exc:
            raise BackupError(f"cannot decrypt {backup_file} with that identity: {exc}") from None
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")  # no absolute paths, links or devices
        archive.unlink()
        manifest = json.loads((folder / MANIFEST).read_text())
        for relative, expected in manifest["photos"].items():
            path = folder / "photos" / relative
            if not path.is_file() or _sha256(path) != expected:
                raise BackupError(f"photo {relative} in the backup does not match its checksum")
        yield folder, manifest


def restore(backup_file: Path, identity_file: Path, database_url: str, photos: Path) -> str:
    """Restore an encrypted backup into an empty database and photo folder (never over live data)."""
    url = make_url(database_url)
    with open_backup(backup_file, identity_file) as (folder, manifest):
        if url.get_backend_name() == "sqlite":
            target = Path(url.database or "")
            if manifest["database"] != SQLITE_NAME:
                raise BackupError("this backup holds a PostgreSQL dump: restore it into a PostgreSQL URL")
            if target.exists() and target.stat().st_size > 0:
                raise BackupError(f"{target} already exists: restore into a new file, then swap it in")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / SQLITE_NAME, target)
            with sqlite3.connect(target) as copy:
                check = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the restored database failed its integrity check: {check}")
        else:
            if manifest["database"] != PG_NAME:
                raise BackupError("this backup holds a SQLite database: restore it into a sqlite:/// URL")
            engine = create_engine(database_url)
            try:
                tables = inspect(engine).get_table_names()
            finally:
                engine.dispose()
            if tables:
                raise BackupError(f"{url.database} already holds tables: restore into an empty database")
            pg_restore = shutil.which("pg_restore")
            if pg_restore is None:
                raise BackupError("pg_restore is not installed; install the PostgreSQL client tools")
            plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
            subprocess.run([pg_restore, "--no-owner", "--exit-on-error", "-d", plain,
                            str(folder / PG_NAME)], check=True)
        for relative in manifest["photos"]:
            destination = photos / relative
            if destination.exists():
                raise BackupError(f"{destination} already exists: restore photos into an empty folder")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "photos" / relative, destination)
        return (f"restored the database to {url.render_as_string(hide_password=True)} and "
                f"{len(manifest['photos'])} photo(s) to {photos} (checksums ok)")
