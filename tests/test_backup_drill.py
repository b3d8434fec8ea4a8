"""The backup drill a program runs before it trusts its backups (R12.1–R12.3), and the checks before
serving (R11.1, R11.3): a backup taken while drivers' confirmations keep committing, encrypted with
age, restored through the real decryption path into an empty database that the app serves again;
route sheets printed from the backup with the app down."""

from __future__ import annotations

import datetime as dt
import sqlite3
import tarfile
import threading
import uuid
from pathlib import Path

import msgspec
import psycopg
import pyrage
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from delivery.cli import main
from delivery.field import photos
from delivery.field.confirmations import confirm_stop
from delivery.models import Confirmation, Route, Stop
from delivery.platform.backup import BackupError, backup, open_backup, restore
from delivery.platform.db import Database, upgrade
from delivery.platform.preflight import production_problems, schema_problems
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import Program, sign_in
from tests.plan_builders import StopSpec, make_day

DAY = dt.date(2026, 12, 1)
AT = dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[str, Path]:
    """The program's backup key pair: the public key on the app's machine, the identity elsewhere."""
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / "offsite" / "backup-identity.txt"
    path.parent.mkdir()
    path.write_text(f"# kept off the app's machine\n{identity}\n")
    return str(identity.to_public()), path


def empty_database_like(url: str, tmp_path: Path) -> str:
    """A new, empty database of the same kind to restore into."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / 'restored' / 'delivery.db'}"
    name = f"restored_{uuid.uuid4().hex[:10]}"
    plain = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)


def drop(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        plain = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


@pytest.mark.req("R12.1")
@pytest.mark.req("R12.2")
@pytest.mark.req("R11.2")
def test_a_backup_taken_while_drivers_confirm_restores_whole(
        program: Program, database: Database, settings: Settings, keys: tuple[str, Path],
        tmp_path: Path) -> None:
    """Confirmations keep committing from another thread while the backup runs; the encrypted
    backup restores (real age decryption) to a database that passes its integrity check, holds every
    confirmation committed before the backup began, whose photo matches its checksum, and the app
    served on it lets a coordinator sign in and read the day's stops."""
    public, identity = keys
    with database.writer() as db:
        day = make_day(db, program, date=DAY, stops=[[StopSpec(f"Pat{n}", "Lee") for n in range(40)]])
        first = db.get(Stop, day.stop_ids[0][0])
        driver = db.get(Route, day.route_ids[0]).driver.user_id  # type: ignore[union-attr]
        made = confirm_stop(db, stop=first, user_id=driver, outcome="delivered", note=None,  # type: ignore[arg-type]
                            occurred_at=AT, idempotency_key="photo", now=AT)
        stored = photos.attach(made.confirmation, _jpeg(), "image/jpeg", settings.photos)  # type: ignore[arg-type]
        db.commit()

    committed: list[int] = []
    stop = threading.Event()

    def driver_keeps_confirming() -> None:
        for stop_id in day.stop_ids[0][1:]:
            if stop.is_set():
                return
            with database.writer() as db:
                result = confirm_stop(db, stop=db.get(Stop, stop_id), user_id=driver,  # type: ignore[arg-type]
                                      outcome="delivered", note=None, occurred_at=AT,
                                      idempotency_key=f"k{stop_id}", now=AT)
                db.commit()
            committed.append(result.confirmation.id)  # type: ignore[union-attr]

    confirming = threading.Thread(target=driver_keeps_confirming)
    confirming.start()
    while len(committed) < 5 and confirming.is_alive():
        threading.Event().wait(0.01)
    before = list(committed)  # every confirmation committed before the backup began
    target = tmp_path / "backups" / "delivery.tar.age"
    said = backup(settings.database_url, target, recipients=[public], photos=settings.photos)
    stop.set()
    confirming.join()
    assert "1 photo(s)" in said
    assert target.stat().st_mode & 0o777 == 0o600
    assert b"Pat1" not in target.read_bytes() and target.read_bytes().startswith(b"age-encryption.org/v1")

    restored_url = empty_database_like(settings.database_url, tmp_path)
    try:
        restored_photos = tmp_path / "restored-photos"
        assert "checksums ok" in restore(target, identity, restored_url, restored_photos)
        if restored_url.startswith("sqlite"):
            with sqlite3.connect(make_url(restored_url).database) as copy:  # type: ignore[arg-type]
                assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert schema_problems(restored_url) == []
        again = Database(restored_url)
        try:
            with again.reader() as db:
                present = set(db.scalars(select(Confirmation.id)))
                assert set(before) <= present and made.confirmation.id in present  # type: ignore[union-attr]
                shot = db.scalars(select(Confirmation).where(Confirmation.photo_name.is_not(None))).one()
                assert photos.read(shot, restored_photos) == (settings.photos / stored.name).read_bytes()
            served = msgspec.structs.replace(settings, database_url=restored_url,
                                             photo_dir=str(restored_photos))
            with TestClient(app=create_app(served, again), base_url="https://testserver.local") as client:
                sign_in(client, program.coordinator)
                sheets = client.get(f"/coordinator/plans/{day.plan_id}/sheets")
                assert sheets.status_code == 200 and "Pat0 L." in sheets.text and "Pat39 L." in sheets.text
        finally:
            again.dispose()
    finally:
        drop(restored_url)


