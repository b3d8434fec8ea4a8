"""Engines and sessions: SQLite done right (WAL, synchronous=FULL, one writer) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class Database:
    """The app's two doors to the database: `reader()` for reads, `writer()` for writes.

    On SQLite every write goes through one pooled connection that begins with BEGIN IMMEDIATE:
    writers queue in Python instead of fighting over SQLite's lock (measured p99 ~1 s unserialised
    against 30-60 ms serialised on two cores), and a read never has to upgrade to a write lock.
    On PostgreSQL both doors are the same engine.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            if url.startswith("sqlite:///") and not url.endswith(":memory:"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=8)
        else:
            self.write_engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
            self.read_engine = self.write_engine
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False, info={"reads_only": True})
        self._request = sessionmaker(self.write_engine, class_=WriteThenRead, expire_on_commit=False,
                                     reader=self.read_engine)

    @contextmanager
    def writer(self) -> Iterator[Session]:
        """A session for a unit of work that writes; the service commits, anything else rolls back."""
        with self._writer() as session:
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session that only reads: a flush (an INSERT, UPDATE or DELETE through it) is refused."""
        with self._reader() as session:
            yield session

    @contextmanager
    def write_then_read(self) -> Iterator[Session]:
        """A request's session that writes: the single writer from its first query to its first
        commit or rollback, a reader afterwards (see WriteThenRead)."""
        with self._request() as session:
            yield session

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


class WriteThenRead(Session):
    """The writer until the first commit or rollback, then a reader.

    A request that writes takes SQLite's single writer at its first query (so the reads that decide
    the write see what the write will change) and lets go of it when it commits or rolls back; what
    it reads afterwards (the answer it renders) goes through a reader, so the next writer need not
    wait for a page to render. Do the slow work (hashing, parsing, matrices) before the first query.
    """

    def __init__(self, *args: object, reader: Engine, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._read_engine = reader

    @property
    def holds_writer(self) -> bool:
        return self.bind is not self._read_engine and self.in_transaction()

    def commit(self) -> None:
        super().commit()
        self.bind = self._read_engine

    def rollback(self) -> None:
        super().rollback()
        self.bind = self._read_engine


@event.listens_for(Session, "before_flush")
def _refuse_writes_through_a_reader(session: Session, _context: object, _instances: object) -> None:
    if session.info.get("reads_only") and (session.new or session.dirty or session.deleted):
        raise RuntimeError("This session only reads (a GET request, or Database.reader()): "
                           "write through Database.writer() instead.")


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> Engine:
    engine = create_engine(url, poolclass=QueuePool, pool_size=pool_size, max_overflow=0,
                           pool_timeout=30, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # SQLAlchemy, not pysqlite, decides when to BEGIN
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # An acknowledged confirmation must survive power loss, so FULL rather than NORMAL.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(begin)

    return engine


def upgrade(url: str) -> None:
    """Bring the database to the newest schema (alembic upgrade head)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
