"""The planner's data: a Problem in, a Solution out (msgspec structs, frozen).

Units: time in whole seconds since midnight of the delivery day; durations in
seconds; distances in metres; loads in boxes.  A problem read from a Solomon file
uses the same integer fields in thousandths of a Solomon unit instead (see
``solomon.py``).
"""

from __future__ import annotations

import enum

import msgspec

DAY = 24 * 3600


class Point(msgspec.Struct, frozen=True, array_like=True):
    """A place: latitude and longitude in degrees (JSON ``[lat, lon]``)."""

    lat: float
    lon: float


class Window(msgspec.Struct, frozen=True, array_like=True):
    """When service may start at a stop: ``[earliest, latest]`` seconds since midnight."""

    earliest: int
    latest: int


class Lock(msgspec.Struct, frozen=True, kw_only=True):
    """A coordinator's pin: this job goes to ``vehicle``, at ``position`` (0 = first) if given."""

    vehicle: str
    position: int | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One stop to serve (a Stop of the Plan).

    ``service`` is the time spent at the door (see :func:`service_seconds`);
    ``priority`` scales the penalty for leaving the job out (higher = more
    important, 0 = normal); a vehicle may serve the job only if its ``skills``
    include every one of the job's ``skills`` (e.g. ``"van"``, ``"lang:es"``).
    ``preferred_vehicle`` is a soft wish, ``lock`` a hard one.
    """

    id: str
    point: Point
    boxes: int = 1
    service: int = 0
    window: Window | None = None
    priority: int = 0
    skills: frozenset[str] = frozenset()
    preferred_vehicle: str | None = None
    lock: Lock | None = None


class Vehicle(msgspec.Struct, frozen=True, kw_only=True):
    """One driver's shift: where it starts and ends, what it carries, its limits.

    ``end`` defaults to ``start``.  ``max_duration`` bounds the time from leaving
    ``start`` to reaching ``end``; ``max_ride`` bounds how long produce rides in the
    car, from leaving ``start`` (loading) to the start of service at each door.
    ``min_stops``: this driver should get at least that many stops unless no plan
    can give them (a driver the coordinator put on the day).
    """

    id: str
    start: Point
    end: Point | None = None
    capacity: int
    shift_start: int = 0
    shift_end: int = DAY
    skills: frozenset[str] = frozenset()
    max_duration: int | None = None
    max_stops: int | None = None
    max_ride: int | None = None
    min_stops: int = 0

    @property
    def end_point(self) -> Point:
        return self.start if self.end is None else self.end


class Matrix(msgspec.Struct, frozen=True, kw_only=True):
    """An explicit travel matrix: row/column ``i`` is ``points[i]``.

    ``durations`` in seconds, ``distances`` in metres (whole numbers).  Every job's
    and vehicle's point must be one of ``points``.
    """

    points: tuple[Point, ...]
    durations: list[list[int]]
    distances: list[list[int]]


class Travel(msgspec.Struct, frozen=True, kw_only=True):
    """How to compute the matrix when the problem does not carry one.

    ``method``: ``great_circle`` or ``geodesic`` (straight-line distance times
    ``circuity`` at ``speed_kmh``), or ``osrm`` (a self-hosted OSRM-style table
    service at ``osrm_url``).
    """

    method: str = "great_circle"
    circuity: float = 1.3
    speed_kmh: float = 30.0
    osrm_url: str | None = None


class Objective(msgspec.Struct, frozen=True, kw_only=True):
    """What a plan costs.  Every field is in the unit of the arc cost.

    ``cost``: ``duration`` (travel seconds, default) or ``distance`` (metres).
    ``vehicle_cost``: fixed cost of each driver used.  ``balance``: cost per stop
    a route has above the fair share (stops / drivers, rounded up).  ``span_cost``:
    cost per second of the latest return minus the earliest departure.
    ``preference``: cost when a job goes to another driver than its
    ``preferred_vehicle``.  ``drop_penalty``: penalty per priority level for
    leaving a job out (``None``: large enough that a job is only left out when it
    cannot be placed).  ``depart_late``: drivers leave as late as the plan allows,
    so they do not wait at the first door.

    Spreading work across drivers (0 = off; a problem file keeps pure travel unless it
    asks): ``spread`` is the cost per stop a driver who could serve stops has below
    the fair share (stops / such drivers, rounded down) or above it (rounded up);
    ``spread_hours`` the cost per second a route lasts beyond the fair share of the
    day's work.  Each is a price in the arc cost's unit, so a plan never pays more
    extra driving for fairness than the penalties it saves.
    """

    cost: str = "duration"
    vehicle_cost: int = 0
    balance: int = 0
    span_cost: int = 0
    preference: int = 300
    drop_penalty: int | None = None
    depart_late: bool = True
    spread: int = 0
    spread_hours: int = 0


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery day to plan: jobs, vehicles, and how to travel between them."""

    jobs: tuple[Job, ...]
    vehicles: tuple[Vehicle, ...]
    matrix: Matrix | None = None
    travel: Travel = Travel()
    objective: Objective = Objective()


