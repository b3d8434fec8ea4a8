"""Webhook endpoints for admins: a clinic's admin (the `admin` role of the clinic) and the food
bank's admin (for every clinic of the program) register endpoints, see what each was sent, resend,
send a test event, rotate the secret and turn an endpoint off or on.

Rules and audit rows live in delivery.loop.endpoints and delivery.loop.sender; a secret is shown
once, in the answer to the request that made it. An endpoint of a clinic the admin does not
administer is 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.loop import endpoints, sender
from delivery.models import EventKind, Organization, Role, WebhookDelivery, WebhookEndpoint
from delivery.platform.db import Database
from delivery.web.render import DB, Audit, Config, PathId, clock_of, page, principal

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
POLICY = {"roles": (Role.admin,)}
KINDS = [k.value for k in EventKind if k is not EventKind.legacy]


def clinics_of(db: Session, request: Request) -> list[Organization]:
    return endpoints.administered_clinics(db, principal(request).user_id)


def own_endpoint(db: Session, request: Request, endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.clinic_id not in {c.id for c in clinics_of(db, request)}:
        raise NotFoundException("No such webhook endpoint.")
    return endpoint


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


class WebhookController(Controller):
    path = "/webhooks"

    @get("/", opt=POLICY, sync_to_thread=True)
    def list_endpoints(self, request: Request, db: DB) -> Template:
        """The endpoints of every clinic the admin looks after, and the form to add one."""
        return self._list_page(request, db)

    def _list_page(self, request: Request, db: Session, *, errors: dict[str, str] | None = None,
                   values: dict[str, Any] | None = None, status_code: int = 200) -> Template:
        clinics = clinics_of(db, request)
        rows = [(clinic, endpoints.endpoints_of(db, clinic.id)) for clinic in clinics]
        return page(request, "webhooks/endpoints.html", rows=rows, clinics=clinics, kinds=KINDS,
                    errors=errors or {}, values=values or {}, status_code=status_code)

    @post("/", opt=POLICY, sync_to_thread=True, status_code=200)
    def register(self, request: Request, db: DB, settings: Config, audit: Audit,
                 data: FormData) -> Template:
        """Register an endpoint; the answer shows its secret, once."""
        clinic_id = str(data.get("clinic_id") or "")
        clinic = next((c for c in clinics_of(db, request) if str(c.id) == clinic_id), None)
        try:
            if clinic is None:
                raise endpoints.EndpointError("Choose one of your clinics.", "clinic_id")
            made = endpoints.register(db, clinic, str(data.get("url") or ""), as_list(data.get("events")),
                                      allow_loopback=settings.webhook_allow_loopback,
                                      actor=audit)
        except endpoints.EndpointError as exc:
            db.rollback()
            return self._list_page(request, db, errors={exc.field or "url": str(exc)}, values=data,
                                   status_code=422)
        db.commit()
        return self._endpoint_page(request, db, made.endpoint.id, secret=made.secret, status_code=201)

    @get("/{endpoint_id:int}", opt=POLICY, sync_to_thread=True)
    def endpoint_page(self, request: Request, db: DB, endpoint_id: PathId) -> Template:
        """One endpoint: its notice, recent deliveries (status, latency), failures, and its buttons."""
        return self._endpoint_page(request, db, endpoint_id)

    def _endpoint_page(self, request: Request, db: Session, endpoint_id: int, *, secret: str | None = None,
                       said: str | None = None, error: str | None = None,
                       test: sender.Answer | None = None, status_code: int = 200) -> Template:
        endpoint = own_endpoint(db, request, endpoint_id)
        return page(request, "webhooks/endpoint.html", endpoint=endpoint,
                    clinic=db.get(Organization, endpoint.clinic_id), secret=secret, said=said, error=error,
                    test=test, deliveries=sender.recent(db, endpoint.id),
                    failures=sender.failures(db, endpoint.id), status_code=status_code)

    @post("/{endpoint_id:int}/rotate", opt=POLICY, sync_to_thread=True, status_code=200)
    def rotate(self, request: Request, db: DB, audit: Audit, endpoint_id: PathId) -> Template:
        """A new secret, shown once; the old one keeps signing beside it for a day."""
        endpoint = own_endpoint(db, request, endpoint_id)
        secret = endpoints.rotate(db, endpoint, now=clock_of(request).now(), actor=audit)
        db.commit()
        return self._endpoint_page(request, db, endpoint_id, secret=secret,
                                   said="New secret made. The old one also signs for 24 hours: "
                                        "switch your receiver to the new one before then.")

    @post("/{endpoint_id:int}/enabled", opt=POLICY, sync_to_thread=True, status_code=200)
    def set_enabled(self, request: Request, db: DB, audit: Audit, endpoint_id: PathId,
                    data: FormData) -> Template | Redirect:
        endpoint = own_endpoint(db, request, endpoint_id)
        try:
            endpoints.set_enabled(db, endpoint, data.get("enabled") == "true", actor=audit)
        except endpoints.EndpointError as exc:
            db.rollback()
            return self._endpoint_page(request, db, endpoint_id, error=str(exc), status_code=422)
        db.commit()
        return Redirect(f"/webhooks/{endpoint_id}", status_code=303)

    @post("/{endpoint_id:int}/deliveries/{delivery_id:int}/resend", opt=POLICY, sync_to_thread=True,
          status_code=200)
    def resend(self, request: Request, db: DB, audit: Audit, endpoint_id: PathId,
               delivery_id: PathId) -> Template:
        """Send one event again now, with its webhook-id (a receiver that saw it drops the repeat)."""
        endpoint = own_endpoint(db, request, endpoint_id)
        delivery = db.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                                           WebhookDelivery.endpoint_id == endpoint.id))
        if delivery is None:
            raise NotFoundException("No such delivery for this endpoint.")
        sender.resend(db, delivery, clock_of(request).now(), actor=audit)
        webhook_id = delivery.message.webhook_id
        db.commit()
        return self._endpoint_page(request, db, endpoint_id,
                                   said=f"{webhook_id} will be sent again within seconds.")

    @post("/{endpoint_id:int}/test", opt=POLICY, sync_to_thread=True, status_code=200)
    def send_test(self, request: Request, db: DB, settings: Config, endpoint_id: PathId) -> Template:
        """Send a signed `test` event now and show what the receiver answered. The endpoint is read
        on a reader, so no write lock is held while the receiver takes its time."""
        database: Database = request.app.state.database
        with database.reader() as reader:
            endpoint = own_endpoint(reader, request, endpoint_id)
            answer = sender.send_test(endpoint, settings, clock_of(request).now())
        return self._endpoint_page(request, db, endpoint_id, test=answer)
