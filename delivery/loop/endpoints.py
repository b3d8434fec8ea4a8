"""Webhook endpoints: a clinic admin registers a URL and the kinds it wants, and rotates its secret.

Every change to an endpoint (registered, secret rotated, turned off or on, a delivery resent) is
audited in the same transaction (R10.2), whoever makes it: a page, or the command line.

A URL must be `https://` and resolve only to public addresses (R9.4); loopback is allowed only when
the settings say so (the demo and the tests). The same check runs again before every request, so a
name that later resolves to a private address is refused then too (DNS rebinding).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.loop import signing
from delivery.models import (
    EndpointState,
    EventKind,
    Membership,
    Organization,
    OrganizationKind,
    Role,
    WebhookEndpoint,
    utcnow,
)
from delivery.platform import audit as audit_trail
from delivery.platform.audit import AuditContext
from delivery.platform.errors import FieldError

ROTATION_GRACE = dt.timedelta(hours=24)
MAX_URL_LENGTH = 500
MAX_ENDPOINTS_PER_CLINIC = 10
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class EndpointError(FieldError):
    """An endpoint that cannot be registered or changed as asked; the message says what to fix."""


@dataclass(frozen=True)
class Registered:
    endpoint: WebhookEndpoint
    secret: str  # shown once


def check_url(url: str, *, allow_loopback: bool) -> str:
    """The URL if it may receive webhooks, else EndpointError saying why (no DNS lookup here)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise EndpointError(f"Give the endpoint's URL (at most {MAX_URL_LENGTH} characters).", "url")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise EndpointError("The URL needs a host name, like https://ehr.example.org/webhooks.", "url")
    if parts.username or parts.password:
        raise EndpointError("Leave credentials out of the URL; the signature authenticates us.", "url")
    loopback = host in LOOPBACK_NAMES
    if loopback and not allow_loopback:
        raise EndpointError("The URL points at this machine; give the clinic system's public address.",
                            "url")
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise EndpointError("Webhooks are sent over https only: the URL must start with https://.", "url")
    return url


def refuse_private(url: str, *, allow_loopback: bool) -> None:
    """Resolve the URL's host now and refuse it unless every address is public (R9.4).

    Called at registration and before each request, so a name that changes to a private or
    metadata address is caught when it matters."""
    host = urlsplit(url).hostname or ""
    port = urlsplit(url).port or 443
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise EndpointError(f"The host {host} does not resolve.", "url") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_loopback and allow_loopback:
            continue
        if not address.is_global:
            raise EndpointError(f"{host} resolves to {address}, which is not a public address.", "url")


def check_kinds(kinds: Sequence[str]) -> list[str]:
    known = {k.value for k in EventKind if k is not EventKind.legacy}
    unknown = [k for k in kinds if k not in known]
    if unknown:
        raise EndpointError(f"Unknown event kind {', '.join(unknown)}: choose from "
                            f"{', '.join(sorted(known))} (or none for every kind).", "events")
    return sorted(set(kinds))


def register(db: Session, clinic: Organization, url: str, kinds: Sequence[str] = (), *,
             allow_loopback: bool, actor: AuditContext, resolve: bool = True) -> Registered:
    """Add an endpoint; its secret is returned here and never shown again."""
    if clinic.kind != OrganizationKind.clinic:
        raise EndpointError(f"{clinic.name} is not a clinic.", "clinic")
    url = check_url(url, allow_loopback=allow_loopback)
    wanted = check_kinds(kinds)
    if resolve:
        refuse_private(url, allow_loopback=allow_loopback)
    count = len(endpoints_of(db, clinic.id))
    if count >= MAX_ENDPOINTS_PER_CLINIC:
        raise EndpointError(f"A clinic has at most {MAX_ENDPOINTS_PER_CLINIC} endpoints; remove one first.")
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(clinic_id=clinic.id, url=url, secret=secret, event_kinds=wanted,
                               state=EndpointState.active, consecutive_failures=0, created_at=utcnow(),
                               created_by_id=actor.user_id)
    db.add(endpoint)
    db.flush()
    audit(db, actor, "C", endpoint, f"registered for {clinic.name}: {url}; events: "
                                       f"{', '.join(wanted) or 'every kind'}")
    return Registered(endpoint, secret)


def rotate(db: Session, endpoint: WebhookEndpoint, *, now: dt.datetime, actor: AuditContext) -> str:
    """A new secret; the old one keeps signing (beside it) for ROTATION_GRACE. Returns the new one."""
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = now + ROTATION_GRACE
    endpoint.secret = signing.new_secret()
    db.flush()
    audit(db, actor, "U", endpoint, f"secret rotated; the old one signs too until "
                                       f"{endpoint.previous_secret_until:%Y-%m-%d %H:%M} UTC")
    return endpoint.secret


def audit(db: Session, actor: AuditContext, action: str, endpoint: WebhookEndpoint, detail: str) -> None:
    """One audit row for a change to an endpoint (never its secret)."""
    audit_trail.record(db, actor, action, "webhook_endpoint", endpoint.id, detail=detail)


def signing_secrets(endpoint: WebhookEndpoint, now: dt.datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during its grace period."""
    keys = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and now < endpoint.previous_secret_until:
        keys.append(endpoint.previous_secret)
    return keys


def set_enabled(db: Session, endpoint: WebhookEndpoint, enabled: bool, *, actor: AuditContext) -> None:
    """Turn sending off (new events are not queued for it) or on again."""
    if (endpoint.state != EndpointState.disabled) == enabled:
        raise EndpointError(f"This endpoint is {'on' if enabled else 'off'} already.")
    endpoint.state = EndpointState.active if enabled else EndpointState.disabled
    if enabled:
        endpoint.consecutive_failures, endpoint.failing_since, endpoint.notice = 0, None, None
    db.flush()
    audit(db, actor, "U", endpoint, "turned on" if enabled else "turned off")


def endpoints_of(db: Session, clinic_id: int) -> list[WebhookEndpoint]:
    return list(db.scalars(select(WebhookEndpoint).where(WebhookEndpoint.clinic_id == clinic_id)
                           .order_by(WebhookEndpoint.id)))


def administered_clinics(db: Session, user_id: int) -> list[Organization]:
    """Clinics whose endpoints this person manages: clinics they administer, and the clinics of a
    food bank they administer."""
    admin_of = list(db.scalars(select(Membership.organization_id).where(
        Membership.user_id == user_id, Membership.role == Role.admin)))
    if not admin_of:
        return []
    return list(db.scalars(select(Organization).where(
        Organization.kind == OrganizationKind.clinic,
        Organization.id.in_(admin_of) | Organization.food_bank_id.in_(admin_of)).order_by(Organization.name)))


def find_clinic(db: Session, name_or_id: str) -> Organization:
    """A clinic by its name or id (for the command line)."""
    query = select(Organization).where(Organization.kind == OrganizationKind.clinic)
    clinic = db.scalar(query.where(Organization.name == name_or_id))
    if clinic is None and name_or_id.isdigit():
        clinic = db.scalar(query.where(Organization.id == int(name_or_id)))
    if clinic is None:
        names = ", ".join(db.scalars(query.with_only_columns(Organization.name).order_by(Organization.name)))
        raise EndpointError(f"No clinic named {name_or_id!r}; the clinics are: {names or 'none yet'}.",
                            "clinic")
    return clinic
