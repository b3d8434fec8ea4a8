"""The `delivery` command as an operator uses it: migrate, mint a token, back up."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from litestar.testing import TestClient

from delivery.cli import main
from tests.builders import referral_body


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("DELIVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("DELIVERY_SECRET_KEY", "test-secret")
    monkeypatch.setenv("DELIVERY_GEOCODER", "none")
    return database_url


def test_token_create_prints_a_token_that_refers_a_patient(env, program, app, capsys) -> None:
    """`delivery token create --user EMAIL` prints a token the API accepts; only its hash is kept."""
    assert main(["token", "create", "--user", program.clinic1]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("dlv_")
    with TestClient(app=app, base_url="https://testserver.local") as client:
        response = client.post("/api/v1/referrals", json=referral_body(),
                               headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201


def test_token_for_an_unknown_user_is_a_clear_error(env, program, capsys) -> None:
    """An unknown email exits 2 with a message saying what to do."""
    assert main(["token", "create", "--user", "nobody@example.org"]) == 2
    assert "No account for nobody@example.org" in capsys.readouterr().err


def test_db_upgrade_is_repeatable(env, capsys) -> None:
    """Migrating an up-to-date database changes nothing and says so."""
    assert main(["db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_backup_copies_a_consistent_sqlite_database(env, program, tmp_path, capsys) -> None:
    """`delivery backup PATH` writes a copy that passes integrity_check and holds the data (not R12.1
    in full: that backup is taken while confirmations keep committing, and restored)."""
    if not env.startswith("sqlite"):
        pytest.skip("SQLite's backup API; PostgreSQL has its own test below")
    target = tmp_path / "backups" / "copy.db"
    assert main(["backup", str(target)]) == 0
    assert "integrity ok" in capsys.readouterr().out
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT count(*) FROM users").fetchone()[0] == 4
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_backup_of_postgres_is_a_pg_dump_archive(env, program, tmp_path, capsys) -> None:
    """On PostgreSQL `delivery backup PATH` writes a pg_dump custom-format archive."""
    if env.startswith("sqlite"):
        pytest.skip("PostgreSQL only")
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    target = tmp_path / "copy.dump"
    assert main(["backup", str(target)]) == 0
    assert target.read_bytes()[:5] == b"PGDMP"


def test_a_bad_date_is_refused_before_anything_runs(env, capsys) -> None:
    """`delivery plan` with a malformed date says how to write it."""
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "1 December"])
    assert exit_info.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
