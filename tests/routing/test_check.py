"""The checker finds what is wrong with a plan, and every plan the solver returns passes it."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery.routing import (
    Job,
    Lock,
    Problem,
    Reason,
    Solution,
    Unassigned,
    Vehicle,
    Window,
    check,
    solve,
)
from tests.routing.helpers import DEPOT, at, line_problem


def _plan() -> tuple[Problem, Solution]:
    jobs = [Job(id=f"s{k}", point=at(k), boxes=2, service=60) for k in (1, 2, 3)]
    problem = line_problem([1, 2, 3], jobs=jobs, vehicles=[Vehicle(id="d1", start=DEPOT, capacity=6)])
    return problem, solve(problem, time_limit=0.2, warm_start="none")


def _replace_route(solution: Solution, **changes) -> Solution:
    route = msgspec.structs.replace(solution.routes[0], **changes)
    return msgspec.structs.replace(solution, routes=(route, *solution.routes[1:]))


def kinds(problem: Problem, solution: Solution) -> set[str]:
    return {v.kind for v in check(problem, solution)}


def test_a_solver_plan_passes():
    """A plan straight from the solver has no violations."""
    problem, solution = _plan()
    assert check(problem, solution) == []


def test_duplicate_visit_is_caught():
    """A stop visited twice is a violation."""
    problem, solution = _plan()
    visits = solution.routes[0].visits
    bad = _replace_route(solution, visits=(*visits, visits[0]))
    assert "duplicate" in kinds(problem, bad)


def test_missing_job_is_caught():
    """A stop neither routed nor unassigned is a violation."""
    problem, solution = _plan()
    bad = _replace_route(solution, visits=solution.routes[0].visits[:-1])
    assert "missing" in kinds(problem, bad)


def test_wrong_times_are_caught():
    """An arrival that ignores travel time is a violation."""
    problem, solution = _plan()
    first = solution.routes[0].visits[0]
    early = msgspec.structs.replace(first, arrival=first.arrival - 30, start=first.start - 30)
    bad = _replace_route(solution, visits=(early, *solution.routes[0].visits[1:]))
    assert "times" in kinds(problem, bad)


def test_overload_window_skill_and_lock_are_caught():
    """A plan that breaks capacity, a window, a skill and a lock is told about each."""
    problem, solution = _plan()
    jobs = list(problem.jobs)
    jobs[0] = msgspec.structs.replace(
        jobs[0], boxes=9, window=Window(0, 1), skills=frozenset({"van"}), lock=Lock(vehicle="x")
    )
    strict = msgspec.structs.replace(problem, jobs=tuple(jobs))
    assert {"capacity", "window", "skill", "lock"} <= kinds(strict, solution)


def test_shift_end_is_caught():
    """Returning after the shift ends is a violation."""
    problem, solution = _plan()
    vehicle = msgspec.structs.replace(problem.vehicles[0], shift_end=60)
    short = msgspec.structs.replace(problem, vehicles=(vehicle,))
    assert "shift" in kinds(short, solution)


# Property: every plan the solver returns passes the checker, whatever the day.

_skills = st.frozensets(st.sampled_from(["van", "lang:es"]), max_size=2)


@st.composite
def days(draw) -> Problem:
    n_vehicles = draw(st.integers(1, 3))
    vehicles = []
    for k in range(n_vehicles):
        start = draw(st.integers(0, 180))
        vehicles.append(
            Vehicle(
                id=f"d{k}",
                start=at(draw(st.sampled_from([0, 0, 30]))),
                end=draw(st.sampled_from([None, at(0), at(-20)])),
                capacity=draw(st.integers(0, 12)),
                shift_start=start * 60,
                shift_end=(start + draw(st.integers(30, 300))) * 60,
                skills=draw(_skills),
                max_duration=draw(st.sampled_from([None, 3600, 7200])),
                max_stops=draw(st.sampled_from([None, 1, 3])),
                max_ride=draw(st.sampled_from([None, 1800, 3600])),
            )
        )
    n_jobs = draw(st.integers(0, 8))
    xs = [draw(st.integers(-60, 60)) for _ in range(n_jobs)]
    jobs = []
    for k, x in enumerate(xs):
        earliest = draw(st.integers(0, 400))
        lock = None
        if draw(st.integers(0, 5)) == 0:
            lock = Lock(
                vehicle=f"d{draw(st.integers(0, n_vehicles))}",
                position=draw(st.sampled_from([None, 0, 1])),
            )
        jobs.append(
            Job(
                id=f"s{k}",
                point=at(x),
                boxes=draw(st.integers(0, 5)),
                service=draw(st.integers(0, 900)),
                window=draw(
                    st.sampled_from(
                        [None, Window(earliest * 60, (earliest + draw(st.integers(0, 240))) * 60)]
                    )
                ),
                priority=draw(st.integers(0, 2)),
                skills=draw(_skills) if draw(st.booleans()) else frozenset(),
                preferred_vehicle=draw(st.sampled_from([None, "d0", "d1"])),
                lock=lock,
            )
        )
    xs_all = [*xs, 0, 30, -20]
    return line_problem(xs_all, jobs=jobs, vehicles=vehicles)


def _fits_alone(problem: Problem, vehicle: Vehicle, job: Job) -> bool:
    """Whether ``vehicle`` could serve ``job`` on a route of its own, worked out here from the rules."""
    if not job.skills <= vehicle.skills or job.boxes > vehicle.capacity:
        return False
    if job.lock is not None and (job.lock.vehicle != vehicle.id or job.lock.position not in (None, 0)):
        return False
    matrix = problem.matrix
    row = {point: i for i, point in enumerate(matrix.points)}
    go = matrix.durations[row[vehicle.start]][row[job.point]]
    back = matrix.durations[row[job.point]][row[vehicle.end_point]]
    begin = vehicle.shift_start + go
    if job.window is not None:
        begin = max(begin, job.window.earliest)
        if begin > job.window.latest:
            return False
    # Leaving as late as the start of service allows: no waiting counts against duration or ride.
    return (
        begin + job.service + back <= vehicle.shift_end
        and (vehicle.max_duration is None or go + job.service + back <= vehicle.max_duration)
        and (vehicle.max_ride is None or go <= vehicle.max_ride)
    )


def assert_nothing_left_out_beside_an_idle_driver(problem: Problem, solution: Solution) -> None:
    """No job is left out while a driver who could serve it alone has no route at all."""
    busy = {route.vehicle for route in solution.routes}
    jobs = {job.id: job for job in problem.jobs}
    for left in solution.unassigned:
        job = jobs[left.job]
        idle = [v.id for v in problem.vehicles if v.id not in busy and _fits_alone(problem, v, job)]
        assert not idle, f"{left.job} left out ({left.reason}) while {idle} could serve it and had no route"


def test_leaving_everything_out_is_caught():
    """The property below has teeth: a plan that serves nobody fails it on a day one driver can serve."""
    problem, _ = _plan()
    nobody = Solution(routes=(), unassigned=tuple(Unassigned(job=j.id, reason=Reason.NO_TIME_LEFT)
                                                 for j in problem.jobs))
    assert check(problem, nobody) == []  # the checker alone accepts it: a plan may leave jobs out
    with pytest.raises(AssertionError, match="could serve it and had no route"):
        assert_nothing_left_out_beside_an_idle_driver(problem, nobody)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days())
def test_every_solver_plan_passes_the_checker(problem):
    """Whatever the day, the solver's plan obeys every rule and leaves nothing out beside an idle driver."""
    solution = solve(problem, time_limit=5.0, warm_start="none", max_iterations=50)
    assert check(problem, solution) == []
    assert_nothing_left_out_beside_an_idle_driver(problem, solution)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(days())
def test_pyvrp_warm_started_plans_pass_the_checker(problem):
    """Plans seeded by PyVRP's relaxation still obey every rule (stops, rides, locks)."""
    pytest.importorskip("pyvrp")
    solution = solve(problem, time_limit=5.0, warm_start="pyvrp", max_iterations=20)
    assert check(problem, solution) == []
    assert_nothing_left_out_beside_an_idle_driver(problem, solution)
