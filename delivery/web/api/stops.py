"""`POST /api/v1/stops/{id}/confirmations`: the one way any client, the driver's page included,
records what happened at a stop (DESIGN.md; R7.3–R7.5, R8.3).

Who may call it: a driver, with their phone's delivery token (bound to one route) or an API token
of their own; only for stops on their own published routes. The API never takes cookies, so the
driver's page sends the delivery token it was given with the route: that keeps queued
confirmations working after the session cookie expires (R8.5).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, post, put
from litestar.background_tasks import BackgroundTask
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, JSONBody, RawBody
from msgspec import Meta
from sqlalchemy import select

from delivery.field import access, confirmations, photos
from delivery.models import Confirmation, ConfirmationOutcome, FieldReport, FieldReportKind, Role, Stop
from delivery.platform.db import Database
from delivery.referrals.schemas import Note
from delivery.web.errors import error_responses
from delivery.web.render import DB, Config, PathId, clock_of, principal

DRIVERS = (Role.driver,)
MAX_CONFIRM_BYTES = 64 * 1024  # R4.4
ACK_BEFORE_COMMIT_DELAY_S = 0.5  # the negative control's window between answer and commit


class ConfirmationIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcome: ConfirmationOutcome
    occurred_at: Annotated[dt.datetime, Meta(tz=True, description="When it happened, by the device's clock")]
    note: Note | None = None


class ConfirmationOut(msgspec.Struct, kw_only=True):
    id: int
    stop_id: int
    outcome: str
    note: str | None
    occurred_at: dt.datetime
    received_at: dt.datetime
    clock_flag: str | None


class PhotoOut(msgspec.Struct, kw_only=True):
    confirmation_id: int
    sha256: str
    bytes: int


class ProblemOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    status_code: int
    detail: str
    stored_outcome: str | None = None


def confirmation_out(row: Confirmation) -> ConfirmationOut:
    """Built from the stored row only, so a replay answers exactly what the first request got."""
    return ConfirmationOut(id=row.id, stop_id=row.stop_id, outcome=row.outcome, note=row.note,
                           occurred_at=row.occurred_at.astimezone(dt.UTC),
                           received_at=row.received_at.astimezone(dt.UTC),
                           clock_flag=confirmations.clock_flag(row.occurred_at, row.received_at))


def problem(status_code: int, detail: str, *, headers: dict[str, str] | None = None,
            stored_outcome: str | None = None) -> Response[Any]:
    return Response(ProblemOut(status_code=status_code, detail=detail, stored_outcome=stored_outcome),
                    status_code=status_code, headers=headers)


def answer(result: confirmations.ConfirmResult) -> Response[Any]:
    """The HTTP answer to what the confirmation service decided (the caller committed if it wrote)."""
    if result.kind is confirmations.ConfirmKind.key_reused:
        return problem(422, "This Idempotency-Key was already used for a different confirmation: "
                            "use a new key for a new confirmation.")
    if result.kind is confirmations.ConfirmKind.outcome_conflict:
        return problem(409, f"This stop is already confirmed as {result.stored_outcome}; "
                            "call your coordinator to change it.", stored_outcome=result.stored_outcome)
    assert result.confirmation is not None
    headers = {"Idempotency-Replay": "true"} if result.replayed else None
    return Response(confirmation_out(result.confirmation), status_code=result.status_code, headers=headers)


IdempotencyKey = Annotated[str, HeaderParameter(
    name="Idempotency-Key", required=True, max_length=confirmations.MAX_KEY_LENGTH,
    description="A fresh random key per confirmation (a UUID), the same on every retry of it.")]


def _acknowledge_before_commit(db: Any, database: Database, user_id: int, found: access.StopAccess,
                               data: ConfirmationIn, key: str, now: dt.datetime) -> Response[Any]:
    """The kill drill's negative control (Settings.drill_ack_before_commit): the answer leaves with
    the confirmation only flushed, and a moment later it is written again and committed in the
    background. A server killed in between has acknowledged a confirmation it never stored, which
    is what the drill must detect."""
    result = confirmations.confirm_stop(db, stop=found.stop, user_id=user_id, outcome=data.outcome,
                                        note=data.note, occurred_at=data.occurred_at, idempotency_key=key,
                                        window=found.window, now=now)
    response = answer(result)
    db.rollback()

    def commit_later() -> None:
        time.sleep(ACK_BEFORE_COMMIT_DELAY_S)
        with database.writer() as later:
            confirmations.confirm_stop(later, stop=later.get(Stop, found.stop.id), user_id=user_id,  # type: ignore[arg-type]
                                       outcome=data.outcome, note=data.note, occurred_at=data.occurred_at,
                                       idempotency_key=key, now=now)
            later.commit()

    response.background = BackgroundTask(commit_later)  # run in a thread, after the answer is sent
    return response


class StopApi(Controller):
    path = "/api/v1/stops"
    tags = ["stops"]
    security = [{"BearerToken": []}]

    @post("/{stop_id:int}/confirmations", status_code=201, opt={"roles": DRIVERS}, sync_to_thread=True,
          request_max_body_size=MAX_CONFIRM_BYTES, summary="Confirm what happened at a stop",
          description=(
              "Records the outcome at one of the caller's own stops, exactly once per Idempotency-Key. "
              "201 the first time; a retry with the same key and body gets the stored answer again "
              "with `Idempotency-Replay: true`; the same key with another body is 422; while the first "
              "request with a key is still being handled another gets 409 with Retry-After. When the "
              "stop already holds an outcome, the same outcome answers 200 without a new row and a "
              "different one 409 with `stored_outcome`. A confirmation made while the route was open "
              "is taken up to 72 hours after the route closed; later it is 410 and the coordinator "
              "is told."),
          responses={
              **error_responses(),  # 400, 401, 403, 500 as every API route
              200: ResponseSpec(ConfirmationOut, description="The stop already holds this outcome"),
              400: ResponseSpec(ProblemOut, description="Missing or invalid Idempotency-Key or body"),
              404: ResponseSpec(ProblemOut, description="Not one of your stops on a published route"),
              409: ResponseSpec(ProblemOut, description="Another outcome is stored, or the key is in flight"),
              410: ResponseSpec(ProblemOut, description="Outside the route's delivery window"),
              422: ResponseSpec(ProblemOut, description="The key was used with another body"),
          })
    def confirm_stop(self, request: Request, db: DB, settings: Config, stop_id: PathId,
                     data: JSONBody[ConfirmationIn], idempotency_key: IdempotencyKey) -> Response[Any]:
        who = principal(request)
        if not confirmations.valid_key(idempotency_key):
            return problem(400, "Send an Idempotency-Key header of 1 to 100 visible ASCII characters "
                                "(a UUID), the same on every retry.")
        database: Database = request.app.state.database
        try:
            with confirmations.holding_key(who.user_id, idempotency_key):
                # Who may confirm what, and whether this is a retry, are reads: they run on a reader,
                # so the writer (one at a time on SQLite) is held only by requests that write, and
                # only for the write itself (R14).
                with database.reader() as reading:
                    found = access.confirmable_stop(reading, stop_id=stop_id, user_id=who.user_id,
                                                    route_id=who.route_id)
                    if found is None:
                        return problem(404, f"No stop {stop_id} on your published routes.")
                    stored = confirmations.stored_answer(
                        reading, stop=found.stop, user_id=who.user_id, outcome=data.outcome,
                        note=data.note, occurred_at=data.occurred_at, idempotency_key=idempotency_key)
                    if stored is not None:
                        return answer(stored)
                if settings.drill_ack_before_commit:
                    return _acknowledge_before_commit(db, database, who.user_id, found, data, idempotency_key,
                                                      clock_of(request).now())
                return self._confirm(db, who.user_id, found, data, idempotency_key, clock_of(request).now())
        except confirmations.KeyInFlight as exc:
            return problem(409, f"{exc} Retry in a moment.", headers={"Retry-After": "1"})
        except confirmations.ConfirmError as exc:
            return problem(422, str(exc))

    @staticmethod
    def _confirm(db: Any, user_id: int, found: access.StopAccess, data: ConfirmationIn,
                 key: str, now: dt.datetime) -> Response[Any]:
        try:
            result = confirmations.confirm_stop(
                db, stop=found.stop, user_id=user_id, outcome=data.outcome, note=data.note,
                occurred_at=data.occurred_at, idempotency_key=key, window=found.window, now=now)
        except confirmations.OutsideWindow as exc:
            # The coordinator hears of it, so what happened at the door is not lost (R8.3). Nothing
            # of the refused confirmation was written, so the report is this request's one write.
            db.add(FieldReport(route_id=found.route.id, stop_id=found.stop.id, user_id=user_id,
                               kind=FieldReportKind.late_confirmation,
                               detail=f"{data.outcome.value} at {data.occurred_at.isoformat()}: {exc}"[:500]))
            db.commit()
            return problem(410, str(exc))
        if result.ok:
            db.commit()
        return answer(result)

    @put("/{stop_id:int}/confirmations/photo", status_code=201, opt={"roles": DRIVERS}, sync_to_thread=True,
         request_max_body_size=photos.MAX_BYTES, summary="Attach a photo to a confirmation",
         description=(
             "Optional proof of delivery for a confirmation the caller made, sent with that "
             "confirmation's Idempotency-Key and the image as the body (image/jpeg or image/png, at "
             "most 5 MB). The server checks the file's first bytes against its type, re-encodes it "
             "without any metadata (location included) and keeps its SHA-256. 201 the first time; "
             "a second upload for the confirmation is answered 200 with `Idempotency-Replay: true`."),
         responses={
             **error_responses(),
             200: ResponseSpec(PhotoOut, description="This confirmation already has its photo"),
             404: ResponseSpec(ProblemOut, description="No confirmation of yours with this key on this stop"),
             413: ResponseSpec(ProblemOut, description="Larger than 5 MB"),
             415: ResponseSpec(ProblemOut, description="Not a JPEG or PNG, or not what it claims to be"),
         })
    def attach_photo(self, request: Request, db: DB, settings: Config, stop_id: PathId,
                     idempotency_key: IdempotencyKey, body: RawBody) -> Response[Any]:
        who = principal(request)
        found = access.confirmable_stop(db, stop_id=stop_id, user_id=who.user_id, route_id=who.route_id)
        confirmation = found and db.scalar(select(Confirmation).where(
            Confirmation.user_id == who.user_id, Confirmation.idempotency_key == idempotency_key,
            Confirmation.stop_id == stop_id))
        if not confirmation:
            return problem(404, "Send the photo with the Idempotency-Key of your confirmation of this stop.")
        try:
            stored = photos.attach(confirmation, body, request.headers.get("content-type", ""),
                                   settings.photos)
        except photos.PhotoError as exc:
            return problem(415, str(exc))
        db.commit()
        body = PhotoOut(confirmation_id=confirmation.id, sha256=stored.sha256, bytes=stored.size)
        if stored.replayed:
            return Response(body, status_code=200, headers={"Idempotency-Replay": "true"})
        return Response(body, status_code=201)