class Reason(enum.StrEnum):
    """Why a job was left out of the plan."""

    NO_SKILL = "no_skill"  # no driver has every skill the job needs
    BAD_LOCK = "bad_lock"  # locked to a driver who is absent or cannot take it
    TOO_MANY_BOXES = "too_many_boxes"  # more boxes than any suitable vehicle holds
    OUT_OF_REACH = "out_of_reach"  # beyond every suitable shift's reach, window aside
    WINDOW_UNREACHABLE = "window_unreachable"  # its window fits no suitable shift
    NO_CAPACITY_LEFT = "no_capacity_left"  # suitable vehicles are full (boxes or stops)
    NO_TIME_LEFT = "no_time_left"  # suitable drivers have no time left for it


class Visit(msgspec.Struct, frozen=True, kw_only=True):
    """A stop in a route: ``start`` of service = ``arrival`` + ``waiting``."""

    job: str
    arrival: int
    waiting: int
    start: int
    departure: int


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One driver's ordered visits; ``start``/``end`` are departure and return times."""

    vehicle: str
    visits: tuple[Visit, ...]
    start: int
    end: int
    distance: int
    duration: int
    travel: int
    load: int


class Unassigned(msgspec.Struct, frozen=True, kw_only=True):
    """A job left out of the plan, and why (``detail`` is for people)."""

    job: str
    reason: Reason
    detail: str = ""


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """How the search went."""

    seconds: float = 0.0
    first_solution_seconds: float | None = None
    improvements: int = 0
    warm_start: str = "none"


class IdleReason(enum.StrEnum):
    """Why a driver got no route."""

    NOTHING_FITS = "nothing_fits"  # no stop fits this driver's shift, vehicle, skills or limits
    NOT_NEEDED = "not_needed"  # the other drivers covered the stops this one could take, for less


class Idle(msgspec.Struct, frozen=True, kw_only=True):
    """A driver without a route, and why (``detail`` is for people)."""

    vehicle: str
    reason: IdleReason
    detail: str = ""


class Solution(msgspec.Struct, frozen=True, kw_only=True):
    """A plan: the routes of the drivers used, the jobs left out, the drivers not used."""

    routes: tuple[Route, ...]
    unassigned: tuple[Unassigned, ...] = ()
    idle: tuple[Idle, ...] = ()
    cost: int = 0
    stats: Stats = Stats()

    @property
    def distance(self) -> int:
        return sum(route.distance for route in self.routes)

    @property
    def travel(self) -> int:
        return sum(route.travel for route in self.routes)


def service_seconds(
    boxes: int,
    floor: int = 0,
    elevator: bool = True,
    *,
    base: int = 180,
    per_box: int = 30,
    per_floor: int = 60,
) -> int:
    """Time at a door: a base, plus some per box, plus some per floor climbed without a lift."""
    stairs = 0 if elevator else max(floor - 1, 0)
    return base + per_box * boxes + per_floor * stairs * max(boxes, 1)
