"""The webhook sender: delivers outbox messages to every subscribed endpoint, at least once.

It runs as the `outbox` job of `delivery worker`: `events.record` queues that job in the
transaction of each event, and a run delivers everything due, then queues itself again for the
next retry (`run`). Within a run:

1. `fan_out` hands each new outbox message to the endpoints of its clinic that want its kind and
   existed when it was written (one `webhook_deliveries` row each).
2. `claim` takes due deliveries and leases them (`next_attempt_at` moves to the end of the lease)
   in one short transaction; FOR UPDATE SKIP LOCKED lets several workers share the table.
3. The requests go out with no transaction open, several at a time, never following redirects.
4. `record` writes each answer: 2xx delivered; 410 gives up; anything else (3xx, 4xx, 5xx, a
   timeout, a dropped connection) is retried on the schedule of R9.3 with jitter, about three days
   in all. A worker killed between sending and recording leaves the lease to run out: the delivery
   is sent again with the same `webhook-id` (the receiver dedupes on it).

An endpoint that keeps failing is marked failing and its clinic's admin sees a notice on the
endpoint's page (there is no mail yet); sending goes on, and the first 2xx clears it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from delivery.loop import endpoints as endpoint_rules
from delivery.loop import signing
from delivery.models import (
    DeliveryState,
    EndpointState,
    Job,
    OutboxMessage,
    OutboxState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from delivery.platform import jobs
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.timeline import outbox
from delivery.timeline.outbox import JOB_KIND as KIND

RETRY_DELAYS_S = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600, 24 * 3600, 24 * 3600)
"""Wait before attempt 2, 3, …: after the last one a delivery has failed (about 3.1 days in all)."""
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
JITTER = 0.1  # each wait is stretched or shrunk by up to 10 %, so retries of an outage spread out
FAILING_AFTER = 5  # failed requests in a row before an endpoint is marked failing
BATCH = 200  # deliveries claimed at once: fewer, larger transactions keep up with a busy day
LEASE_MARGIN_S = 10.0
ERROR_LENGTH = 500

Now = Callable[[], dt.datetime]


def retry_delay(failed_attempts: int, rng: random.Random | None = None) -> dt.timedelta:
    """The wait after `failed_attempts` failures (1, 2, …), jittered within ±JITTER."""
    base = RETRY_DELAYS_S[min(failed_attempts, len(RETRY_DELAYS_S)) - 1]
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)
    return dt.timedelta(seconds=base * factor)


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery, with everything its request needs (read inside the claim)."""

    delivery_id: int
    endpoint_id: int
    url: str
    secrets: tuple[str, ...]
    webhook_id: str
    body: bytes
    attempt: int


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_bytes(payload: dict) -> bytes:  # type: ignore[type-arg]
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


# --- 1. fan out ------------------------------------------------------------------------------------


def fan_out(db: Session, now: dt.datetime, limit: int = 1000) -> int:
    """Hand new outbox messages to their endpoints; returns how many messages were dispatched."""
    messages = list(db.scalars(select(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))
                               .order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)))
    if not messages:
        return 0
    clinic_ids = {m.clinic_id for m in messages}
    by_clinic: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in db.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.clinic_id.in_(clinic_ids), WebhookEndpoint.state != EndpointState.disabled)):
        by_clinic.setdefault(endpoint.clinic_id, []).append(endpoint)
    for message in messages:
        wanted = [e for e in by_clinic.get(message.clinic_id, [])
                  if e.wants(message.kind) and e.created_at <= message.created_at]
        for endpoint in wanted:
            db.add(WebhookDelivery(message_id=message.id, endpoint_id=endpoint.id,
                                   state=DeliveryState.pending, attempts=0, next_attempt_at=now,
                                   created_at=now))
        message.dispatched_at = now
        message.next_attempt_at = None
        if not wanted:
            message.state = OutboxState.delivered  # nobody to tell: nothing is owed
    db.flush()
    return len(messages)


# --- 2. claim --------------------------------------------------------------------------------------


