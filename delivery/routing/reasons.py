"""Why a job was left out: the first of a few tests, from the job alone to the whole plan."""

from __future__ import annotations

from dataclasses import replace

from delivery.routing.instance import Instance, schedule
from delivery.routing.model import Idle, IdleReason, Reason, Route, Unassigned


def explain(inst: Instance, j: int, routes: dict[int, Route]) -> Unassigned:
    """The reason job ``j`` is unassigned, given the plan's ``routes`` (by vehicle)."""
    job = inst.problem.jobs[j]
    vehicles = inst.problem.vehicles

    def out(reason: Reason, detail: str) -> Unassigned:
        return Unassigned(job=job.id, reason=reason, detail=detail)

    skilled = [v for v, vehicle in enumerate(vehicles) if job.skills <= vehicle.skills]
    if not skilled:
        need = ", ".join(sorted(job.skills))
        return out(Reason.NO_SKILL, f"no driver has every skill needed ({need})")
    if job.lock is not None and not inst.allowed[j]:
        return out(
            Reason.BAD_LOCK,
            f"locked to {job.lock.vehicle}, who is not driving or lacks a needed skill",
        )
    suitable = inst.allowed[j]
    if job.boxes > max(vehicles[v].capacity for v in suitable):
        return out(Reason.TOO_MANY_BOXES, f"{job.boxes} boxes do not fit any suitable vehicle")
    alone = [v for v in suitable if _alone(inst, v, j, keep_window=True)]
    if not alone:
        if not any(_alone(inst, v, j, keep_window=False) for v in suitable):
            return out(
                Reason.OUT_OF_REACH,
                "too far to reach and return within any suitable driver's shift and limits",
            )
        return out(Reason.WINDOW_UNREACHABLE, "its time window fits no suitable driver's shift")
    roomy = [
        v
        for v in alone
        if (route := routes.get(v)) is None
        or (
            route.load + job.boxes <= vehicles[v].capacity
            and (vehicles[v].max_stops is None or len(route.visits) < vehicles[v].max_stops)
        )
    ]
    if not roomy:
        return out(Reason.NO_CAPACITY_LEFT, "every suitable vehicle is full (boxes or stops)")
    return out(Reason.NO_TIME_LEFT, "no suitable driver has time left in the shift for it")


def idle(inst: Instance, routes: dict[int, Route]) -> tuple[Idle, ...]:
    """Each driver without a route, and why: nothing they could serve, or not needed for it."""
    out = []
    for v, vehicle in enumerate(inst.problem.vehicles):
        if v in routes:
            continue
        if any(v in inst.allowed[j] and _alone(inst, v, j, keep_window=True) for j in range(inst.n_jobs)):
            out.append(Idle(vehicle=vehicle.id, reason=IdleReason.NOT_NEEDED,
                            detail="the other drivers covered every stop this driver could take, "
                                   "with less driving"))
        else:
            out.append(Idle(vehicle=vehicle.id, reason=IdleReason.NOTHING_FITS,
                            detail="no stop fits this driver's shift, vehicle, skills or limits"))
    return tuple(out)


def _alone(inst: Instance, v: int, j: int, *, keep_window: bool) -> bool:
    """Whether vehicle ``v`` could serve job ``j`` on a route of its own (any lock position aside)."""
    if not keep_window:
        early, late = inst.early.copy(), inst.late.copy()
        early[j], late[j] = 0, inst.horizon
        inst = replace(inst, early=early, late=late)
    return schedule(inst, v, [j], positions=False) is not None
