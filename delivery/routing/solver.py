"""The planner: an OR-Tools routing model that holds every rule, searched with guided local search.

``solve(problem, time_limit=...)`` builds the model (boxes, time windows and
shifts, several depots, skills and locks as allowed vehicles, optional jobs
with priority-scaled drop penalties, stop limits, produce ride times,
preferences, balance) and searches it.  When PyVRP is installed, a relaxation is
solved by PyVRP in a side process on the other core while OR-Tools searches;
the better of the two, made to obey every rule (``warmstart.fit_routes``),
seeds a final OR-Tools search.  OR-Tools stays the model of record.

Determinism: with ``max_iterations`` the run is repeatable (PyVRP then runs in
process, OR-Tools stops after that many solutions); with only a time limit, how
far each search gets depends on the machine.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from delivery.routing import warmstart
from delivery.routing.instance import Instance, compile_problem, schedule
from delivery.routing.matrix import TravelMatrix
from delivery.routing.model import Problem, Route, Solution, Stats
from delivery.routing.reasons import explain, idle

Progress = Callable[[Solution], None]


class _Model:
    """The OR-Tools model of the placeable jobs of an instance."""

    def __init__(self, inst: Instance, jobs: list[int], allowed: list[tuple[int, ...]]):
        self.inst = inst
        self.jobs = jobs
        problem = inst.problem
        vehicles = problem.vehicles
        objective = problem.objective
        places = sorted({*inst.start_node, *inst.end_node})
        self.nodes = np.array(jobs + places, dtype=np.int64)  # model node -> instance node
        model_of = {int(node): m for m, node in enumerate(self.nodes)}
        n_vehicles = len(vehicles)
        self.manager = pywrapcp.RoutingIndexManager(
            len(self.nodes),
            n_vehicles,
            [model_of[s] for s in inst.start_node],
            [model_of[e] for e in inst.end_node],
        )
        manager = self.manager
        self.routing = routing = pywrapcp.RoutingModel(manager)

        sub = np.ix_(self.nodes, self.nodes)
        costs = inst.costs[sub]
        durations = inst.durations[sub]
        service = inst.service[self.nodes]
        cost_cb = routing.RegisterTransitMatrix(costs.tolist())
        routing.SetArcCostEvaluatorOfAllVehicles(cost_cb)
        time_matrix = durations + service[:, None]
        time_cb = routing.RegisterTransitMatrix(time_matrix.tolist())
        routing.AddDimension(time_cb, inst.horizon, inst.horizon, False, "time")
        self.time = time_dim = routing.GetDimensionOrDie("time")
        time_dim.SetGlobalSpanCostCoefficient(objective.span_cost)

        demand = inst.boxes[self.nodes]
        load_cb = routing.RegisterUnaryTransitVector(demand.tolist())
        routing.AddDimensionWithVehicleCapacity(load_cb, 0, [v.capacity for v in vehicles], True, "load")

        n_jobs = len(jobs)
        self.penalty = _penalty(inst, costs)
        pinned = any(
            problem.jobs[j].lock is not None and problem.jobs[j].lock.position is not None for j in jobs
        )
        limited = any(v.max_stops is not None for v in vehicles)
        wanted = any(v.min_stops for v in vehicles)
        if pinned or limited or wanted or objective.balance or objective.spread:
            ones = [1] * n_jobs + [0] * len(places)
            stops_cb = routing.RegisterUnaryTransitVector(ones)
            caps = [n_jobs if v.max_stops is None else v.max_stops for v in vehicles]
            routing.AddDimensionWithVehicleCapacity(stops_cb, 0, caps, True, "stops")
            stops = routing.GetDimensionOrDie("stops")
            if objective.balance:
                fair = -(-n_jobs // max(n_vehicles, 1))
                for v in range(n_vehicles):
                    stops.SetCumulVarSoftUpperBound(routing.End(v), fair, objective.balance)
            for v, vehicle in enumerate(vehicles):
                if vehicle.min_stops:  # as costly as leaving a job out: kept unless impossible
                    stops.SetCumulVarSoftLowerBound(routing.End(v), vehicle.min_stops, self.penalty)
                    # OR-Tools skips the costs of an empty route unless told it counts as used
                    routing.SetVehicleUsedWhenEmpty(True, v)
        if objective.spread or objective.spread_hours:
            self._spread(allowed)

        preferred = [problem.jobs[j].preferred_vehicle for j in jobs]
        if objective.preference and any(p in inst.vehicle_index for p in preferred):
            vectors: dict[tuple[int, ...], int] = {}
            evaluators = []
            for vehicle in vehicles:
                miss = tuple([int(p is not None and p != vehicle.id) for p in preferred] + [0] * len(places))
                if miss not in vectors:
                    vectors[miss] = routing.RegisterUnaryTransitVector(list(miss))
                evaluators.append(vectors[miss])
            routing.AddDimensionWithVehicleTransits(evaluators, 0, n_jobs, True, "preference")
            routing.GetDimensionOrDie("preference").SetSpanCostCoefficientForAllVehicles(objective.preference)

        if any(v.max_ride is not None for v in vehicles):
            ride_matrix = time_matrix.copy()
            ride_matrix[:, n_jobs:] = 0  # the ride ends at the last door
            ride_cb = routing.RegisterTransitMatrix(ride_matrix.tolist())
            caps = [inst.horizon if v.max_ride is None else v.max_ride for v in vehicles]
            routing.AddDimensionWithVehicleCapacity(ride_cb, inst.horizon, caps, True, "ride")
            ride = routing.GetDimensionOrDie("ride")
            solver = routing.solver()
            for index in range(routing.Size()):  # every index but the route ends
                solver.Add(ride.SlackVar(index) == time_dim.SlackVar(index))

        stranded = _stranded(inst)
        for v, vehicle in enumerate(vehicles):
            if v in stranded:  # serves nothing (see _placeable); its empty route must not sink the model
                continue
            start, end = routing.Start(v), routing.End(v)
            time_dim.CumulVar(start).SetRange(vehicle.shift_start, vehicle.shift_end)
            time_dim.CumulVar(end).SetRange(vehicle.shift_start, vehicle.shift_end)
            if vehicle.max_duration is not None:
                time_dim.SetSpanUpperBoundForVehicle(vehicle.max_duration, v)
            if objective.vehicle_cost:
                routing.SetFixedCostOfVehicle(objective.vehicle_cost, v)

        for m, j in enumerate(jobs):
            index = manager.NodeToIndex(m)
            time_dim.CumulVar(index).SetRange(int(inst.early[j]), int(inst.late[j]))
            if len(allowed[m]) < n_vehicles:
                routing.VehicleVar(index).SetValues([-1, *allowed[m]])  # -1: left out
            job = problem.jobs[j]
            weight = 1 + max(job.priority, 0)
            if job.lock is not None:
                weight *= 100
                if job.lock.position is not None:
                    routing.GetDimensionOrDie("stops").CumulVar(index).SetValue(job.lock.position)
            routing.AddDisjunction([index], min(self.penalty * weight, 2**60))

    def _spread(self, allowed: list[tuple[int, ...]]) -> None:
        """Soft bounds that share the day's stops and hours among the drivers who could serve any.

        Stops: below the fair share rounded down, or above it rounded up, costs ``spread`` per
        stop. Hours: a route longer than its fair share of the day's estimated work costs
        ``spread_hours`` per second. Only positive costs: OR-Tools has no negative fixed costs.
        """
        objective = self.inst.problem.objective
        routing = self.routing
        useful = sorted({v for a in allowed for v in a})
        if not useful:
            return
        n_jobs, k = len(self.jobs), len(useful)
        stops = routing.GetDimensionOrDie("stops")
        if objective.spread:
            low, high = n_jobs // k, -(-n_jobs // k)
            for v in useful:
                if low > 0:
                    stops.SetCumulVarSoftLowerBound(routing.End(v), low, objective.spread)
                    routing.SetVehicleUsedWhenEmpty(True, v)  # else an empty route pays nothing
                stops.SetCumulVarSoftUpperBound(routing.End(v), high, objective.spread)
        if objective.spread_hours:
            fair = _fair_span(self.inst, self.jobs, useful)
            for v in useful:
                self.time.SetSoftSpanUpperBoundForVehicle(
                    pywrapcp.BoundCost(fair, objective.spread_hours), v
                )

    def routes(self, assignment: pywrapcp.Assignment | None = None) -> dict[int, list[int]]:
        """The instance job ids of each vehicle's route (from an assignment, or the current one)."""
        routing, manager = self.routing, self.manager
        out: dict[int, list[int]] = {}
        for v in range(routing.vehicles()):
            index = routing.Start(v)
            route = []
            while True:
                nxt = routing.NextVar(index)
                index = assignment.Value(nxt) if assignment is not None else nxt.Value()
                if routing.IsEnd(index):
                    break
                route.append(int(self.nodes[manager.IndexToNode(index)]))
            if route:
                out[v] = route
        return out

    def assignment_from(self, routes: dict[int, list[int]]) -> pywrapcp.Assignment | None:
        """An assignment of these routes (instance job ids per vehicle), or None if infeasible."""
        model_of = {j: m for m, j in enumerate(self.jobs)}
        lists = []
        for v in range(self.routing.vehicles()):
            lists.append([self.manager.NodeToIndex(model_of[j]) for j in routes.get(v, []) if j in model_of])
        return self.routing.ReadAssignmentFromRoutes(lists, True)