def test_restore_refuses_the_wrong_key_a_changed_photo_and_a_live_database(
        program: Program, database: Database, settings: Settings, keys: tuple[str, Path],
        tmp_path: Path) -> None:
    """Each refusal says what is wrong, and nothing is written over existing data."""
    public, identity = keys
    (settings.photos / "ab").mkdir(parents=True)
    (settings.photos / "ab" / "door.jpg").write_bytes(_jpeg())
    target = tmp_path / "b.age"
    backup(settings.database_url, target, recipients=[public], photos=settings.photos)

    stranger = tmp_path / "stranger.txt"
    stranger.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    with pytest.raises(BackupError, match="cannot decrypt"):
        restore(target, stranger, f"sqlite:///{tmp_path / 'x.db'}", tmp_path / "p1")
    assert not (tmp_path / "x.db").exists()

    if settings.is_sqlite:
        live = tmp_path / "live.db"
        live.write_bytes(b"live data")
        with pytest.raises(BackupError, match="already exists"):
            restore(target, identity, f"sqlite:///{live}", tmp_path / "p2")
        assert live.read_bytes() == b"live data"
    else:
        with pytest.raises(BackupError, match="already holds tables"):
            restore(target, identity, settings.database_url, tmp_path / "p2")

    # Someone with the public key swaps a photo inside a backup: the manifest's checksum catches it.
    with open_backup(target, identity) as (folder, manifest):
        assert list(manifest["photos"]) == ["ab/door.jpg"]
        (folder / "photos" / "ab" / "door.jpg").write_bytes(b"changed")
        forged = tmp_path / "forged.tar"
        with tarfile.open(forged, "w") as tar:
            for name in ("database.sqlite" if settings.is_sqlite else "database.pgdump", "manifest.json",
                         "photos/ab/door.jpg"):
                tar.add(folder / name, arcname=name)
    pyrage.encrypt_file(str(forged), str(tmp_path / "forged.age"), [pyrage.x25519.Recipient.from_str(public)])
    with pytest.raises(BackupError, match="does not match its checksum"):
        restore(tmp_path / "forged.age", identity, f"sqlite:///{tmp_path / 'y.db'}", tmp_path / "p3")
    assert not (tmp_path / "y.db").exists() and not (tmp_path / "p3").exists()  # checked before writing

    with pytest.raises(BackupError, match="not an age public key"):
        backup(settings.database_url, tmp_path / "c.age", recipients=["ssh-rsa AAAA"])


