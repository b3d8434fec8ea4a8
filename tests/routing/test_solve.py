"""The planner on tiny days whose right answer can be worked out by hand."""

from __future__ import annotations

import itertools

import msgspec
import pytest

from delivery.routing import (
    IdleReason,
    Job,
    Lock,
    Objective,
    Point,
    Reason,
    Solution,
    Vehicle,
    check,
    service_seconds,
    solve,
)
from tests.routing.helpers import DEPOT, at, line_problem, window

FAST = {"time_limit": 0.3, "warm_start": "none"}


def feasible(problem, solution: Solution) -> Solution:
    violations = check(problem, solution)
    assert violations == [], violations
    return solution


def routes(solution: Solution) -> dict[str, list[str]]:
    return {r.vehicle: [v.job for v in r.visits] for r in solution.routes}


def test_five_stops_optimum_matches_enumeration():
    """A 5-stop day is planned at the optimum found by enumerating every order."""
    from delivery.routing import Matrix, Problem

    coords = [(0, 0), (3, 4), (-2, 6), (5, -1), (-4, -3), (1, 8)]
    points = [Point(float(x), float(y)) for x, y in coords]
    secs = [
        [round(60 * ((a.lat - b.lat) ** 2 + (a.lon - b.lon) ** 2) ** 0.5) for b in points] for a in points
    ]
    problem = Problem(
        jobs=tuple(Job(id=str(k), point=points[k]) for k in range(1, 6)),
        vehicles=(Vehicle(id="d1", start=points[0], capacity=10),),
        matrix=Matrix(points=tuple(points), durations=secs, distances=secs),
    )
    best = min(
        sum(secs[a][b] for a, b in itertools.pairwise((0, *order, 0)))
        for order in itertools.permutations(range(1, 6))
    )
    solution = feasible(problem, solve(problem, **FAST))
    assert solution.travel == best


def test_windows_force_the_order():
    """Windows that only allow far-then-near make the planner visit the far stop first."""
    jobs = [
        Job(id="near", point=at(5), window=window(60, 70)),
        Job(id="far", point=at(10), window=window(0, 30)),
    ]
    problem = line_problem([5, 10], jobs=jobs)
    solution = feasible(problem, solve(problem, **FAST))
    assert routes(solution) == {"d1": ["far", "near"]}