def _fair_span(inst: Instance, jobs: list[int], useful: list[int]) -> int:
    """Each driver's fair share of the day's work, in seconds: service at every door, a leg to each
    door from its nearest other door, and a driver's typical way out to the stops and back."""
    legs = inst.durations[np.ix_(jobs, jobs)].astype(np.float64)
    np.fill_diagonal(legs, np.inf)
    nearest = legs.min(axis=0)
    work = float(inst.service[jobs].sum() + nearest[np.isfinite(nearest)].sum())
    way = [
        float(inst.durations[inst.start_node[v], jobs].min() + inst.durations[jobs, inst.end_node[v]].min())
        for v in useful
    ]
    return int(work / len(useful) + float(np.median(way)))


def _beyond_pyvrp(problem: Problem) -> bool:
    """Whether the problem has rules or costs the PyVRP relaxation leaves out."""
    o = problem.objective
    return bool(
        o.balance
        or o.spread
        or o.spread_hours
        or o.span_cost
        or (o.preference and any(j.preferred_vehicle for j in problem.jobs))
        or any(v.max_stops is not None or v.max_ride is not None or v.min_stops for v in problem.vehicles)
        or any(j.lock is not None and j.lock.position is not None for j in problem.jobs)
    )


def _penalty(inst: Instance, costs: np.ndarray) -> int:
    """A drop penalty per priority level that dwarfs any one job's share of the cost."""
    objective = inst.problem.objective
    if objective.drop_penalty is not None:
        return objective.drop_penalty
    biggest = int(costs.max()) if costs.size else 0
    span = objective.span_cost * max((v.shift_end - v.shift_start for v in inst.problem.vehicles), default=0)
    # a job left out must never pay for itself by easing a spread bound (one stop, its time)
    longest = int(inst.durations.max()) if inst.durations.size else 0
    spread = objective.spread + objective.spread_hours * (2 * longest + int(inst.service.max(initial=0)))
    return 10 * (
        2 * biggest + objective.vehicle_cost + objective.preference + objective.balance + span + spread + 1
    )


