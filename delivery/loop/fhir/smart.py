"""SMART Backend Services (R1.6): a clinic's system signs a JWT with its own key and gets a short-lived
access token limited to its clinic and to the scopes it was granted. Signatures are checked by
`joserfc`; this module only decides which key, which claims and which scopes."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from delivery.loop.fhir import scopes
from delivery.models import FhirAccessToken, FhirAssertionUse, FhirClient, Role, User
from delivery.platform import auth

ALGORITHMS = ["RS384", "ES384"]  # what SMART Backend Services asks servers to support
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_LIFETIME = dt.timedelta(seconds=300)
MAX_ASSERTION_LIFETIME = dt.timedelta(seconds=300)
SCOPES_SUPPORTED = ("system/Task.rsu", "system/Patient.c", "system/ServiceRequest.cr", "system/Procedure.r",
                    "system/HealthcareService.rs")


class TokenError(ValueError):
    """An OAuth error response: `error` is the code (invalid_client, invalid_scope…), the message says why."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    scope: str
    expires_in: int
    token_type: str = "bearer"


def register_client(db: Session, *, clinic_id: int, client_id: str, jwks: dict[str, Any], scope: str,
                    jku: str | None = None) -> FhirClient:
    """A clinic's system, with its public keys and the scopes it may ask for. It acts as its own
    account, a member of that clinic only, so every rule about a clinic's data applies to it."""
    keys = KeySet.import_key_set(jwks)  # refuses what is not a key set
    if any(key.is_private for key in keys):
        raise ValueError("Register the public keys only (the JWKS holds a private key).")
    user = auth.create_user(db, email=f"{client_id}@system-clients.invalid",
                            display_name=f"System {client_id}",
                            memberships=[(clinic_id, Role.clinic_staff)])
    client = FhirClient(client_id=client_id, user_id=user.id, clinic_id=clinic_id,
                        jwks={"keys": [key.as_dict(private=False) for key in keys]}, jku=jku, scopes=scope)
    db.add(client)
    db.flush()
    return client


def claimed_client(form: dict[str, str]) -> str | None:
    """The client_id an assertion claims (unverified: only to count its failed requests)."""
    try:
        claimed = json.loads(jws.extract_compact((form.get("client_assertion") or "").encode()).payload)
    except (JoseError, ValueError):
        return None
    return str(claimed.get("iss"))[:100] if isinstance(claimed, dict) and claimed.get("iss") else None


def issue_token(db: Session, form: dict[str, str], *, token_url: str, now: dt.datetime) -> IssuedToken:
    """Check a client_credentials request with its signed assertion; issue a short-lived token."""
    if form.get("grant_type") != "client_credentials":
        raise TokenError("unsupported_grant_type", "Use grant_type=client_credentials.")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise TokenError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}.")
    assertion = form.get("client_assertion") or ""
    try:
        unverified = jws.extract_compact(assertion.encode())
        header = unverified.headers()
        claimed = json.loads(unverified.payload)
    except (JoseError, ValueError):
        raise TokenError("invalid_client", "client_assertion is not a signed JWT.") from None
    if header.get("alg") not in ALGORITHMS:
        raise TokenError("invalid_client", f"Sign the assertion with {' or '.join(ALGORITHMS)}.")
    if not isinstance(claimed, dict) or claimed.get("iss") != claimed.get("sub"):
        raise TokenError("invalid_client", "iss and sub must both be the client_id.")
    client = db.scalar(select(FhirClient).where(FhirClient.client_id == str(claimed.get("iss")),
                                                FhirClient.revoked_at.is_(None)))
    if client is None:
        raise TokenError("invalid_client", "Unknown client.")
    if "jku" in header and header["jku"] != client.jku:
        raise TokenError("invalid_client", "The assertion's jku is not the key set registered for it.")
    try:
        key = KeySet.import_key_set(client.jwks).get_by_kid(str(header.get("kid", "")))
        claims = jwt.decode(assertion, key, algorithms=ALGORITHMS).claims
    except JoseError:
        raise TokenError("invalid_client", "No registered key with this kid verifies it.") from None
    _check_claims(claims, token_url, now)
    db.execute(delete(FhirAssertionUse).where(FhirAssertionUse.expires_at < now))
    if db.scalar(select(FhirAssertionUse.id).where(FhirAssertionUse.client_pk == client.id,
                                                   FhirAssertionUse.jti == str(claims["jti"]))):
        raise TokenError("invalid_client", "This assertion (jti) was already used.")
    db.add(FhirAssertionUse(client_pk=client.id, jti=str(claims["jti"])[:200],
                            expires_at=dt.datetime.fromtimestamp(claims["exp"], dt.UTC)))
    granted = scopes.narrow(form.get("scope", ""), client.scopes)
    if not granted:
        raise TokenError("invalid_scope", f"Ask for system/ scopes within those granted: {client.scopes}.")
    raw = "smt_" + secrets.token_urlsafe(32)
    db.add(FhirAccessToken(token_hash=auth.token_hash(raw), client_pk=client.id, scopes=granted,
                           expires_at=now + TOKEN_LIFETIME))
    db.flush()
    return IssuedToken(access_token=raw, scope=granted, expires_in=int(TOKEN_LIFETIME.total_seconds()))


def _check_claims(claims: dict[str, Any], token_url: str, now: dt.datetime) -> None:
    if claims.get("aud") != token_url:
        raise TokenError("invalid_client", f"aud must be this token endpoint, {token_url}.")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise TokenError("invalid_client", "The assertion needs exp.")
    expires = dt.datetime.fromtimestamp(exp, dt.UTC)
    if expires <= now:
        raise TokenError("invalid_client", "The assertion has expired.")
    if expires > now + MAX_ASSERTION_LIFETIME:
        raise TokenError("invalid_client", "exp may be at most 5 minutes ahead.")
    if not claims.get("jti"):
        raise TokenError("invalid_client", "The assertion needs a jti.")


def resolve_token(db: Session, raw: str, now: dt.datetime) -> tuple[User, frozenset[str]] | None:
    """The client's account and granted scopes for a live access token, or None."""
    token = db.scalar(select(FhirAccessToken).where(FhirAccessToken.token_hash == auth.token_hash(raw),
                                                    FhirAccessToken.expires_at > now))
    client = db.get(FhirClient, token.client_pk) if token is not None else None
    if token is None or client is None or client.revoked_at is not None:
        return None
    user = db.get(User, client.user_id)
    return (user, frozenset(token.scopes.split())) if user is not None and user.is_active else None
