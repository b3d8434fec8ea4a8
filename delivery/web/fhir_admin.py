"""The admins' FHIR page (`/fhir-admin`): clinic systems registered for SMART Backend Services (add by
public keys, revoke), and Direct Light connections to clinics' own FHIR servers (add; each with its
last successful poll, last error and counts). Rules and audit rows live in
`delivery.loop.fhir.clients` and `delivery.loop.fhir.light`; an admin sees the clinics they
administer (a food bank's admin: every clinic of the program), as for webhooks. Stored secrets (a
bearer token, our private key) are never shown back."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from delivery.loop import endpoints
from delivery.loop.fhir import clients, light
from delivery.models import Organization, Role
from delivery.web.render import DB, Audit, Config, clock_of, page, principal

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
POLICY = {"roles": (Role.admin,)}


def clinics_of(db: Session, request: Request) -> list[Organization]:
    return endpoints.administered_clinics(db, principal(request).user_id)


class FhirAdminController(Controller):
    path = "/fhir-admin"

    @get("/", opt=POLICY, sync_to_thread=True)
    def overview(self, request: Request, db: DB) -> Template:
        """Registered systems of the admin's clinics, and the form to register one."""
        return self._page(request, db)

    def _page(self, request: Request, db: Session, *, errors: dict[str, str] | None = None,
              values: dict[str, Any] | None = None, said: str | None = None,
              conn_errors: dict[str, str] | None = None, conn_values: dict[str, Any] | None = None,
              status_code: int = 200) -> Template:
        clinics = clinics_of(db, request)
        return page(request, "fhir_admin/overview.html", clinics=clinics,
                    systems=clients.listing(db, [c.id for c in clinics]),
                    default_scopes=clients.DEFAULT_SCOPES,
                    connections=light.summaries(db, [c.id for c in clinics]),
                    min_interval=light.MIN_INTERVAL_MINUTES,
                    errors=errors or {}, values=values or {}, said=said, conn_errors=conn_errors or {},
                    conn_values=conn_values or {}, status_code=status_code)

    @post("/clients", opt=POLICY, sync_to_thread=True, status_code=200)
    def add_client(self, request: Request, db: DB, settings: Config, audit: Audit,
                   data: FormData) -> Template:
        """Register a system by its JWKS (pasted) or its JWKS URL (read now)."""
        url = str(data.get("jku") or "").strip() or None
        pasted = str(data.get("jwks") or "").strip()
        try:
            if url:  # read the keys before the first query: no write lock while another server answers
                with httpx.Client() as http:
                    jwks = clients.fetch_jwks(url, http, allow_loopback=settings.webhook_allow_loopback)
            elif pasted:
                jwks = clients.read_jwks(pasted)
            else:
                raise clients.ClientError("Paste the system's public keys (JWKS) or give its JWKS URL.",
                                          "jwks")
            clinic = next((c for c in clinics_of(db, request) if str(c.id) == str(data.get("clinic_id"))),
                          None)
            if clinic is None:
                raise clients.ClientError("Choose one of your clinics.", "clinic_id")
            made = clients.add(db, audit, clinic, jwks, jku=url, scope=str(data.get("scope") or "") or None,
                               client_id=str(data.get("client_id") or "").strip() or None)
        except clients.ClientError as exc:
            db.rollback()
            return self._page(request, db, errors={exc.field or "jwks": str(exc)}, values=data,
                              status_code=422)
        db.commit()
        return self._page(request, db, said=f"Registered {made.client_id} for {clinic.name}. "
                                            f"The system signs its assertions with iss and sub "
                                            f"{made.client_id}.")

    @post("/clients/{client_id:str}/revoke", opt=POLICY, sync_to_thread=True, status_code=200)
    def revoke_client(self, request: Request, db: DB, audit: Audit,
                      client_id: FromPath[str]) -> Template | Redirect:
        try:
            clients.revoke(db, audit, client_id[:100], clock_of(request),
                           [c.id for c in clinics_of(db, request)])
        except clients.ClientError as exc:
            db.rollback()
            return self._page(request, db, errors={"revoke": str(exc)}, status_code=404)
        db.commit()
        return Redirect("/fhir-admin/", status_code=303)

    @post("/connections", opt=POLICY, sync_to_thread=True, status_code=200)
    def add_connection(self, request: Request, db: DB, settings: Config, audit: Audit,
                       data: FormData) -> Template:
        """Connect a clinic's FHIR server (Direct Light); its first poll is queued at once."""
        text = {k: str(data.get(k) or "").strip() for k in (
            "clinic_id", "base_url", "owner_reference", "bearer_token", "token_url", "remote_client_id",
            "private_jwk", "interval_minutes", "hours_start", "hours_end")}
        shown = {k: v for k, v in text.items() if k not in ("bearer_token", "private_jwk")}  # never echoed
        try:
            numbers = {}
            for name, default in (("interval_minutes", light.DEFAULT_INTERVAL_MINUTES), ("hours_start", 8),
                                  ("hours_end", 18)):
                if text[name] and not text[name].isdigit():
                    raise light.ConnectionRefused("Enter whole numbers.", name)
                numbers[name] = int(text[name]) if text[name] else default
            jwk = None
            if text["private_jwk"]:
                try:
                    jwk = json.loads(text["private_jwk"])
                except ValueError:
                    raise light.ConnectionRefused("The private key is not JSON (a JWK).",
                                                  "private_jwk") from None
            clinic = next((c for c in clinics_of(db, request) if str(c.id) == text["clinic_id"]), None)
            if clinic is None:
                raise light.ConnectionRefused("Choose one of your clinics.", "clinic_id")
            made = light.add_connection(
                db, audit, clinic, base_url=text["base_url"], owner_reference=text["owner_reference"],
                bearer_token=text["bearer_token"] or None, token_url=text["token_url"] or None,
                client_id=text["remote_client_id"] or None, private_jwk=jwk,
                interval_minutes=numbers["interval_minutes"],
                hours=(numbers["hours_start"], numbers["hours_end"]),
                allow_loopback=settings.webhook_allow_loopback, now=clock_of(request).now())
        except light.ConnectionRefused as exc:
            db.rollback()
            return self._page(request, db, conn_errors={exc.field or "base_url": str(exc)}, conn_values=shown,
                              status_code=422)
        db.commit()
        return self._page(request, db, said=f"Connected {clinic.name}'s FHIR server ({made.base_url}); the "
                                            "first poll runs within a minute.")