def _stranded(inst: Instance) -> set[int]:
    """Vehicles that cannot even go from their start to their end within their shift and limits."""
    out = set()
    for v, vehicle in enumerate(inst.problem.vehicles):
        way = int(inst.durations[inst.start_node[v], inst.end_node[v]])
        limit = vehicle.shift_end - vehicle.shift_start
        if vehicle.max_duration is not None:
            limit = min(limit, vehicle.max_duration)
        if way > limit:
            out.add(v)
    return out


def _placeable(inst: Instance) -> list[tuple[int, ...]]:
    """Per job, the allowed vehicles that could serve it on a route of its own (vectorised)."""
    vehicles = inst.problem.vehicles
    n = inst.n_jobs
    if n == 0 or not vehicles:
        return [() for _ in range(n)]
    starts = np.array(inst.start_node)
    ends = np.array(inst.end_node)
    shift_start = np.array([v.shift_start for v in vehicles])[:, None]
    shift_end = np.array([v.shift_end for v in vehicles])[:, None]
    cap = np.array([v.capacity for v in vehicles])[:, None]
    max_dur = np.array([inst.horizon if v.max_duration is None else v.max_duration for v in vehicles])
    max_ride = np.array([inst.horizon if v.max_ride is None else v.max_ride for v in vehicles])
    go = inst.durations[starts, :n]
    back = inst.durations[:n, ends].T
    service = inst.service[:n][None, :]
    begin = np.maximum(shift_start + go, inst.early[:n][None, :])
    ok = (
        (inst.boxes[:n][None, :] <= cap)
        & (begin <= inst.late[:n][None, :])
        & (begin + service + back <= shift_end)
        & (go + service + back <= max_dur[:, None])
        & (go <= max_ride[:, None])
        & np.array([[v.max_stops is None or v.max_stops > 0] for v in vehicles])
    )
    stranded = _stranded(inst)
    return [
        tuple(v for v in allowed if ok[v, j] and v not in stranded) for j, allowed in enumerate(inst.allowed)
    ]


