#!/usr/bin/env python
"""Seeded generator of produce-box delivery days (format ``produce-box-vrptw/1``).

Shaped like the program: homes clustered around a few neighbourhood centres in a
15 km square of East Oakland, 1-3 depots (food bank, clinics), ~60 % of stops
with a 2-4 hour window inside a 4-hour shift, 1-3 boxes per stop, service 3-6
minutes or 8-12 where boxes go upstairs (a mobility barrier), a fleet of cars
(8-12 boxes) and vans (24-30) holding about 1.3 times the day's boxes, every
vehicle based at a depot.  Same seed, same day.

    scripts/gen_realistic.py --n 200 --seed 7 > bench-results/pbox-n200-s7.json
    scripts/gen_realistic.py --n 50,200,500,1000 --seed 2 --out-dir bench-results/days
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

LAT0, LON0, BOX_KM = 37.75, -122.18, 15.0
SHIFT_MIN = 240
DEPOT_NAMES = ["food bank", "clinic A", "clinic B"]


def _offset(lat0: float, lon0: float, dx_km: float, dy_km: float) -> tuple[float, float]:
    lat = lat0 + dy_km / 111.32
    lon = lon0 + dx_km / (111.32 * math.cos(math.radians(lat0)))
    return round(lat, 6), round(lon, 6)


def generate(n: int, seed: int) -> dict:
    """One delivery day with ``n`` stops."""
    rng = random.Random(f"pbox-{n}-{seed}")
    half = BOX_KM / 2
    n_centres = rng.randint(8, 12)
    centres = [(rng.uniform(-half, half), rng.uniform(-half, half)) for _ in range(n_centres)]
    n_depots = 1 if n >= 1000 else rng.randint(1, 3) if n > 50 else rng.randint(1, 2)
    depots = []
    for d in range(n_depots):
        lat, lon = _offset(LAT0, LON0, rng.uniform(-4, 4), rng.uniform(-4, 4))
        depots.append({"index": d, "name": DEPOT_NAMES[d], "lat": lat, "lon": lon, "tw": [0, SHIFT_MIN]})

    stops = []
    for k in range(n):
        cx, cy = rng.choice(centres)
        spread = rng.uniform(0.4, 1.5)
        x = max(-half, min(half, rng.gauss(cx, spread)))
        y = max(-half, min(half, rng.gauss(cy, spread)))
        lat, lon = _offset(LAT0, LON0, x, y)
        mobility = rng.random() < 0.3
        demand = rng.choice([1, 2, 2, 2, 3])
        service = rng.randint(8, 12) if mobility else rng.randint(3, 6)
        if rng.random() < 0.6:
            length = rng.choice([120, 150, 180, 210, 240])
            start = rng.choice([s for s in range(0, SHIFT_MIN - length + 1, 30)])
            tw, kind = [start, start + length], "timed"
        else:
            tw, kind = [0, SHIFT_MIN], "open"
        stops.append(
            {
                "id": k + 1,
                "lat": lat,
                "lon": lon,
                "demand": demand,
                "service_min": service,
                "tw": tw,
                "window": kind,
                "mobility_barrier": mobility,
            }
        )

    total = sum(s["demand"] for s in stops)
    vehicles, capacity = [], 0
    while capacity < 1.3 * total:
        van = rng.random() < 0.18
        cap = rng.randint(24, 30) if van else rng.randint(8, 12)
        depot = len(vehicles) % n_depots
        vehicles.append(
            {
                "index": len(vehicles),
                "kind": "van" if van else "car",
                "capacity": cap,
                "start_depot": depot,
                "end_depot": depot,
                "tw": [0, SHIFT_MIN],
            }
        )
        capacity += cap
    return {
        "format": "produce-box-vrptw/1",
        "name": f"pbox-n{n}-s{seed}",
        "seed": seed,
        "generator": {
            "tool": "gen_realistic.py",
            "n": n,
            "seed": seed,
            "lat0": LAT0,
            "lon0": LON0,
            "box_km": BOX_KM,
            "n_centres": n_centres,
        },
        "travel_model": {
            "type": "haversine_x_circuity",
            "earth_radius_km": 6371.0088,
            "circuity": 1.3,
            "speed_kmh": 30.0,
            "time_unit": "min",
        },
        "horizon_min": SHIFT_MIN,
        "depots": depots,
        "vehicles": vehicles,
        "stops": stops,
        "stats": {
            "total_demand": total,
            "fleet_capacity": capacity,
            "timed_share": round(sum(s["window"] == "timed" for s in stops) / max(n, 1), 3),
            "mobility_share": round(sum(s["mobility_barrier"] for s in stops) / max(n, 1), 3),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="200", help="stops; comma list for several days")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out-dir", help="write pbox-n{N}-s{SEED}.json files here")
    args = parser.parse_args(argv)
    for n in (int(x) for x in args.n.split(",")):
        day = generate(n, args.seed)
        text = json.dumps(day, indent=1)
        if args.out_dir:
            path = Path(args.out_dir) / f"{day['name']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(path)
        else:
            print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