def test_route_sheets_print_from_the_backup_with_the_app_down(
        program: Program, database: Database, settings: Settings, keys: tuple[str, Path],
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`delivery sheets --from-backup FILE --identity KEY --date D` needs no database and no server:
    one self-contained HTML page with every route's stops, access notes and packing list."""
    if not settings.is_sqlite:
        pytest.skip("a PostgreSQL dump needs a server to restore into: `delivery restore` first")
    public, identity = keys
    with database.writer() as db:
        make_day(db, program, date=DAY, stops=[[StopSpec("Rosa", "Diaz", access_notes="gate code 1234")],
                                               [StopSpec("Minh", "Tran", floor=3)]])
        db.commit()
    target = tmp_path / "latest.age"
    backup(settings.database_url, target, recipients=[public])
    database.dispose()
    Path(make_url(settings.database_url).database).unlink()  # type: ignore[arg-type]  # the app is down

    out = tmp_path / "sheets.html"
    assert main(["sheets", "--from-backup", str(target), "--identity", str(identity),
                 "--date", DAY.isoformat(), "--out", str(out)]) == 0
    html = out.read_text()
    assert "Route sheets · Tuesday 1 December" in html
    assert "Rosa D." in html and "gate code 1234" in html and "Minh T." in html and "floor 3" in html
    assert "<style>" in html and ".route-sheet" in html  # prints with its styles, no server

    assert main(["sheets", "--from-backup", str(target), "--identity", str(identity),
                 "--date", "2026-12-08"]) == 0
    assert "No published routes on this day" in capsys.readouterr().out


def test_production_refuses_an_unsafe_configuration() -> None:
    """R11.1: each unsafe setting is named with what to do; a safe one starts."""
    safe = Settings(production=True, base_url="https://delivery.example.org", secret_key="k" * 40,
                    database_url="postgresql+psycopg://app@db.example.org/delivery?sslmode=verify-full",
                    backup_recipients="age1example")
    assert production_problems(safe) == []
    unsafe = msgspec.structs.replace(safe, base_url="http://delivery.example.org", secret_key="test-secret",
                                     demo=True, webhook_allow_loopback=True, backup_recipients="",
                                     database_url="postgresql+psycopg://app@db.example.org/delivery")
    said = " ".join(production_problems(unsafe))
    for expected in ("https://", "DELIVERY_SECRET_KEY", "DELIVERY_DEMO", "LOOPBACK",
                     "sslmode=verify-full", "DELIVERY_BACKUP_RECIPIENTS"):
        assert expected in said
    assert production_problems(msgspec.structs.replace(unsafe, production=False)) == []
    example = msgspec.structs.replace(safe, secret_key="CHANGE-ME-to-a-long-random-string-of-40-chars")
    assert "DELIVERY_SECRET_KEY" in " ".join(production_problems(example))


@pytest.mark.req("R11.1")
def test_serve_refuses_to_start_unsafe_in_production(monkeypatch: pytest.MonkeyPatch, database_url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """`delivery serve` in production mode with http:// and a short secret exits 2 before serving."""
    monkeypatch.setenv("DELIVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("DELIVERY_PRODUCTION", "true")
    monkeypatch.setenv("DELIVERY_SECRET_KEY", "short")
    monkeypatch.setenv("DELIVERY_BASE_URL", "http://delivery.example.org")
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "https://" in err and "DELIVERY_SECRET_KEY" in err


@pytest.mark.req("R11.3")
def test_a_database_behind_the_code_or_damaged_is_not_served(tmp_path: Path) -> None:
    """Start-up compares the database's migration with the code's and runs quick_check on SQLite."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    assert schema_problems(url) == []
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        pages = conn.execute(text("PRAGMA page_count")).scalar()
    engine.dispose()
    assert any("run `delivery db upgrade`" in p for p in schema_problems(url))

    with (tmp_path / "d.db").open("r+b") as f:  # scribble over the middle of the file
        f.seek(4096 * (pages // 2))
        f.write(b"\xff" * 4096 * 2)
    said = " ".join(schema_problems(url))
    assert "quick_check" in said or "malformed" in said


def _jpeg() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 60)).save(out, format="JPEG")
    return out.getvalue()