def test_capacity_forces_two_routes():
    """Three 4-box stops and 8-box cars need two cars."""
    jobs = [Job(id=f"s{k}", point=at(k), boxes=4) for k in (1, 2, 3)]
    vehicles = [Vehicle(id=f"d{k}", start=DEPOT, capacity=8) for k in (1, 2)]
    problem = line_problem([1, 2, 3], jobs=jobs, vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    assert len(solution.routes) == 2
    assert not solution.unassigned
    assert all(r.load <= 8 for r in solution.routes)


def test_impossible_window_is_unassigned_with_its_reason():
    """A stop whose window closes before any driver can get there comes back unassigned."""
    jobs = [
        Job(id="ok", point=at(5)),
        Job(id="late", point=at(30), window=window(0, 10)),
    ]
    vehicles = [Vehicle(id="d1", start=DEPOT, capacity=10, shift_start=0, shift_end=4 * 3600)]
    problem = line_problem([5, 30], jobs=jobs, vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    assert [(u.job, u.reason) for u in solution.unassigned] == [("late", Reason.WINDOW_UNREACHABLE)]
    assert routes(solution) == {"d1": ["ok"]}


def test_skill_no_driver_has():
    """A van-only stop with no van on the road is left out, saying no driver has the skill."""
    jobs = [Job(id="big", point=at(5), skills=frozenset({"van"})), Job(id="s2", point=at(6))]
    problem = line_problem([5, 6], jobs=jobs)
    solution = feasible(problem, solve(problem, **FAST))
    assert [(u.job, u.reason) for u in solution.unassigned] == [("big", Reason.NO_SKILL)]


def test_skill_sends_the_job_to_the_driver_who_has_it():
    """A stop needing Spanish goes to the Spanish-speaking driver, even if farther away."""
    jobs = [Job(id="es", point=at(1), skills=frozenset({"lang:es"}))]
    vehicles = [
        Vehicle(id="near", start=DEPOT, capacity=10),
        Vehicle(id="far", start=at(20), capacity=10, skills=frozenset({"lang:es"})),
    ]
    problem = line_problem([1, 20], jobs=jobs, vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    assert routes(solution) == {"far": ["es"]}


def test_reasons_for_boxes_reach_and_full_fleet():
    """Too many boxes, beyond every shift, and a full fleet each get their own reason."""
    jobs = [
        Job(id="huge", point=at(1), boxes=50),
        Job(id="remote", point=at(200)),
        Job(id="a", point=at(2), boxes=6),
        Job(id="b", point=at(3), boxes=6),
    ]
    vehicles = [Vehicle(id="d1", start=DEPOT, capacity=10, shift_end=4 * 3600)]
    problem = line_problem([1, 200, 2, 3], jobs=jobs, vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    reasons = {u.job: u.reason for u in solution.unassigned}
    assert reasons.pop("huge") == Reason.TOO_MANY_BOXES
    assert reasons.pop("remote") == Reason.OUT_OF_REACH
    assert list(reasons.values()) == [Reason.NO_CAPACITY_LEFT]


def test_priority_decides_who_is_left_out():
    """When only one of two stops fits, the higher-priority one is served."""
    jobs = [
        Job(id="low", point=at(1), boxes=6),
        Job(id="high", point=at(9), boxes=6, priority=2),
    ]
    problem = line_problem([1, 9], jobs=jobs, vehicles=[Vehicle(id="d1", start=DEPOT, capacity=8)])
    solution = feasible(problem, solve(problem, **FAST))
    assert routes(solution) == {"d1": ["high"]}
    assert solution.unassigned[0].job == "low"


def test_lock_to_driver_and_position_is_respected():
    """A stop locked to a driver at a position stays there, though another order is shorter."""
    jobs = [
        Job(id="s1", point=at(1)),
        Job(id="s2", point=at(2)),
        Job(id="s9", point=at(9), lock=Lock(vehicle="d2", position=0)),
        Job(id="s3", point=at(3), lock=Lock(vehicle="d2", position=1)),
    ]
    vehicles = [Vehicle(id="d1", start=DEPOT, capacity=10), Vehicle(id="d2", start=DEPOT, capacity=10)]
    problem = line_problem([1, 2, 9, 3], jobs=jobs, vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    got = routes(solution)
    assert got["d2"][:2] == ["s9", "s3"]


def test_max_stops_splits_the_work():
    """A volunteer willing to make two stops gets at most two."""
    vehicles = [
        Vehicle(id="d1", start=DEPOT, capacity=10, max_stops=2),
        Vehicle(id="d2", start=DEPOT, capacity=10),
    ]
    problem = line_problem([1, 2, 3, 4], vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    assert all(len(r.visits) <= 2 for r in solution.routes if r.vehicle == "d1")
    assert not solution.unassigned


def test_max_ride_time_bounds_time_in_the_car():
    """Produce rides at most max_ride from loading to the door: a long chain is split."""
    vehicles = [
        Vehicle(id="d1", start=DEPOT, capacity=10, max_ride=30 * 60),
        Vehicle(id="d2", start=DEPOT, capacity=10, max_ride=30 * 60),
    ]
    jobs = [Job(id=f"s{x}", point=at(x), service=5 * 60) for x in (10, 11, 20, 21)]
    problem = line_problem([10, 11, 20, 21], jobs=jobs, vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    assert not solution.unassigned
    for route in solution.routes:
        assert all(v.start - route.start <= 30 * 60 for v in route.visits)


def test_balance_spreads_stops():
    """With a balance cost, two drivers share ten stops instead of one taking all."""
    vehicles = [Vehicle(id=f"d{k}", start=DEPOT, capacity=20) for k in (1, 2)]
    xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    plain = line_problem(xs, vehicles=vehicles)
    balanced = line_problem(xs, vehicles=vehicles, objective=Objective(balance=1000))
    one = feasible(plain, solve(plain, **FAST))
    two = feasible(balanced, solve(balanced, **FAST))
    assert max(len(r.visits) for r in one.routes) == 10
    assert sorted(len(r.visits) for r in two.routes) == [5, 5]


def test_preferred_driver_keeps_their_patient_when_cheap():
    """A stop goes to its preferred driver when that costs little."""
    jobs = [Job(id="s1", point=at(5), preferred_vehicle="d2")]
    vehicles = [Vehicle(id="d1", start=DEPOT, capacity=10), Vehicle(id="d2", start=at(6), capacity=10)]
    problem = line_problem([5, 6], jobs=jobs, vehicles=vehicles, objective=Objective(preference=3600))
    solution = feasible(problem, solve(problem, **FAST))
    assert routes(solution) == {"d2": ["s1"]}


def test_depart_late_means_no_wait_at_the_first_door():
    """The driver leaves so as to arrive when the first window opens."""
    jobs = [Job(id="s1", point=at(10), window=window(120, 180))]
    problem = line_problem([10], jobs=jobs)
    solution = feasible(problem, solve(problem, **FAST))
    (route,) = solution.routes
    assert route.visits[0].waiting == 0
    assert route.start == 110 * 60


def test_several_depots_and_home_starts():
    """Each driver starts and ends at their own place; stops go to the nearer one."""
    vehicles = [
        Vehicle(id="west", start=at(-50), capacity=10),
        Vehicle(id="east", start=at(50), end=at(0), capacity=10),
    ]
    jobs = [Job(id="w", point=at(-45)), Job(id="e", point=at(45))]
    problem = line_problem([-50, 50, -45, 45], jobs=jobs, vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    assert routes(solution) == {"west": ["w"], "east": ["e"]}


def test_warm_start_keeps_a_coordinators_order():
    """A coordinator's order, different from the solver's own but costing the same, survives re-optimising."""
    problem = line_problem([1, 2, 3])
    own = routes(feasible(problem, solve(problem, **FAST)))["d1"]
    theirs = own[::-1]  # out and back along a line: the reverse order costs the same
    pinned = [
        msgspec.structs.replace(job, lock=Lock(vehicle="d1", position=theirs.index(job.id)))
        for job in problem.jobs
    ]
    coordinators = solve(msgspec.structs.replace(problem, jobs=tuple(pinned)), **FAST)
    assert routes(coordinators) == {"d1": theirs}
    again = feasible(problem, solve(problem, initial=coordinators, **FAST))
    assert routes(again) == {"d1": theirs}
    assert again.stats.warm_start == "initial"


def test_warm_start_ignores_jobs_that_are_gone():
    """A previous plan naming a cancelled stop still seeds the new plan."""
    before = line_problem([1, 2, 3])
    previous = solve(before, **FAST)
    after = line_problem([1, 2])
    solution = feasible(after, solve(after, initial=previous, **FAST))
    assert sorted(routes(solution)["d1"]) == ["s1", "s2"]


def test_progress_callback_reports_improving_plans():
    """on_improvement sees feasible plans of strictly decreasing cost."""
    problem = line_problem([5, -3, 8, -7, 2, 9, -1])
    seen: list[Solution] = []
    final = solve(problem, on_improvement=seen.append, **FAST)
    assert seen
    costs = [s.cost for s in seen]
    assert costs == sorted(costs, reverse=True) and len(set(costs)) == len(costs)
    assert all(check(problem, s) == [] for s in seen)
    assert final.cost <= costs[-1]


def test_same_input_and_limits_give_the_same_plan():
    """With an iteration limit, two runs return the same plan."""
    problem = line_problem([5, -3, 8, -7, 2, 9, -1, 4, -6, 3])
    one = solve(problem, time_limit=5, max_iterations=50, warm_start="none")
    two = solve(problem, time_limit=5, max_iterations=50, warm_start="none")
    assert routes(one) == routes(two)


@pytest.mark.parametrize(
    ("boxes", "floor", "elevator", "expected"),
    [(1, 0, True, 210), (2, 3, False, 180 + 60 + 60 * 2 * 2), (2, 3, True, 240)],
)
def test_service_time_counts_boxes_and_stairs(boxes, floor, elevator, expected):
    """Service time is a base, plus per box, plus per box per floor climbed without a lift."""
    assert service_seconds(boxes, floor, elevator) == expected


def test_empty_day():
    """A day without stops gives an empty plan."""
    problem = line_problem([])
    solution = solve(problem, **FAST)
    assert solution.routes == () and solution.unassigned == ()


def test_pyvrp_warm_start_is_deterministic_with_an_iteration_limit():
    """With PyVRP seeding and an iteration limit, two runs give the same plan."""
    pytest.importorskip("pyvrp")
    problem = line_problem([5, -3, 8, -7, 2, 9, -1, 4, -6, 3, 11, -12])
    one = solve(problem, time_limit=5, max_iterations=30, warm_start="pyvrp")
    two = solve(problem, time_limit=5, max_iterations=30, warm_start="pyvrp")
    assert routes(one) == routes(two)


def test_lock_to_an_absent_driver_is_explained():
    """A stop locked to a driver who is not on the road is left out as a bad lock."""
    jobs = [Job(id="s1", point=at(1), lock=Lock(vehicle="gone")), Job(id="s2", point=at(2))]
    problem = line_problem([1, 2], jobs=jobs)
    solution = feasible(problem, solve(problem, **FAST))
    assert [(u.job, u.reason) for u in solution.unassigned] == [("s1", Reason.BAD_LOCK)]


def test_a_driver_who_cannot_reach_their_end_does_not_sink_the_day():
    """A shift too short to drive from its start to its end serves nothing; the others still plan the day."""
    vehicles = [
        Vehicle(id="d1", start=DEPOT, capacity=10, shift_end=1800),
        Vehicle(id="far", start=at(30), end=at(-20), capacity=10, shift_end=1800),
    ]
    problem = line_problem([1, 30, -20], jobs=[Job(id="s1", point=at(1))], vehicles=vehicles)
    solution = feasible(problem, solve(problem, **FAST))
    assert routes(solution) == {"d1": ["s1"]}
    assert [(i.vehicle, i.reason) for i in solution.idle] == [("far", IdleReason.NOTHING_FITS)]


def test_a_driver_put_on_the_day_keeps_a_stop_though_another_is_cheaper():
    """min_stops: a driver the coordinator added gets a stop even where one driver could do it all."""
    far = Vehicle(id="added", start=at(-10), capacity=10, min_stops=1)
    jobs = [Job(id=f"s{k}", point=at(k)) for k in (1, 2, 3)]
    near = Vehicle(id="d1", start=DEPOT, capacity=10)
    problem = line_problem([1, 2, 3, -10], jobs=jobs, vehicles=[near, far])
    solution = feasible(problem, solve(problem, **FAST))
    assert routes(solution).get("added"), routes(solution)
    plain = msgspec.structs.replace(
        problem, vehicles=(problem.vehicles[0], msgspec.structs.replace(far, min_stops=0))
    )
    assert "added" not in routes(solve(plain, **FAST))  # without it, the cheapest plan sends them home


def test_spread_gives_every_driver_a_fair_share():
    """With spread on, three drivers share nine stops three each; off, one driver takes them all."""
    vehicles = [Vehicle(id=f"d{k}", start=DEPOT, capacity=20) for k in (1, 2, 3)]
    problem = line_problem(list(range(1, 10)), vehicles=vehicles)
    lazy = feasible(problem, solve(problem, **FAST))
    assert len(lazy.routes) == 1 and len(lazy.idle) == 2
    fair_problem = msgspec.structs.replace(problem, objective=Objective(spread=600))
    fair = feasible(fair_problem, solve(fair_problem, **FAST))
    assert sorted(len(r.visits) for r in fair.routes) == [3, 3, 3]
