#!/usr/bin/env python
"""Routing benchmark: our planner on Solomon and produce-box days, against PyVRP and VROOM.

Each solve runs in a fresh process, one at a time, so time and peak memory are
its own.  Every plan of ours is re-checked by ``delivery.routing.check``.  With
the ``bench`` extra installed (pyvrp, pyvroom) the same instances are solved by
PyVRP and VROOM at the same limit, and our cost is printed as a ratio to theirs.

    scripts/bench_routing.py                              # everything (long)
    scripts/bench_routing.py --only solomon --time-limit 5 --instances C101,R101
    scripts/bench_routing.py --only realistic --sizes 200,500 --time-limit 60
    scripts/bench_routing.py --no-compare --out bench-results/quick.json
    scripts/gen_realistic.py --n 200,500 --seed 2 --out-dir bench-results/days
    scripts/bench_routing.py --only realistic --realistic-dir bench-results/days --day-seed 2 \
        --sizes 200,500

Solomon distances are Euclidean; the gap to the proven optimum
(``bks.csv`` rows ``distance_min_trunc1``) compares our plan's distance under
the same one-decimal truncation per arc.  Produce-box days are scored by total
travel time (seconds, on the same integer matrix for every solver).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import itertools
import json
import math
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "bench"


def _rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    helpers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + helpers) / 1024, 1)


def _load(kind: str, path: str):
    from delivery.routing import pbox, solomon

    if kind == "solomon":
        return solomon.read(path)
    return pbox.to_problem(json.loads(Path(path).read_text())), None


def _score(kind: str, problem, coords, routes: list[list[str]]) -> dict:
    """Distance/travel of routes given as job ids per vehicle (None for unused vehicles)."""
    from delivery.routing import solomon

    if kind == "solomon":
        numbered = [[int(j) for j in r] for r in routes if r]
        return {
            "distance": round(solomon.route_distance(numbered, coords), 3),
            "distance_trunc1": round(solomon.route_distance(numbered, coords, trunc1=True), 1),
        }
    return {}


def run_ours(kind: str, path: str, time_limit: float, warm_start: str) -> dict:
    """Our planner on one instance (in a fresh process)."""
    from delivery.routing import check, solve

    problem, coords = _load(kind, path)
    began = time.perf_counter()
    solution = solve(problem, time_limit=time_limit, warm_start=warm_start)
    seconds = time.perf_counter() - began
    violations = check(problem, solution)
    routes = [[v.job for v in r.visits] for r in solution.routes]
    out = {
        "solver": "ours",
        "vehicles": len(routes),
        "travel": solution.travel,
        "unassigned": len(solution.unassigned),
        "feasible": not violations,
        "violations": [v.message for v in violations[:3]],
        "first_solution_s": solution.stats.first_solution_seconds,
        "seconds": round(seconds, 2),
        "warm_start": solution.stats.warm_start,
        "peak_mb": _rss_mb(),
    }
    out.update(_score(kind, problem, coords, routes))
    return out


def run_pyvrp(kind: str, path: str, time_limit: float) -> dict:
    """PyVRP alone, at the same limit, on the same integer matrices."""
    from delivery.routing import warmstart
    from delivery.routing.instance import compile_problem

    problem, coords = _load(kind, path)
    began = time.perf_counter()
    inst = compile_problem(problem)
    jobs = list(range(inst.n_jobs))
    data = warmstart.payload(inst, jobs, list(inst.allowed), [10**9] * len(jobs))
    routes = warmstart.run(data, time.time() + time_limit - (time.perf_counter() - began), 0, None)
    seconds = time.perf_counter() - began
    by_vehicle = warmstart.to_vehicle_routes(data, routes)
    return _other_solver_result("pyvrp", inst, problem, kind, coords, by_vehicle, seconds)


def run_vroom(kind: str, path: str, time_limit: float) -> dict:
    """VROOM (pyvroom), one thread, same limit (it may overrun in construction)."""
    import datetime

    import numpy as np
    import vroom

    from delivery.routing.instance import compile_problem

    problem, coords = _load(kind, path)
    began = time.perf_counter()
    inst = compile_problem(problem)
    vr = vroom.Input()
    vr.set_durations_matrix("car", np.asarray(inst.durations, dtype=np.uint32))
    vr.set_costs_matrix("car", np.asarray(inst.costs, dtype=np.uint32))
    for j, _job in enumerate(problem.jobs):
        windows = [vroom.TimeWindow(int(inst.early[j]), int(inst.late[j]))]
        vr.add_job(
            vroom.Job(
                id=j + 1,
                location=j,
                default_service=int(inst.service[j]),
                delivery=[int(inst.boxes[j])],
                time_windows=windows,
            )
        )
    for v, vehicle in enumerate(problem.vehicles):
        vr.add_vehicle(
            vroom.Vehicle(
                id=v + 1,
                start=inst.start_node[v],
                end=inst.end_node[v],
                capacity=[vehicle.capacity],
                time_window=vroom.TimeWindow(vehicle.shift_start, vehicle.shift_end),
            )
        )
    sol = vr.solve(exploration_level=5, nb_threads=1, timeout=datetime.timedelta(seconds=time_limit))
    seconds = time.perf_counter() - began
    routes: dict[int, list[int]] = {}
    for row in sol.to_dict()["routes"]:
        steps = [s["id"] - 1 for s in row["steps"] if s["type"] == "job"]
        if steps:
            routes[row["vehicle"] - 1] = steps
    return _other_solver_result("vroom", inst, problem, kind, coords, routes, seconds)


def _other_solver_result(solver, inst, problem, kind, coords, routes, seconds):  # type: ignore[no-untyped-def]
    """A comparison solver's routes (vehicle index -> job indices) scored like ours."""
    travel = 0
    for v, route in routes.items():
        nodes = [inst.start_node[v], *route, inst.end_node[v]]
        travel += sum(int(inst.durations[a, b]) for a, b in itertools.pairwise(nodes))
    ids = [[problem.jobs[j].id for j in r] for r in routes.values()]
    out = {
        "solver": solver,
        "vehicles": len(ids),
        "travel": travel,
        "unassigned": inst.n_jobs - sum(map(len, ids)),
        "seconds": round(seconds, 2),
        "peak_mb": _rss_mb(),
    }
    out.update(_score(kind, problem, coords, ids))
    return out


