"""Rate limits and concurrency limits (R1.4, R6): the `limits` library's fixed-window strategy over a
storage in our own database, so one limit holds across every app process, on SQLite and PostgreSQL,
and its windows follow the injected clock (`settings.clock`), not the wall clock.

Each limiter has its own store (a column of the counters table): the login limiter and the API
limiter never share a counter (R6.3)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from delivery.models import RateLimitCounter
from delivery.platform.clock import Clock
from delivery.platform.db import Database
from delivery.platform.errors import ConflictError

MAX_KEY = 200


class DatabaseStorage(Storage):
    """A `limits` storage: one row per (store, key), counted with one atomic upsert, so two processes
    hitting the same key at once both count."""

    STORAGE_SCHEME = ["delivery+database"]

    def __init__(self, database: Database, clock: Clock, store: str) -> None:
        super().__init__()
        self.database, self.clock, self.store = database, clock, store

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._now()
        table = RateLimitCounter.__table__
        insert = (sqlite.insert if self.database.is_sqlite else postgresql.insert)(table)
        expired = table.c.expires_at <= now  # the old window is over: this hit opens a new one
        statement = insert.values(store=self.store, key=key[:MAX_KEY], hits=amount,
                                  expires_at=now + expiry).on_conflict_do_update(
            index_elements=[table.c.store, table.c.key],
            set_={"hits": case((expired, amount), else_=table.c.hits + amount),
                  "expires_at": case((expired, now + expiry), else_=table.c.expires_at)},
        ).returning(table.c.hits)
        with self.database.writer() as db:
            hits = db.execute(statement).scalar_one()
            if hits == amount:  # a window opened: forget the ones that are over, so the table stays small
                db.execute(delete(RateLimitCounter).where(RateLimitCounter.expires_at <= now))
            db.commit()
        return int(hits)

    def _row(self, key: str) -> RateLimitCounter | None:
        with self.database.reader() as db:
            row = db.get(RateLimitCounter, (self.store, key[:MAX_KEY]))
        return row if row is not None and row.expires_at > self._now() else None

    def get(self, key: str) -> int:
        row = self._row(key)
        return row.hits if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return row.expires_at if row else self._now()

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self.database.writer() as db:
            count = db.execute(delete(RateLimitCounter).where(RateLimitCounter.store == self.store)).rowcount
            db.commit()
        return count

    def clear(self, key: str) -> None:
        with self.database.writer() as db:
            db.execute(delete(RateLimitCounter).where(RateLimitCounter.store == self.store,
                                                      RateLimitCounter.key == key[:MAX_KEY]))
            db.commit()

    def release(self, key: str, amount: int = 1) -> None:
        """Give back what `incr` took (a concurrency slot, when the work ends)."""
        table = RateLimitCounter.__table__
        with self.database.writer() as db:
            db.execute(table.update().where(table.c.store == self.store, table.c.key == key[:MAX_KEY],
                                            table.c.hits > 0).values(hits=table.c.hits - amount))
            db.commit()



@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_after_s: int  # seconds until the window ends (the Retry-After of a refusal)

    def headers(self) -> dict[str, str]:
        """RateLimit-* (draft-ietf-httpapi-ratelimit-headers) and, on a refusal, Retry-After."""
        values = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
                  "RateLimit-Reset": str(self.reset_after_s)}
        if not self.allowed:
            values["Retry-After"] = str(self.reset_after_s)
        return values


class Limiter:
    """One limiter (login, api, busy) over its own store."""

    def __init__(self, database: Database, clock: Clock, store: str) -> None:
        self.storage = DatabaseStorage(database, clock, store)
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.clock = clock

    def _verdict(self, item: RateLimitItem, allowed: bool, identifiers: tuple[str, ...]) -> Verdict:
        stats = self.strategy.get_window_stats(item, *identifiers)
        reset_after = max(math.ceil(stats.reset_time - self.clock.now().timestamp()), 1)
        return Verdict(allowed, item.amount, stats.remaining, reset_after)

    def hit(self, rule: str, *identifiers: str) -> Verdict:
        """Count one request against `rule` ("10/minute", "5 per 15 minutes") for these identifiers."""
        item = parse(rule)
        return self._verdict(item, self.strategy.hit(item, *identifiers), identifiers)

    def peek(self, rule: str, *identifiers: str) -> Verdict:
        """Whether one more request would be allowed, counting nothing."""
        item = parse(rule)
        return self._verdict(item, self.strategy.test(item, *identifiers), identifiers)

    def clear(self, rule: str, *identifiers: str) -> None:
        self.storage.clear(parse(rule).key_for(*identifiers))


class Busy(ConflictError):
    """The same expensive work is already running for this person (R6.4); try again when it ends."""

    default_code = "busy"


@contextmanager
def one_at_a_time(limiter: Limiter, what: str, key: str, *, time_limit_s: int) -> Iterator[None]:
    """Run the body only if no other process runs `what` for `key`. The slot is given back at the
    end, and expires after `time_limit_s` by itself if the process holding it dies."""
    item = parse(f"1 per {time_limit_s} seconds")
    if not limiter.strategy.hit(item, what, key):
        limiter.storage.release(item.key_for(what, key))
        raise Busy(f"{what} is already running for you; try again when it has finished.")
    try:
        yield
    finally:
        limiter.storage.release(item.key_for(what, key))


def stores(database: Database, clock: Clock) -> dict[str, Limiter]:
    """The app's limiters, each on its own store."""
    return {name: Limiter(database, clock, name) for name in ("login", "api", "busy")}