def claim(db: Session, now: dt.datetime, settings: Settings, limit: int = BATCH) -> list[Outgoing]:
    """Take due deliveries and lease them for as long as sending them may take (the caller commits
    at once)."""
    deliveries = list(db.scalars(
        select(WebhookDelivery).where(WebhookDelivery.state == DeliveryState.pending,
                                      WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)).unique())
    if not deliveries:
        return []
    lease = lease_for(settings, len(deliveries))
    endpoints = {e.id: e for e in db.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.id.in_({d.endpoint_id for d in deliveries})))}
    out = []
    for delivery in deliveries:
        endpoint = endpoints[delivery.endpoint_id]
        delivery.attempts += 1
        delivery.next_attempt_at = now + lease
        out.append(Outgoing(delivery.id, endpoint.id, endpoint.url,
                            tuple(endpoint_rules.signing_secrets(endpoint, now)),
                            delivery.message.webhook_id, body_bytes(delivery.message.payload),
                            delivery.attempts))
    db.flush()
    return out


# --- 3. send ---------------------------------------------------------------------------------------


def send(client: httpx.Client, item: Outgoing, *, allow_loopback: bool) -> Answer:
    """One signed POST; never follows a redirect, never raises (a failure is an Answer).

    The signature's timestamp is the wall clock's, whatever clock schedules retries: receivers
    refuse one more than five minutes off."""
    start = time.perf_counter()
    try:
        endpoint_rules.refuse_private(item.url, allow_loopback=allow_loopback)
        timestamp = int(time.time())
        response = client.post(item.url, content=item.body,
                               headers=signing.headers(item.secrets, item.webhook_id, timestamp, item.body))
        status, error = response.status_code, None
        if not 200 <= status < 300:
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    except endpoint_rules.EndpointError as exc:
        status, error = None, str(exc)
    except httpx.TimeoutException:
        status, error = None, "no answer within the timeout"
    except httpx.HTTPError as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"[:ERROR_LENGTH] or type(exc).__name__
    return Answer(status, round((time.perf_counter() - start) * 1000), error)


def http_client(settings: Settings) -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=settings.webhook_timeout_s, trust_env=False,
                        limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2),
                        headers={"user-agent": "produce-box-delivery-webhooks/1"})


# --- 4. record -------------------------------------------------------------------------------------


def record(db: Session, results: Iterable[tuple[Outgoing, Answer]], now: dt.datetime,
           rng: random.Random | None = None) -> None:
    """Write each answer, reschedule or close its delivery, and keep endpoints' health."""
    results = list(results)
    deliveries = {d.id: d for d in db.scalars(select(WebhookDelivery).where(
        WebhookDelivery.id.in_([item.delivery_id for item, _ in results]))).unique()}
    endpoints = {e.id: e for e in db.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.id.in_({item.endpoint_id for item, _ in results})))}
    for item, answer in results:
        delivery, endpoint = deliveries[item.delivery_id], endpoints[item.endpoint_id]
        db.add(WebhookAttempt(delivery_id=delivery.id, endpoint_id=endpoint.id, at=now,
                              status_code=answer.status_code, latency_ms=answer.latency_ms,
                              error=answer.error, test=False))
        delivery.last_status, delivery.last_error = answer.status_code, answer.error
        if delivery.state != DeliveryState.pending:
            continue  # another sender finished it after our lease ran out: keep the first ending
        if answer.ok:
            delivery.state, delivery.delivered_at = DeliveryState.delivered, now
            _healthy(endpoint)
            continue
        _unhealthy(endpoint, now, answer)
        if answer.status_code == 410:
            delivery.state = DeliveryState.failed
            delivery.last_error = "The receiver answered 410 Gone: no more retries."
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.state = DeliveryState.failed
            endpoint.notice = (f"An event ({item.webhook_id}) could not be delivered after "
                               f"{delivery.attempts} attempts over three days; last error: {answer.error}. "
                               "Resend it from the endpoint's page once the receiver works.")
        else:
            delivery.next_attempt_at = now + retry_delay(delivery.attempts, rng)
    db.flush()
    _settle_messages(db, {deliveries[item.delivery_id].message_id for item, _ in results})


def _healthy(endpoint: WebhookEndpoint) -> None:
    endpoint.consecutive_failures = 0
    if endpoint.state == EndpointState.failing:
        endpoint.state, endpoint.failing_since, endpoint.notice = EndpointState.active, None, None