def isolated(fn, *args) -> dict:
    """Run ``fn(*args)`` in a fresh process (fork), so memory and time are its own."""
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        try:
            return pool.submit(fn, *args).result()
        except Exception as exc:
            return {"error": repr(exc)}


def bks() -> dict[str, float]:
    rows = csv.DictReader((SHARED / "solomon" / "bks.csv").open())
    return {r["instance"]: float(r["distance"]) for r in rows if r["objective_kind"] == "distance_min_trunc1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["solomon", "realistic"])
    parser.add_argument("--instances", help="comma-separated Solomon names (default: all 56)")
    parser.add_argument("--sizes", default="50,200,500,1000", help="realistic day sizes")
    parser.add_argument("--realistic-dir", default=str(SHARED / "realistic"))
    parser.add_argument("--day-seed", type=int, default=1, help="pbox-n{N}-s{SEED}.json to use")
    parser.add_argument("--time-limit", default=None, help="seconds; comma list for several")
    parser.add_argument("--no-compare", action="store_true", help="skip PyVRP and VROOM")
    parser.add_argument("--no-vroom", action="store_true", help="skip VROOM only")
    parser.add_argument("--warm-start", default="auto", choices=["auto", "none", "pyvrp"])
    parser.add_argument("--out", default=None, help="JSON output (default bench-results/...)")
    args = parser.parse_args(argv)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = Path(args.out or ROOT / "bench-results" / f"routing-{stamp}.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []

    def save() -> None:
        out_path.write_text(json.dumps(results, indent=1))

    def compare(kind: str, path: str, limit: float, entry: dict) -> None:
        if args.no_compare:
            return
        entry["pyvrp"] = isolated(run_pyvrp, kind, path, limit)
        if not args.no_vroom:
            entry["vroom"] = isolated(run_vroom, kind, path, limit)

    if args.only in (None, "solomon"):
        best = bks()
        names = args.instances.split(",") if args.instances else sorted(best)
        limits = [float(x) for x in (args.time_limit or "30,5").split(",")]
        for limit in limits:
            for name in names:
                path = str(SHARED / "solomon" / f"{name}.txt")
                entry = {"set": "solomon", "instance": name, "time_limit": limit}
                entry["ours"] = ours = isolated(run_ours, "solomon", path, limit, args.warm_start)
                if "distance_trunc1" in ours:
                    ours["gap_pct"] = round(100 * (ours["distance_trunc1"] / best[name] - 1), 3)
                compare("solomon", path, limit, entry)
                for other in ("pyvrp", "vroom"):
                    if "distance" in entry.get(other, {}) and "distance" in ours:
                        entry[f"ratio_{other}"] = round(ours["distance"] / entry[other]["distance"], 4)
                results.append(entry)
                save()
                print(_line(entry), flush=True)
            _summary([r for r in results if r["set"] == "solomon" and r["time_limit"] == limit])

    if args.only in (None, "realistic"):
        limits = [float(x) for x in (args.time_limit or "60").split(",")]
        for limit in limits:
            for size in args.sizes.split(","):
                name = f"pbox-n{size}-s{args.day_seed}"
                path = str(Path(args.realistic_dir) / f"{name}.json")
                entry = {"set": "realistic", "instance": name, "time_limit": limit}
                entry["ours"] = ours = isolated(run_ours, "realistic", path, limit, args.warm_start)
                compare("realistic", path, limit, entry)
                for other in ("pyvrp", "vroom"):
                    theirs = entry.get(other, {})
                    if theirs.get("travel") and "travel" in ours:
                        entry[f"ratio_{other}"] = round(ours["travel"] / theirs["travel"], 4)
                results.append(entry)
                save()
                print(_line(entry), flush=True)
        _scaling([r for r in results if r["set"] == "realistic"])
    print(f"results: {out_path}")
    return 0


def _line(e: dict) -> str:
    o = e["ours"]
    if "error" in o:
        return f"{e['instance']:>14} {e['time_limit']:>5.0f}s  ERROR {o['error']}"
    score = o.get("distance", o.get("travel"))
    parts = [
        f"{e['instance']:>14} {e['time_limit']:>5.0f}s",
        f"veh {o['vehicles']:>3}",
        f"cost {score:>10}",
        f"gap {o['gap_pct']:>6.2f}%" if "gap_pct" in o else "",
        f"first {o['first_solution_s']}s",
        f"used {o['seconds']}s",
        f"mem {o['peak_mb']}MB",
        "ok" if o["feasible"] else "INFEASIBLE",
        f"unassigned {o['unassigned']}",
        f"start {o['warm_start']}",
    ]
    for other in ("pyvrp", "vroom"):
        if f"ratio_{other}" in e:
            parts.append(f"/{other} {e[f'ratio_{other}']:.4f}")
    return "  ".join(p for p in parts if p)


def _summary(rows: list[dict]) -> None:
    gaps = [r["ours"]["gap_pct"] for r in rows if "gap_pct" in r["ours"]]
    if not gaps:
        return
    bad = [r["instance"] for r in rows if not r["ours"].get("feasible")]
    line = (
        f"Solomon at {rows[0]['time_limit']:.0f}s: {len(gaps)} instances, mean gap "
        f"{statistics.mean(gaps):.3f}%, max {max(gaps):.3f}%, infeasible {bad or 'none'}"
    )
    for other in ("pyvrp", "vroom"):
        ratios = [r[f"ratio_{other}"] for r in rows if f"ratio_{other}" in r]
        if ratios:
            line += f"; ours/{other} mean {statistics.mean(ratios):.4f}"
    print(line, flush=True)


def _scaling(rows: list[dict]) -> None:
    print("size  first_solution_s  peak_mb  ours/pyvrp  ours/vroom")
    for r in rows:
        o = r["ours"]
        print(
            f"{r['instance']:>14}  {o.get('first_solution_s')!s:>8}  {o.get('peak_mb')!s:>8}"
            f"  {r.get('ratio_pyvrp', '-')!s:>8}  {r.get('ratio_vroom', '-')!s:>8}"
        )
    sized = [
        (int(r["instance"].split("-n")[1].split("-")[0]), r["ours"])
        for r in rows
        if r["ours"].get("first_solution_s")
    ]
    if len(sized) >= 2:
        (n0, a), (n1, b) = min(sized, key=lambda x: x[0]), max(sized, key=lambda x: x[0])
        if n1 > n0:
            grow = math.log(n1 / n0)
            t = math.log(b["first_solution_s"] / a["first_solution_s"]) / grow
            m = math.log(b["peak_mb"] / a["peak_mb"]) / grow
            print(f"growth {n0}->{n1} stops: first solution ~ n^{t:.2f}, peak memory ~ n^{m:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
