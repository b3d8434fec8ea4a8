#!/usr/bin/env python
"""Routing benchmark: our planner on Solomon and produce-box days, against PyVRP and VROOM.

Each solve runs in a fresh process, one at a time.  Equal footing: our planner
uses two processes (OR-Tools plus a forked PyVRP helper, two seeds), so PyVRP
runs two seeds in two processes (best kept) and VROOM runs two threads.  Every
plan, ours and the peers', is re-timed and checked by ``delivery.routing.check``
with its unassigned stops counted; peak memory is per process (the largest one),
never a sum over forked processes.  With the ``bench`` extra installed (pyvrp,
pyvroom) our cost is printed as a ratio to theirs.

On produce-box days the planner also runs with each "spread work across
volunteers" level of a program (off / some / strong, as ``delivery plan`` uses
them): the spread of stops and hours across drivers, and travel against off.

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


CORES = 2  # processes (or threads) each solver gets: ours is OR-Tools plus one PyVRP helper


def _own_mb() -> float:
    """This process's peak resident memory."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _children_mb() -> float:
    """The largest peak of this process's finished children (Linux reports the max, not a sum)."""
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


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


def checked(problem, routes: dict[int, list[int]]) -> dict:
    """Re-time any solver's routes (vehicle index -> job indices) and check them with our checker."""
    from delivery.routing import Solution, Unassigned, check
    from delivery.routing.instance import compile_problem, schedule
    from delivery.routing.model import Reason

    inst = compile_problem(problem)
    timed, broken = [], 0
    for v, route in sorted(routes.items()):
        plan = schedule(inst, v, route, problem.objective.depart_late)
        if plan is None:
            broken += 1
        else:
            timed.append(plan)
    served = {visit.job for route in timed for visit in route.visits}
    left = tuple(Unassigned(job=j.id, reason=Reason.NO_TIME_LEFT) for j in problem.jobs if j.id not in served)
    solution = Solution(routes=tuple(timed), unassigned=left)
    violations = check(problem, solution)
    return {
        "solution": solution,
        "feasible": broken == 0 and not violations,
        "broken_routes": broken,
        "violations": [v.message for v in violations[:3]],
        "unassigned": len(left),
    }


def spread(problem, solution) -> dict:
    """How evenly the drivers share the day: stops and hours per driver, idle drivers at zero."""
    stops = {v.id: 0 for v in problem.vehicles}
    hours = {v.id: 0.0 for v in problem.vehicles}
    for route in solution.routes:
        stops[route.vehicle] = len(route.visits)
        hours[route.vehicle] = route.duration / 3600
    s, h = list(stops.values()), list(hours.values())
    return {
        "drivers": len(s),
        "drivers_used": sum(1 for n in s if n),
        "stops_min": min(s, default=0),
        "stops_max": max(s, default=0),
        "stops_sd": round(statistics.pstdev(s), 2) if s else 0,
        "hours_min": round(min(h, default=0), 2),
        "hours_max": round(max(h, default=0), 2),
        "hours_sd": round(statistics.pstdev(h), 2) if h else 0,
    }


def run_ours(kind: str, path: str, time_limit: float, warm_start: str, level: str | None = None) -> dict:
    """Our planner on one instance (in a fresh process); ``level``: a program's spread-work setting."""
    import msgspec

    from delivery.routing import Objective, solve

    problem, coords = _load(kind, path)
    if level is not None:
        from delivery.plans.planning import SPREAD

        weight, hours = SPREAD[level]
        problem = msgspec.structs.replace(problem, objective=Objective(spread=weight, spread_hours=hours))
    began = time.perf_counter()
    solution = solve(problem, time_limit=time_limit, warm_start=warm_start)
    seconds = time.perf_counter() - began
    index = {v.id: k for k, v in enumerate(problem.vehicles)}
    jobs = {j.id: k for k, j in enumerate(problem.jobs)}
    verdict = checked(problem, {index[r.vehicle]: [jobs[v.job] for v in r.visits] for r in solution.routes})
    routes = [[v.job for v in r.visits] for r in solution.routes]
    out = {
        "solver": "ours",
        "processes": CORES,
        "vehicles": len(routes),
        "travel": solution.travel,
        "unassigned": len(solution.unassigned),
        "feasible": verdict["feasible"],
        "violations": verdict["violations"],
        "first_solution_s": solution.stats.first_solution_seconds,
        "seconds": round(seconds, 2),
        "warm_start": solution.stats.warm_start,
        "peak_mb": _own_mb(),
        "helper_peak_mb": _children_mb(),
        "spread": spread(problem, solution),
    }
    out.update(_score(kind, problem, coords, routes))
    return out


