"""The route planner: plain data in (a Problem), a plan out (a Solution).

No database, no web: the planning service converts rows to a Problem and the
Solution back.  See ``model.py`` for the types, ``solver.solve`` for the search
and ``check.check`` for the independent feasibility checker.
"""

from delivery.routing.check import Violation, check
from delivery.routing.matrix import MatrixError, TravelMatrix, build_matrix, travel_from_env
from delivery.routing.model import (
    Idle,
    IdleReason,
    Job,
    Lock,
    Matrix,
    Objective,
    Point,
    Problem,
    Reason,
    Route,
    Solution,
    Stats,
    Travel,
    Unassigned,
    Vehicle,
    Visit,
    Window,
    service_seconds,
)
from delivery.routing.solver import solve

__all__ = [
    "Idle",
    "IdleReason",
    "Job",
    "Lock",
    "Matrix",
    "MatrixError",
    "Objective",
    "Point",
    "Problem",
    "Reason",
    "Route",
    "Solution",
    "Stats",
    "Travel",
    "TravelMatrix",
    "Unassigned",
    "Vehicle",
    "Violation",
    "Visit",
    "Window",
    "build_matrix",
    "check",
    "service_seconds",
    "solve",
    "travel_from_env",
]
