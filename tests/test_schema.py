"""The database is what the models say, and SQLite is configured to keep what it acknowledged."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from delivery.models import Base, Organization
from delivery.platform.db import Database


def test_migrations_produce_the_models_schema(database: Database) -> None:
    """alembic upgrade head leaves no difference from the SQLAlchemy models."""
    with database.write_engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = [d for d in compare_metadata(context, Base.metadata) if "alembic_version" not in str(d)]
    assert diff == []


@pytest.mark.req("R7.2")
def test_sqlite_connections_are_wal_and_full_sync(database: Database) -> None:
    """Every SQLite connection, reader or writer, runs WAL with synchronous=FULL and foreign keys."""
    if not database.is_sqlite:
        pytest.skip("SQLite only")
    for engine in (database.write_engine, database.read_engine):
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_organization_names_are_unique(database: Database) -> None:
    """Two organizations cannot share a name (so imports can name their clinic)."""
    with database.writer() as db:
        db.add_all([Organization(name="Same", kind="clinic"), Organization(name="Same", kind="clinic")])
        with pytest.raises(IntegrityError):
            db.flush()