def _unhealthy(endpoint: WebhookEndpoint, now: dt.datetime, answer: Answer) -> None:
    endpoint.consecutive_failures += 1
    if endpoint.state == EndpointState.active and endpoint.consecutive_failures >= FAILING_AFTER:
        endpoint.state, endpoint.failing_since = EndpointState.failing, now
        endpoint.notice = (f"This endpoint is failing: the last {endpoint.consecutive_failures} requests "
                           f"failed (last: {answer.error}). Events are kept and retried for three days.")


def _settle_messages(db: Session, message_ids: set[int]) -> None:
    """An outbox message is delivered when every endpoint got it, failed when one gave up."""
    counts = db.execute(select(WebhookDelivery.message_id, WebhookDelivery.state, func.count())
                        .where(WebhookDelivery.message_id.in_(message_ids))
                        .group_by(WebhookDelivery.message_id, WebhookDelivery.state)).all()
    states: dict[int, set[str]] = {}
    for message_id, state, _ in counts:
        states.setdefault(message_id, set()).add(state)
    for message in db.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(message_ids))):
        seen = states.get(message.id, set())
        if DeliveryState.pending in seen:
            message.state = OutboxState.pending
        else:
            message.state = OutboxState.failed if DeliveryState.failed in seen else OutboxState.delivered
    db.flush()


# --- the outbox job --------------------------------------------------------------------------------


@dataclass
class Pass:
    dispatched: int = 0
    sent: int = 0
    delivered: int = 0


def lease_for(settings: Settings, claimed: int) -> dt.timedelta:
    """Long enough for every claimed request to time out, `webhook_concurrency` at a time, and be
    recorded: a lease that ran out early would let another worker send a delivery still in flight."""
    rounds = math.ceil(claimed / settings.webhook_concurrency)
    return dt.timedelta(seconds=settings.webhook_timeout_s * rounds + LEASE_MARGIN_S)


def relay_once(database: Database, settings: Settings, client: httpx.Client, pool: ThreadPoolExecutor,
               *, now: Now = utcnow) -> Pass:
    """One pass: fan out, claim a batch, send it concurrently, record the answers."""
    result = Pass()
    with database.writer() as db:
        result.dispatched = fan_out(db, now())
        batch = claim(db, now(), settings)
        db.commit()
    if not batch:
        return result
    answers = list(pool.map(lambda item: send(client, item, allow_loopback=settings.webhook_allow_loopback),
                            batch))
    with database.writer() as db:
        record(db, zip(batch, answers, strict=True), now())
        db.commit()
    result.sent = len(batch)
    result.delivered = sum(1 for a in answers if a.ok)
    return result


def next_due(db: Session) -> dt.datetime | None:
    """When the next delivery is due (None: nothing pending); a message not yet fanned out is due
    when it was written."""
    delivery = db.scalar(select(func.min(WebhookDelivery.next_attempt_at))
                         .where(WebhookDelivery.state == DeliveryState.pending))
    message = db.scalar(select(func.min(OutboxMessage.created_at))
                        .where(OutboxMessage.dispatched_at.is_(None)))
    return min((t for t in (delivery, message) if t is not None), default=None)


def work_now(db: Session, now: dt.datetime) -> bool:
    """Whether a pass would do anything: a message not yet fanned out, or a delivery due."""
    new = select(OutboxMessage.id).where(OutboxMessage.dispatched_at.is_(None)).limit(1)
    due = select(WebhookDelivery.id).where(WebhookDelivery.state == DeliveryState.pending,
                                           WebhookDelivery.next_attempt_at <= now).limit(1)
    return db.scalar(new) is not None or db.scalar(due) is not None


def relay(database: Database, settings: Settings, *, now: Now = utcnow,
          should_stop: Callable[[], bool] = lambda: False) -> dt.datetime | None:
    """Deliver everything due, pass after pass, until nothing is due now; returns when the next
    delivery falls due (None: nothing pending)."""
    with http_client(settings) as client, ThreadPoolExecutor(settings.webhook_concurrency) as pool:
        while not should_stop():
            with database.reader() as db:  # the writer only when there is something to do
                if not work_now(db, now()):
                    break
            done = relay_once(database, settings, client, pool, now=now)
            if not done.sent and not done.dispatched:
                break
    with database.reader() as db:
        return next_due(db)


