"""Texts to patients on the web: Twilio's webhooks (replies, delivery status) and the coordinators'
texts page (the inbox of replies to read, the outbox of every text and its state, texting on/off).

The webhooks are public but signed: each request must carry Twilio's `X-Twilio-Signature` over the
URL we gave Twilio (`base_url` + path) and the form, checked with twilio's `RequestValidator`. They
need no CSRF token (Twilio has no session; like /api, cookies are not what authenticates them).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import PermissionDeniedException
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from delivery.loop.messages import outgoing, replies
from delivery.models import Organization
from delivery.platform import audit as audit_trail
from delivery.platform.settings import Settings
from delivery.web.coordinator.overview import COORDINATORS
from delivery.web.render import DB, Audit, Config, PathId, clock_of, page, principal

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
POLICY = {"roles": COORDINATORS}
TWILIO = {"public": True}  # the signature is the credential


def signed_by_twilio(request: Request, settings: Settings, form: dict[str, Any]) -> None:
    """Refuse a request whose X-Twilio-Signature does not match our auth token, URL and form."""
    if not settings.twilio_auth_token:
        raise PermissionDeniedException("Texting is not set up here.")
    url = settings.base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get("x-twilio-signature", "")
    params = {k: v if isinstance(v, str) else v[0] for k, v in form.items()}
    if not signature or not RequestValidator(settings.twilio_auth_token).validate(url, params, signature):
        raise PermissionDeniedException("The Twilio signature does not match.")


class TwilioWebhooks(Controller):
    path = "/sms"

    @post("/inbound", opt=TWILIO, sync_to_thread=True, status_code=200)
    def inbound(self, request: Request, db: DB, settings: Config, data: FormData) -> Response[str]:
        """A patient's reply. Answers empty TwiML: the reply's effect is in the inbox, not a text back."""
        signed_by_twilio(request, settings, data)
        replies.receive(db, settings, sid=str(data.get("MessageSid") or data.get("SmsSid") or ""),
                        from_number=str(data.get("From") or ""), body=str(data.get("Body") or ""),
                        now=clock_of(request).now())
        db.commit()
        return Response(str(MessagingResponse()), media_type=MediaType.XML)

    @post("/status", opt=TWILIO, sync_to_thread=True, status_code=204)
    def status(self, request: Request, db: DB, settings: Config, data: FormData) -> None:
        """Twilio's status callback for a text we sent."""
        signed_by_twilio(request, settings, data)
        code = str(data.get("ErrorCode") or "")
        replies.status_callback(db, sid=str(data.get("MessageSid") or ""),
                                status=str(data.get("MessageStatus") or ""),
                                error_code=int(code) if code.isdigit() else None, now=clock_of(request).now())
        db.commit()


class TextsController(Controller):
    path = "/coordinator/texts"

    @get("/", opt=POLICY, sync_to_thread=True)
    def texts(self, request: Request, db: DB, settings: Config, audit: Audit) -> Template:
        """Replies to read, then every text (sent, queued for 8 am, or what would have gone).
        The patients' own words are PHI: showing them is audited."""
        ids = principal(request).organizations_with(*COORDINATORS)
        programs = db.scalars(select(Organization).where(Organization.id.in_(ids))
                              .order_by(Organization.name)).all()
        inbox = replies.inbox(db, ids)
        audit_trail.record_reads(request.app.state.database, audit, "inbound_text",
                                 [(item.id, item.patient_id) for item in inbox])
        return page(request, "coordinator/texts.html", programs=programs, inbox=inbox,
                    outbox=outgoing.recent(db, ids), configured=outgoing.configured(settings))

    @post("/inbox/{item_id:int}/handled", opt=POLICY, sync_to_thread=True)
    def mark_handled(self, request: Request, db: DB, audit: Audit, item_id: PathId) -> Redirect:
        replies.mark_handled(db, audit, item_id, principal(request).organizations_with(*COORDINATORS),
                             clock_of(request).now())
        db.commit()
        return Redirect("/coordinator/texts", status_code=303)

    @post("/programs/{food_bank_id:int}/enabled", opt=POLICY, sync_to_thread=True)
    def set_enabled(self, request: Request, db: DB, audit: Audit, food_bank_id: PathId,
                    data: FormData) -> Redirect:
        if food_bank_id not in principal(request).organizations_with(*COORDINATORS):
            raise PermissionDeniedException("You do not coordinate this program.")
        food_bank = db.get(Organization, food_bank_id)
        assert food_bank is not None
        outgoing.set_texting(db, audit, food_bank, data.get("enabled") == "true")
        db.commit()
        return Redirect("/coordinator/texts", status_code=303)