def _params(time_limit: float, first: int, max_iterations: int | None):
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = first
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(int(time_limit * 1000), 1))
    if max_iterations is not None:
        params.solution_limit = max_iterations
    return params


def solve(
    problem: Problem,
    *,
    time_limit: float = 10.0,
    seed: int = 0,
    on_improvement: Progress | None = None,
    initial: Solution | None = None,
    matrix: TravelMatrix | None = None,
    max_iterations: int | None = None,
    warm_start: str = "auto",
) -> Solution:
    """Plan the day: the best plan found within ``time_limit`` seconds.

    ``on_improvement`` is called with each better plan found; ``initial`` is a
    previous plan to start from (jobs or drivers it names that are gone are
    ignored); ``matrix`` overrides the problem's travel; ``max_iterations`` makes
    the run repeatable; ``warm_start``: ``auto`` (PyVRP when installed and worth
    it), ``pyvrp`` or ``none``.
    """
    began = time.perf_counter()
    inst = compile_problem(problem, matrix)
    allowed_all = _placeable(inst)
    jobs = [j for j in range(inst.n_jobs) if allowed_all[j]]
    allowed = [allowed_all[j] for j in jobs]
    stats = {"first": None, "improvements": 0, "warm_start": "none"}
    if not jobs or not problem.vehicles:
        return _solution(inst, {}, 0, began, stats)

    model = _Model(inst, jobs, allowed)
    routing = model.routing
    best_cost = [None]

    def report() -> None:
        cost = routing.CostVar().Value()
        if best_cost[0] is not None and cost >= best_cost[0]:
            return
        best_cost[0] = cost
        stats["improvements"] += 1
        if stats["first"] is None:
            stats["first"] = time.perf_counter() - began
        if on_improvement is not None:
            on_improvement(_solution(inst, model.routes(), cost, began, stats))

    routing.AddAtSolutionCallback(report)
    vehicles = problem.vehicles
    uniform = len({(v.start, v.end_point, v.capacity, v.shift_start, v.shift_end) for v in vehicles}) == 1
    first = (
        routing_enums_pb2.FirstSolutionStrategy.SAVINGS
        if uniform and all(len(a) == len(vehicles) for a in allowed)
        else routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )

    use_pyvrp = warm_start == "pyvrp" or (warm_start == "auto" and len(jobs) >= 10 and time_limit >= 2.0)
    data = None
    if use_pyvrp and warmstart.pyvrp_available():
        data = warmstart.payload(inst, jobs, allowed, [model.penalty] * len(jobs))

    start_assignment = None
    if initial is not None:
        start_assignment = model.assignment_from(warmstart.fit_routes(inst, _routes_of(inst, initial)))
        if start_assignment is not None:
            stats["warm_start"] = "initial"

    def search(limit: float, start=None, first_only: bool = False):
        params = _params(limit, first, 1 if first_only else max_iterations)
        if start is not None:
            return routing.SolveFromAssignmentWithParameters(start, params)
        return routing.SolveWithParameters(params)

    remaining = lambda: time_limit - (time.perf_counter() - began)  # noqa: E731
    best = None
    if data is None:
        best = search(max(remaining(), 0.01), start_assignment)
    else:
        # PyVRP on both cores (two seeds) after a quick first plan, then an OR-Tools polish:
        # measured, OR-Tools' own search on the main core was far behind a second PyVRP run.
        # The polish is short unless the model has rules or costs PyVRP does not see, which
        # OR-Tools must then repair (re-insert what fit_routes trimmed) or weigh.
        polish = min(max(0.02 * time_limit, 0.3), 1.5)
        if _beyond_pyvrp(problem):
            polish = 0.25 * time_limit
        deadline = time.time() + max(remaining() - polish, 0.1)
        candidates = []
        last_report = [0.0]

        def progress(routes: list) -> None:
            """Show PyVRP's better plans (made to obey every rule), at most once a second."""
            if on_improvement is None or time.perf_counter() - last_report[0] < 1.0:
                return
            last_report[0] = time.perf_counter()
            fitted = warmstart.fit_routes(inst, warmstart.to_vehicle_routes(data, routes))
            assignment = model.assignment_from(fitted)
            if assignment is None:
                return
            cost = assignment.ObjectiveValue()
            if best_cost[0] is None or cost < best_cost[0]:
                best_cost[0] = cost
                stats["improvements"] += 1
                on_improvement(_solution(inst, model.routes(assignment), cost, began, stats))

        if max_iterations is not None:
            candidates.append(warmstart.run(data, deadline, seed, max_iterations))
            best = search(max(remaining(), 0.01), start_assignment)
        else:
            helper = _spawn(data, deadline, seed)
            best = start_assignment
            if best is None:  # a quick first plan to show, cheaper than OR-Tools' insertion
                best = model.assignment_from(
                    warmstart.fit_routes(inst, warmstart.greedy_routes(inst, jobs, allowed))
                )
            if best is None:
                best = search(max(deadline - time.time(), 0.01), None, first_only=True)
            elif best_cost[0] is None:
                best_cost[0] = best.ObjectiveValue()
                stats["improvements"] += 1
                stats["first"] = time.perf_counter() - began
                if on_improvement is not None:
                    on_improvement(_solution(inst, model.routes(best), best_cost[0], began, stats))
            try:
                candidates.append(warmstart.run(data, deadline, seed + 1, None, progress))
            except Exception as exc:  # a failed helper must never fail the plan
                stats["warm_start"] = f"none (pyvrp failed: {exc!r})"
            if helper is not None:
                try:
                    candidates.append(helper.routes())
                except Exception as exc:  # a failed helper must never fail the plan
                    stats["warm_start"] = f"none (pyvrp failed: {exc!r})"
        for routes in candidates:
            fitted = warmstart.fit_routes(inst, warmstart.to_vehicle_routes(data, routes))
            assignment = model.assignment_from(fitted)
            if assignment is None:
                if stats["warm_start"] != "pyvrp":
                    stats["warm_start"] = "none (pyvrp plan rejected)"
                continue
            cost = assignment.ObjectiveValue()
            if best is not None and cost >= best.ObjectiveValue() and stats["warm_start"] != "pyvrp":
                stats["warm_start"] = "none (pyvrp plan not better)"
            if best is None or cost < best.ObjectiveValue():
                best = assignment
                stats["warm_start"] = "pyvrp"
                if best_cost[0] is None or cost < best_cost[0]:
                    best_cost[0] = cost
                    stats["improvements"] += 1
                    if stats["first"] is None:
                        stats["first"] = time.perf_counter() - began
                    if on_improvement is not None:
                        on_improvement(_solution(inst, model.routes(assignment), cost, began, stats))
        if best is not None and remaining() > 0.05:
            polished = search(remaining(), best)
            if polished is not None and polished.ObjectiveValue() <= best.ObjectiveValue():
                best = polished
    if best is None:
        return _solution(inst, {}, 0, began, stats)
    return _solution(inst, model.routes(best), best.ObjectiveValue(), began, stats)


