"""Registering a clinic's system for SMART Backend Services without code: from the command line
(`delivery fhir-client add|list|revoke`) or the admins' FHIR page. Every change is audited.

Services here never commit; callers do.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import httpx
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.loop.fhir import scopes, smart
from delivery.models import FhirClient, Organization, User
from delivery.platform import audit
from delivery.platform.audit import AuditContext
from delivery.platform.clock import Clock
from delivery.platform.errors import FieldError

# What the routes of /fhir need, and all a clinic's system is granted unless told otherwise.
DEFAULT_SCOPES = " ".join(smart.SCOPES_SUPPORTED)
CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,99}$")
MAX_JWKS_BYTES = 64_000


class ClientError(FieldError):
    """A client that cannot be registered or revoked as asked; the message says what to fix."""

    default_code = "fhir_client_refused"


def read_jwks(text: str | bytes) -> dict[str, Any]:
    """A JWKS document (JSON text) as data, or ClientError saying what is wrong with it."""
    if len(text) > MAX_JWKS_BYTES:
        raise ClientError(f"The key set is over {MAX_JWKS_BYTES // 1000} kB: send the public keys only.",
                          "jwks")
    try:
        found = json.loads(text)
    except ValueError as exc:
        raise ClientError(f"The key set is not JSON: {exc}.", "jwks") from None
    if not isinstance(found, dict) or not isinstance(found.get("keys"), list) or not found["keys"]:
        raise ClientError('A key set is a JSON object {"keys": [...]} with at least one public key.', "jwks")
    return found


def fetch_jwks(url: str, http: httpx.Client, *, allow_loopback: bool) -> dict[str, Any]:
    """The key set published at the clinic's JWKS URL (read once, at registration; the URL is kept as
    the only `jku` an assertion may name)."""
    if not url.startswith("https://") and not (allow_loopback and url.startswith("http://127.0.0.1")):
        raise ClientError("The JWKS URL must be https://.", "jku")
    try:
        answer = http.get(url, timeout=10, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ClientError(f"Could not read the key set at {url}: {exc}.", "jku") from None
    if answer.status_code != 200:
        raise ClientError(f"Could not read the key set at {url}: HTTP {answer.status_code}.", "jku")
    return read_jwks(answer.content)


def add(db: Session, ctx: AuditContext, clinic: Organization, jwks: dict[str, Any], *,
        jku: str | None = None, scope: str | None = None, client_id: str | None = None) -> FhirClient:
    """Register the clinic's system with its public keys; returns the row (its `client_id` is what the
    clinic puts in its assertions' iss and sub)."""
    client_id = client_id or f"{re.sub(r'[^a-z0-9]+', '-', clinic.name.lower()).strip('-')[:60]}-" \
                            f"{secrets.token_hex(4)}"
    if not CLIENT_ID.match(client_id):
        raise ClientError("A client id is 3 to 100 letters, digits, dots, dashes or underscores.",
                          "client_id")
    if db.scalar(select(FhirClient.id).where(FhirClient.client_id == client_id)):
        raise ClientError(f"The client id {client_id} is taken: choose another.", "client_id")
    scope = " ".join((scope or DEFAULT_SCOPES).split())
    wrong = [s for s in scope.split() if scopes.permissions(s) is None]
    if wrong:
        raise ClientError(f"{wrong[0]} is not a system scope (such as system/Task.rs).", "scope")
    try:
        client = smart.register_client(db, clinic_id=clinic.id, client_id=client_id, jwks=jwks, scope=scope,
                                       jku=jku)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ClientError(f"The key set was refused: {exc}", "jwks") from None
    kids = ", ".join(str(k.get("kid", "?")) for k in client.jwks["keys"])
    audit.record(db, ctx, "C", "fhir_client", client.client_id,
                 detail=f"for {clinic.name}; keys {kids}; jku {jku or 'none'}; scopes {scope}")
    return client


def revoke(db: Session, ctx: AuditContext, client_id: str, clock: Clock,
           clinic_ids: list[int] | None = None) -> FhirClient:
    """Stop a client: its tokens stop working at once, and it gets no new ones. `clinic_ids`: only
    among these clinics' clients (an admin's page); None: any (the command line)."""
    client = db.scalar(select(FhirClient).where(FhirClient.client_id == client_id))
    if client is None or (clinic_ids is not None and client.clinic_id not in clinic_ids):
        raise ClientError(f"No FHIR client {client_id}.", "client_id")
    if client.revoked_at is not None:
        raise ClientError(f"{client_id} was revoked already.", "client_id")
    client.revoked_at = clock.now()
    user = db.get(User, client.user_id)
    if user is not None:
        user.is_active = False
    audit.record(db, ctx, "U", "fhir_client", client.client_id, detail="revoked")
    db.flush()
    return client


def listing(db: Session, clinic_ids: list[int] | None = None) -> list[tuple[FhirClient, Organization]]:
    """Registered clients with their clinics, newest first."""
    query = (select(FhirClient, Organization).join(Organization, Organization.id == FhirClient.clinic_id)
             .order_by(FhirClient.id.desc()))
    if clinic_ids is not None:
        query = query.where(FhirClient.clinic_id.in_(clinic_ids))
    return [(c, o) for c, o in db.execute(query)]
