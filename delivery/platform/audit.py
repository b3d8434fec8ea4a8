"""The audit trail: who saw or changed which patient's data, when, from where (R1.1, R1.4).

One writer, `record`, in the caller's transaction. The web layer builds an `AuditContext` per
request (actor, role, organization, IP, user agent, request id) and services pass it through, so
every row carries the same fields whichever page, API call or command caused it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.orm import Session

from delivery.models import AuditEvent
from delivery.platform.db import Database

ROLE_ORDER = ("admin", "coordinator", "clinic_staff", "driver")  # the widest role names the actor


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where. Exactly one of `user_id` (a person) or `client_id` (a system
    or a command) names the actor once it is known; before sign-in both may be empty."""

    user_id: int | None = None
    client_id: str | None = None
    role: str | None = None
    organization_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def for_command(cls, name: str, user_id: int | None = None) -> AuditContext:
        """A command line run (`delivery …`): the command is the client unless a user is named."""
        return cls(user_id=user_id, client_id=None if user_id else f"cli:{name}"[:64])

    def acting_as(self, user_id: int, roles: dict[int, str] | None = None) -> AuditContext:
        """The same request once its actor is known (a sign-in, a route link opened)."""
        role, organization_id = widest_role(roles or {})
        return dataclasses.replace(self, user_id=user_id, client_id=None, role=role,
                                   organization_id=organization_id)


def widest_role(roles: dict[int, str]) -> tuple[str | None, int | None]:
    """(role, organization) of a person's widest membership: what they could do here."""
    for name in ROLE_ORDER:
        for organization_id, role in sorted(roles.items()):
            if role == name:
                return role, organization_id
    return None, None


def record(db: Session, ctx: AuditContext, action: str, resource: str, resource_id: object = None,
           patient_id: int | None = None, outcome: str = "ok", detail: str | None = None) -> AuditEvent:
    """Add one audit row to the caller's transaction (it commits or rolls back with the change;
    a refused sign-in is committed by its caller on purpose)."""
    event = AuditEvent(**_row(ctx, action, resource, resource_id, patient_id, outcome, detail))
    db.add(event)
    return event


def _row(ctx: AuditContext, action: str, resource: str, resource_id: object, patient_id: int | None,
         outcome: str, detail: str | None) -> dict[str, object]:
    """An audit row's columns (the one place that says what a row holds)."""
    return {"user_id": ctx.user_id, "client_id": ctx.client_id, "role": ctx.role,
            "organization_id": ctx.organization_id, "ip": ctx.ip,
            "user_agent": (ctx.user_agent or "")[:300] or None, "request_id": ctx.request_id,
            "action": action[:20], "resource": resource[:60],
            "resource_id": None if resource_id is None else str(resource_id)[:60],
            "patient_id": patient_id, "outcome": outcome[:20],
            "detail": None if detail is None else detail[:500]}


def record_reads(database: Database, ctx: AuditContext, resource: str,
                 reads: Iterable[tuple[object, int | None]], detail: str | None = None) -> None:
    """Audit reads of patient data, (resource id, patient id) each, in one short write of their own:
    the GET that read them holds only a reader (R10.1 audits reads; GETs never write otherwise)."""
    reads = list(reads)
    if not reads:
        return
    rows = [_row(ctx, "R", resource, resource_id, patient_id, "ok", detail)
            for resource_id, patient_id in reads]
    with database.writer() as db:  # one statement for them all: the writer is held only so long
        db.execute(insert(AuditEvent), rows)
        db.commit()
