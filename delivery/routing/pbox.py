"""The benchmark's produce-box day format (``"format": "produce-box-vrptw/1"``) as a Problem.

Times in the file are minutes from the shift start; here they become seconds.
Travel is great-circle distance x circuity at a fixed speed, as the file's
``travel_model`` says.  The objective is total travel time.
"""

from __future__ import annotations

from typing import Any

from delivery.routing.model import Job, Objective, Point, Problem, Travel, Vehicle, Window

FORMAT = "produce-box-vrptw/1"


def to_problem(data: dict[str, Any]) -> Problem:
    """A Problem from a parsed produce-box day."""
    if data.get("format") != FORMAT:
        raise ValueError(f'expected "format": "{FORMAT}"')
    model = data.get("travel_model", {})
    depots = {d["index"]: Point(d["lat"], d["lon"]) for d in data["depots"]}
    jobs = []
    for stop in data["stops"]:
        early, late = stop["tw"]
        window = None if stop.get("window") == "open" else Window(early * 60, late * 60)
        jobs.append(
            Job(
                id=str(stop["id"]),
                point=Point(stop["lat"], stop["lon"]),
                boxes=stop["demand"],
                service=round(stop["service_min"] * 60),
                window=window,
                skills=frozenset(stop.get("skills", ())),
            )
        )
    vehicles = [
        Vehicle(
            id=f"{v['kind']}{v['index']}",
            start=depots[v["start_depot"]],
            end=depots[v["end_depot"]],
            capacity=v["capacity"],
            shift_start=v["tw"][0] * 60,
            shift_end=v["tw"][1] * 60,
            skills=frozenset([v["kind"], *v.get("skills", ())]),
        )
        for v in data["vehicles"]
    ]
    return Problem(
        jobs=tuple(jobs),
        vehicles=tuple(vehicles),
        travel=Travel(
            method="great_circle",
            circuity=model.get("circuity", 1.3),
            speed_kmh=model.get("speed_kmh", 30.0),
        ),
        objective=Objective(cost="duration", preference=0),
    )
