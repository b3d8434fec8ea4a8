"""The audit trail: who saw or changed which patient's data, when, from where (R1.1, R1.4).

One writer, `record`, in the caller's transaction. The web layer builds an `AuditContext` per
request (actor, role, organization, IP, user agent, request id) and services pass it through, so
every row carries the same fields whichever page, API call or command caused it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, insert, or_, select
from sqlalchemy.orm import Session

from delivery.models import AuditEvent, Membership, Patient
from delivery.platform.db import Database
from delivery.platform.spreadsheets import safe_cell

ROLE_ORDER = ("admin", "coordinator", "clinic_staff", "benefits", "driver")  # the widest role names the actor


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
                 reads: Iterable[tuple[object, int | None]], detail: str | None = None,
                 action: str = "R") -> None:
    """Audit reads (or an export, action "E") of patient data, (resource id, patient id) each, in
    one short write of their own: the GET that read them holds only a reader (R10.1 audits reads;
    GETs never write otherwise)."""
    reads = list(reads)
    if not reads:
        return
    rows = [_row(ctx, action, resource, resource_id, patient_id, "ok", detail)
            for resource_id, patient_id in reads]
    with database.writer() as db:  # one statement for them all: the writer is held only so long
        db.execute(insert(AuditEvent), rows)
        db.commit()


def record_now(database: Database, ctx: AuditContext, action: str, resource: str, resource_id: object = None,
               patient_id: int | None = None, outcome: str = "ok", detail: str | None = None) -> None:
    """One audit row in a short write of its own, for a GET (which holds only a reader) or a
    refusal (whose request's transaction is rolled back)."""
    with database.writer() as db:
        record(db, ctx, action, resource, resource_id, patient_id=patient_id, outcome=outcome, detail=detail)
        db.commit()


def app_role_grants(role: str) -> list[str]:
    """What the table's owner runs once where the app connects as `role` (PostgreSQL): the app may
    read and add audit rows, never change or remove them (R10.3; migration 0020 adds the trigger
    that refuses UPDATE and DELETE to every role, the owner included)."""
    return [f'REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM "{role}"',
            f'GRANT SELECT, INSERT ON audit_events TO "{role}"',
            f'GRANT USAGE ON SEQUENCE audit_events_id_seq TO "{role}"']


# --- review (R10.5): an admin reads and exports the trail of their program ---------------------

EXPORT_COLUMNS = ("id", "at_utc", "user_id", "client_id", "role", "organization_id", "action", "resource",
                  "resource_id", "patient_id", "outcome", "ip", "user_agent", "request_id", "detail")


@dataclass(frozen=True)
class Filter:
    """Which rows to review; the dates are UTC days, both included."""

    organization_ids: Sequence[int]  # the reviewer's program: its food bank and clinics
    patient_id: int | None = None
    user_id: int | None = None
    since: dt.date | None = None
    until: dt.date | None = None


def _where(f: Filter) -> list[ColumnElement[bool]]:
    # A row is the program's when its actor acted there, its patient is one of the program's
    # clinics', or its actor (a sign-in refused before any role was known) belongs to the program.
    members = select(Membership.user_id).where(Membership.organization_id.in_(f.organization_ids))
    patients = select(Patient.id).where(Patient.clinic_id.in_(f.organization_ids))
    where = [or_(AuditEvent.organization_id.in_(f.organization_ids), AuditEvent.patient_id.in_(patients),
                 AuditEvent.user_id.in_(members))]
    if f.patient_id is not None:
        where.append(AuditEvent.patient_id == f.patient_id)
    if f.user_id is not None:
        where.append(AuditEvent.user_id == f.user_id)
    if f.since is not None:
        where.append(AuditEvent.at >= dt.datetime.combine(f.since, dt.time(), tzinfo=dt.UTC))
    if f.until is not None:
        where.append(AuditEvent.at < dt.datetime.combine(f.until + dt.timedelta(days=1), dt.time(),
                                                         tzinfo=dt.UTC))
    return where


def _rows(f: Filter) -> Select[tuple[AuditEvent]]:
    return select(AuditEvent).where(*_where(f)).order_by(AuditEvent.id.desc())


def page_of(db: Session, f: Filter, *, page: int, per_page: int) -> tuple[list[AuditEvent], int]:
    """One page of the matching rows, newest first, and how many match in all."""
    total = db.scalar(select(func.count()).select_from(AuditEvent).where(*_where(f))) or 0
    rows = db.scalars(_rows(f).offset((page - 1) * per_page).limit(per_page)).all()
    return list(rows), total


def export_rows(db: Session, f: Filter) -> Iterator[list[object]]:
    """Every matching row as spreadsheet-safe cells (a user agent or a detail is someone's text)."""
    for row in db.scalars(_rows(f).execution_options(yield_per=500)):
        at = row.at.astimezone(dt.UTC) if row.at.tzinfo else row.at
        yield [safe_cell(v) for v in (row.id, at.isoformat(timespec="microseconds"), row.user_id,
                                      row.client_id, row.role, row.organization_id, row.action,
                                      row.resource, row.resource_id, row.patient_id, row.outcome,
                                      row.ip, row.user_agent, row.request_id, row.detail)]