class _Helper:
    """PyVRP in a side process on the other core; ``routes()`` waits for its answer."""

    def __init__(self, data: dict, deadline: float, seed: int):
        self.deadline = deadline
        ctx = _context()
        self.conn, child = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_helper_main, args=(child, data, deadline, seed), daemon=True)
        self.process.start()
        child.close()

    def routes(self, grace: float = 10.0) -> list:
        """PyVRP's routes; a helper that is late or fails is stopped and reported."""
        try:
            if not self.conn.poll(max(self.deadline - time.time(), 0) + grace):
                raise TimeoutError("PyVRP helper did not answer in time")
            ok, value = self.conn.recv()
            if not ok:
                raise RuntimeError(value)
            return value
        finally:
            self.conn.close()
            self.process.join(timeout=1)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join()


def _helper_main(conn, data: dict, deadline: float, seed: int) -> None:
    try:
        conn.send((True, warmstart.run(data, deadline, seed, None)))
    except Exception as exc:  # reported to the parent, which carries on without it
        conn.send((False, repr(exc)))
    finally:
        conn.close()


def _spawn(data: dict, deadline: float, seed: int) -> _Helper | None:
    """Start the helper; None where this process may not start others (e.g. a daemon)."""
    try:
        return _Helper(data, deadline, seed)
    except (OSError, RuntimeError, AssertionError):
        return None