def _pyvrp_seed(kind: str, path: str, deadline: float, seed: int) -> dict:
    """One PyVRP seed (in its own process): its routes and its own peak memory."""
    from delivery.routing import warmstart
    from delivery.routing.instance import compile_problem

    problem, _ = _load(kind, path)
    inst = compile_problem(problem)
    jobs = list(range(inst.n_jobs))
    data = warmstart.payload(inst, jobs, list(inst.allowed), [10**9] * len(jobs))
    routes = warmstart.run(data, deadline, seed, None)
    return {"routes": warmstart.to_vehicle_routes(data, routes), "peak_mb": _own_mb()}


def run_pyvrp(kind: str, path: str, time_limit: float) -> dict:
    """PyVRP alone, as many seeds in parallel processes as our planner uses, on the same matrices."""
    problem, coords = _load(kind, path)
    began = time.perf_counter()
    deadline = time.time() + time_limit
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(CORES, mp_context=ctx) as pool:
        runs = list(pool.map(_pyvrp_seed, *zip(*[(kind, path, deadline, seed) for seed in range(CORES)],
                                                strict=True)))
    seconds = time.perf_counter() - began
    results = [(checked(problem, run["routes"]), run) for run in runs]
    # the best plan of the seeds: fewest unassigned stops, then least travel
    verdict, _ = min(results, key=lambda r: (not r[0]["feasible"], r[0]["unassigned"],
                                             r[0]["solution"].travel))
    return _peer_result("pyvrp", problem, kind, coords, verdict, seconds, max(r["peak_mb"] for r in runs))


def run_vroom(kind: str, path: str, time_limit: float) -> dict:
    """VROOM (pyvroom) with as many threads as our planner has processes (it may overrun its limit)."""
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
    sol = vr.solve(exploration_level=5, nb_threads=CORES, timeout=datetime.timedelta(seconds=time_limit))
    seconds = time.perf_counter() - began
    routes: dict[int, list[int]] = {}
    for row in sol.to_dict()["routes"]:
        steps = [s["id"] - 1 for s in row["steps"] if s["type"] == "job"]
        if steps:
            routes[row["vehicle"] - 1] = steps
    return _peer_result("vroom", problem, kind, coords, checked(problem, routes), seconds, _own_mb())


def _peer_result(solver, problem, kind, coords, verdict, seconds, peak_mb):  # type: ignore[no-untyped-def]
    """A peer's checked plan, scored like ours."""
    solution = verdict["solution"]
    ids = [[v.job for v in r.visits] for r in solution.routes]
    out = {
        "solver": solver,
        "processes": CORES,
        "vehicles": len(ids),
        "travel": solution.travel,
        "unassigned": verdict["unassigned"],
        "feasible": verdict["feasible"],
        "broken_routes": verdict["broken_routes"],
        "violations": verdict["violations"],
        "seconds": round(seconds, 2),
        "peak_mb": peak_mb,
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


def fairness(path: str, limit: float, warm_start: str) -> dict:
    """The day planned at each spread-work level: the spread of work, and travel against off."""
    levels = {level: isolated(run_ours, "realistic", path, limit, warm_start, level)
              for level in ("off", "some", "strong")}
    base = levels["off"].get("travel")
    out = {}
    for level, run in levels.items():
        if "error" in run:
            out[level] = run
            continue
        out[level] = {**run["spread"], "travel": run["travel"], "feasible": run["feasible"],
                      "unassigned": run["unassigned"],
                      "travel_vs_off": round(run["travel"] / base, 4) if base else None}
    return out


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
    parser.add_argument("--no-fairness", action="store_true",
                        help="skip the spread-work levels (off / some / strong) on produce-box days")
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
                if not args.no_fairness:
                    entry["fairness"] = fairness(path, limit, args.warm_start)
                for other in ("pyvrp", "vroom"):
                    theirs = entry.get(other, {})
                    if theirs.get("travel") and "travel" in ours:
                        entry[f"ratio_{other}"] = round(ours["travel"] / theirs["travel"], 4)
                results.append(entry)
                save()
                print(_line(entry), flush=True)
                for level, f in entry.get("fairness", {}).items():
                    print(f"{'':>14} spread {level:>6}: {json.dumps(f)}", flush=True)
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
        f"mem {o['peak_mb']}MB (helper {o.get('helper_peak_mb')}MB)",
        "ok" if o["feasible"] else "INFEASIBLE",
        f"unassigned {o['unassigned']}",
        f"start {o['warm_start']}",
    ]
    for other in ("pyvrp", "vroom"):
        if f"ratio_{other}" in e:
            theirs = e[other]
            check = "ok" if theirs.get("feasible") else "INFEASIBLE"
            parts.append(f"/{other} {e[f'ratio_{other}']:.4f} ({check}, "
                         f"unassigned {theirs.get('unassigned')})")
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
