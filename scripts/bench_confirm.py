#!/usr/bin/env python
"""Open-loop load on POST /api/v1/stops/{id}/confirmations alone, as drivers' phones send it
(issue 10): `scripts/bench_load.py` with no route pages and no burst.

40 simulated drivers send confirmations with fresh Idempotency-Keys plus 10% replays at `--rate`
requests/s against a real server on 127.0.0.1 (SQLite or PostgreSQL); every acknowledged one is
then looked up in the database. Target on the 2-core machine: 50 requests/s with p99 <= 100 ms,
0 errors, 0 duplicates; `--search` finds the highest rate that still holds. Prints one JSON object
(its `steady.confirm` has p50_ms and p99_ms; `errors`, `lost` and `duplicates` beside).

    .venv/bin/python scripts/bench_confirm.py [--db sqlite|postgres] [--rate 50] [--seconds 20]
        [--drivers 40] [--replays 0.1] [--search] [--smoke]

PostgreSQL needs DELIVERY_TEST_POSTGRES_URL (a server URL; the benchmark makes its own database).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import bench_load


def main(argv: list[str] | None = None) -> dict[str, object]:
    return bench_load.main(argv, stop_lists=0.0, seconds=20.0, burst=False)


if __name__ == "__main__":
    main()