def _context():
    """Fork where there is fork (no re-import, no ``__main__`` guard needed), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _routes_of(inst: Instance, solution: Solution) -> dict[int, list[int]]:
    """A previous plan's routes as instance ids, skipping drivers and jobs no longer there."""
    out: dict[int, list[int]] = {}
    for route in solution.routes:
        v = inst.vehicle_index.get(route.vehicle)
        if v is None:
            continue
        out[v] = [inst.job_index[visit.job] for visit in route.visits if visit.job in inst.job_index]
    return out


def _solution(inst: Instance, routes: dict[int, list[int]], cost: int, began: float, stats: dict) -> Solution:
    """Time the routes and explain every job left out."""
    depart_late = inst.problem.objective.depart_late
    timed: dict[int, Route] = {}
    served: set[int] = set()
    for v, route in sorted(routes.items()):
        plan = schedule(inst, v, route, depart_late)
        if plan is None:  # never expected: the model holds every rule schedule() checks
            route = warmstart.fit_routes(inst, {v: route}).get(v, [])
            plan = schedule(inst, v, route, depart_late) if route else None
        if plan is not None:
            timed[v] = plan
            served.update(route)
    unassigned = tuple(explain(inst, j, timed) for j in range(inst.n_jobs) if j not in served)
    return Solution(
        routes=tuple(timed.values()),
        unassigned=unassigned,
        idle=idle(inst, timed),
        cost=int(cost),
        stats=Stats(
            seconds=round(time.perf_counter() - began, 3),
            first_solution_seconds=None if stats["first"] is None else round(stats["first"], 3),
            improvements=stats["improvements"],
            warm_start=stats["warm_start"],
        ),
    )