def run(ctx: jobs.JobContext) -> None:
    """The `outbox` job: deliver what is due, then queue the next run for the next retry."""
    due = relay(ctx.database, ctx.settings, now=ctx.clock.now, should_stop=ctx.stopping.is_set)
    if due is not None:
        with ctx.database.writer() as db:
            outbox.queue(db, run_after=max(due, ctx.clock.now()))
            db.commit()


GIVE_UP_PAUSE = dt.timedelta(minutes=5)
SETTLE_S = 0.25
"""A new message waits this long for the worker, so one run sends the messages of many
confirmations: each run writes, and on SQLite the drivers' taps wait for every write."""


def _queue_again(db: Session, job: Job) -> None:
    """A run that failed every attempt (the database away, a bug): try again later, so pending
    deliveries are never left without a job to send them."""
    outbox.queue(db, run_after=(job.finished_at or utcnow()) + GIVE_UP_PAUSE)


def job_kind() -> jobs.Kind:
    """outbox: a failed run (not a failed request: those are retried per delivery) is tried again
    after 1, 2, 4 … seconds, then every five minutes."""
    return jobs.Kind(KIND, run, backoff=jobs.exponential(first_s=1.0, max_s=60.0), on_give_up=_queue_again,
                     settle_s=SETTLE_S)


# --- an endpoint's page: resend and a test event -------------------------------------------------


def resend(db: Session, delivery: WebhookDelivery, now: dt.datetime, *, actor: AuditContext) -> None:
    """Send a delivery again now (same webhook-id), whatever its state; attempts start over."""
    delivery.state, delivery.attempts, delivery.next_attempt_at = DeliveryState.pending, 0, now
    delivery.message.state = OutboxState.pending
    db.flush()
    outbox.queue(db)
    endpoint = db.get(WebhookEndpoint, delivery.endpoint_id)
    assert endpoint is not None
    endpoint_rules.audit(db, actor, "U", endpoint, f"resend of {delivery.message.webhook_id} asked")


TEST_EVENT = "test"


def send_test(endpoint: WebhookEndpoint, settings: Settings, now: dt.datetime) -> Answer:
    """Send a signed `test` event right away (no outbox row: it tells nothing that happened) and
    return the answer for the page to show. Call it with no writer held: it waits on the network."""
    msg_id = f"msg_test_{int(now.timestamp() * 1000)}"
    body = body_bytes({"type": TEST_EVENT, "timestamp": now.isoformat(),
                       "data": {"endpoint_id": endpoint.id}})
    item = Outgoing(0, endpoint.id, endpoint.url, tuple(endpoint_rules.signing_secrets(endpoint, now)),
                    msg_id, body, 1)
    with http_client(settings) as client:
        return send(client, item, allow_loopback=settings.webhook_allow_loopback)


def recent(db: Session, endpoint_id: int,
           limit: int = 50) -> Sequence[tuple[WebhookDelivery, WebhookAttempt | None]]:
    """The endpoint's latest deliveries, newest first, each with its latest attempt."""
    deliveries = list(db.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
                                 .order_by(WebhookDelivery.id.desc()).limit(limit)).unique())
    last: dict[int, WebhookAttempt] = {}
    if deliveries:
        for attempt in db.scalars(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_([d.id for d in deliveries])).order_by(WebhookAttempt.id)):
            last[attempt.delivery_id] = attempt
    return [(d, last.get(d.id)) for d in deliveries]


def failures(db: Session, endpoint_id: int, limit: int = 20) -> Sequence[WebhookAttempt]:
    """The endpoint's latest failed requests, newest first (what its admin looks at to fix it)."""
    failed = ~WebhookAttempt.status_code.between(200, 299) | WebhookAttempt.status_code.is_(None)
    return list(db.scalars(select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint_id, failed)
                           .order_by(WebhookAttempt.id.desc()).limit(limit)))
