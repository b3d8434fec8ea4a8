"""Webhooks (R9): signatures two libraries accept, a receiver that misbehaves then recovers, the
retry ladder, endpoints refused for unsafe URLs, secret rotation, and a failing endpoint."""

from __future__ import annotations

import datetime as dt
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from delivery.field.confirmations import confirm_stop
from delivery.loop import endpoints, sender, signing
from delivery.models import (
    DeliveryState,
    Driver,
    EndpointState,
    Job,
    JobState,
    Organization,
    OutboxMessage,
    OutboxState,
    Stop,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from delivery.platform.settings import Settings
from delivery.timeline import outbox
from tests.builders import Program
from tests.job_builders import FakeClock as JobClock
from tests.plan_builders import make_day
from tests.webhook_receiver import Receiver

DAY = dt.date(2026, 12, 1)
ALL_DELIVERED = ["delivered", "left_at_door", "delivered", "delivered", "left_at_door"]


class FakeClock:
    def __init__(self) -> None:
        self.at = utcnow()

    def now(self) -> dt.datetime:
        return self.at


def register(database: Database, clinic_id: int, url: str, kinds: tuple[str, ...] = ()) -> str:
    with database.writer() as db:
        clinic = db.get(Organization, clinic_id)
        made = endpoints.register(db, clinic, url, kinds, allow_loopback=True, actor=AuditContext())  # type: ignore[arg-type]
        db.commit()
        return made.secret


# What a driver's taps tell, one event per stop (the route's `out_for_delivery` at its first tap is
# not what the tests subscribing to these count).
AT_THE_DOOR = ("delivered", "left_at_door", "attempt_failed")


def confirm_all(database: Database, program: Program, outcomes: list[str]) -> None:
    """A published day whose stops are confirmed with `outcomes`, one event per stop."""
    with database.writer() as db:
        day = make_day(db, program, date=DAY)
        user_id = db.get(Driver, day.driver_ids[0]).user_id  # type: ignore[union-attr]
        stops = [sid for route in day.stop_ids for sid in route]
        at = dt.datetime(2026, 12, 1, 18, tzinfo=dt.UTC)
        for n, (stop_id, outcome) in enumerate(zip(stops, outcomes, strict=False)):
            stop = db.get(Stop, stop_id)
            confirm_stop(db, stop=stop, user_id=user_id, outcome=outcome, note=None, occurred_at=at,  # type: ignore[arg-type]
                         idempotency_key=f"k{n}")
        db.commit()


def drain(database: Database, settings: Settings, clock: FakeClock, *, max_passes: int = 40) -> None:
    """Run the sender, moving the fake clock to each next due time, until nothing is pending."""
    for _ in range(max_passes):
        due = sender.relay(database, settings, now=clock.now)
        if due is None:
            return
        clock.at = max(clock.at, due)
    raise AssertionError("deliveries still pending")


def test_the_signer_reproduces_the_standard_webhooks_test_vector() -> None:
    """Our signer against the specification's published example."""
    got = signing.sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                       1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.req("R9.2")
def test_signatures_fail_for_a_changed_byte_an_old_timestamp_or_another_secret() -> None:
    """standardwebhooks rejects each tampering of a message we signed."""
    secret, other = signing.new_secret(), signing.new_secret()
    assert secret != other and len(signing.new_secret().removeprefix("whsec_")) >= 32
    now = int(dt.datetime.now(dt.UTC).timestamp())
    body = b'{"type":"delivered"}'
    good = signing.headers([secret], "msg_1", now, body)
    StandardWebhook(secret).verify(body, good)
    tampered = [(body.replace(b"d", b"D", 1), good), (body, {**good, "webhook-id": "msg_2"}),
                (body, {**good, "webhook-timestamp": str(now + 1)}),
                (body, signing.headers([secret], "msg_1", now - 301, body)),
                (body, signing.headers([other], "msg_1", now, body))]
    for changed_body, headers in tampered:
        with pytest.raises(WebhookVerificationError):
            StandardWebhook(secret).verify(changed_body, headers)


@pytest.mark.req("R9.1")
@pytest.mark.req("R9.6")
def test_a_receiver_that_fails_every_way_then_recovers_gets_every_event(
        program: Program, database: Database, loop_settings: Settings, receiver: Receiver) -> None:
    """500, a timeout, a dropped connection and a redirect: each retried, none followed; every event
    arrives verified (standardwebhooks and svix), exactly once after dedupe by webhook-id, and the
    sequence numbers restore each referral's order."""
    receiver.secret = register(database, program.clinic1_id, receiver.url)
    receiver.hold_s = 2.0  # longer than the sender's 1 s timeout
    receiver.behaviours.extend(["500", "timeout", "drop", "redirect", "500"])
    confirm_all(database, program, ALL_DELIVERED)
    drain(database, loop_settings, FakeClock())

    with database.reader() as db:
        messages = {m.webhook_id: m for m in db.scalars(select(OutboxMessage))}
        assert {m.state for m in messages.values()} == {OutboxState.delivered}
    kept = receiver.unique()
    assert set(kept) == set(messages)  # every event, each once after dedupe
    assert len(receiver.requests) >= len(messages) + 4  # the failures were retried, same ids
    assert {r.path for r in receiver.requests} == {"/hooks/"}  # the redirect was never followed
    for item in receiver.accepted:
        receiver.verify(item)
        assert set(item.event["data"]) <= {"referral_id", "order_id", "stop_id", "status", "sequence"}
    by_referral: dict[int, list[int]] = {}
    for item in sorted(kept.values(), key=lambda r: r.at, reverse=True):  # receiver sees any order
        by_referral.setdefault(item.event["data"]["referral_id"], []).append(item.event["data"]["sequence"])
    assert all(sorted(seqs) == list(range(1, len(seqs) + 1)) for seqs in by_referral.values())


@pytest.mark.req("R9.3")
def test_retries_follow_the_schedule_with_bounded_jitter_and_410_stops_them(
        program: Program, database: Database, loop_settings: Settings, receiver: Receiver) -> None:
    """Three failures are retried after 5 s, 5 min and 30 min (±10 %); a 410 ends the delivery."""
    receiver.secret = register(database, program.clinic1_id, receiver.url, AT_THE_DOOR)
    receiver.behaviours.extend(["500", "500", "500"])
    confirm_all(database, program, ["delivered"])
    clock = FakeClock()
    start = clock.at
    drain(database, loop_settings, clock)
    with database.reader() as db:
        attempts = list(db.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)))
    assert [a.status_code for a in attempts] == [500, 500, 500, 204]
    gaps = [(b.at - a.at).total_seconds() for a, b in zip([None, *attempts], attempts, strict=False) if a]
    assert (attempts[0].at - start).total_seconds() < 1
    for gap, base in zip(gaps, sender.RETRY_DELAYS_S, strict=False):
        assert base * 0.9 <= gap <= base * 1.1

    receiver.behaviours.extend(["410"])
    with database.writer() as db:
        delivery = db.scalars(select(WebhookDelivery)).unique().one()
        sender.resend(db, delivery, clock.now(), actor=AuditContext())
        db.commit()
    drain(database, loop_settings, clock)
    with database.reader() as db:
        delivery = db.scalars(select(WebhookDelivery)).unique().one()
        assert (delivery.state, delivery.last_status) == (DeliveryState.failed, 410)
        assert db.get(OutboxMessage, delivery.message_id).state == OutboxState.failed


def test_the_schedule_lasts_about_three_days() -> None:
    """The last attempt falls about three days after the first (R9.3's "up to ~3 days")."""
    total = sum(sender.RETRY_DELAYS_S) / 86400
    assert 2.5 < total < 3.5
    rng = random.Random(4)
    assert all(abs(sender.retry_delay(n, rng).total_seconds() - base) <= base * sender.JITTER
               for n, base in enumerate(sender.RETRY_DELAYS_S, start=1))


def test_an_endpoint_failing_again_and_again_is_marked_and_its_admin_told(
        program: Program, database: Database, loop_settings: Settings, receiver: Receiver) -> None:
    """After FAILING_AFTER failed requests in a row the endpoint is failing, with a notice; the next
    2xx clears it."""
    receiver.secret = register(database, program.clinic1_id, receiver.url, AT_THE_DOOR)
    receiver.behaviours.extend(["500"] * sender.FAILING_AFTER)
    confirm_all(database, program, ALL_DELIVERED)
    with sender.http_client(loop_settings) as client, ThreadPoolExecutor(1) as pool:
        assert sender.relay_once(database, loop_settings, client, pool).sent == 5  # five 500s
    with database.reader() as db:
        endpoint = db.scalars(select(WebhookEndpoint)).one()
        assert endpoint.state == EndpointState.failing and "failing" in (endpoint.notice or "")
    drain(database, loop_settings, FakeClock())
    with database.reader() as db:
        endpoint = db.scalars(select(WebhookEndpoint)).one()
        assert (endpoint.state, endpoint.notice) == (EndpointState.active, None)


@pytest.mark.req("R9.4")
@pytest.mark.parametrize(("url", "allow", "why"), [
    ("http://ehr.example.org/hooks", False, "https only"),
    ("https://127.0.0.1/hooks", False, "loopback without the test allowlist"),
    ("https://user:pw@ehr.example.org/hooks", False, "credentials in the URL"),
    ("ftp://127.0.0.1/x", True, "not http(s)"),
])
def test_unsafe_urls_are_refused_at_registration(url: str, allow: bool, why: str) -> None:
    """Each URL is refused with a message that says what to fix."""
    with pytest.raises(endpoints.EndpointError):
        endpoints.check_url(url, allow_loopback=allow)


@pytest.mark.req("R9.4")
@pytest.mark.parametrize("address", ["10.0.0.5", "192.168.1.4", "169.254.169.254", "127.0.0.1"])
def test_private_and_metadata_addresses_are_refused_when_resolved(address: str) -> None:
    """The send-time check resolves the host and refuses RFC 1918, link-local, metadata, loopback."""
    with pytest.raises(endpoints.EndpointError, match="not a public address"):
        endpoints.refuse_private(f"https://{address}/hooks", allow_loopback=False)


def test_a_rotated_secret_signs_beside_the_old_one_during_the_grace(
        program: Program, database: Database, loop_settings: Settings, receiver: Receiver) -> None:
    """After a rotation one header carries two signatures: receivers with either secret verify."""
    old = register(database, program.clinic1_id, receiver.url, AT_THE_DOOR)
    with database.writer() as db:
        endpoint = db.scalars(select(WebhookEndpoint)).one()
        new = endpoints.rotate(db, endpoint, now=utcnow(), actor=AuditContext())
        db.commit()
    receiver.secret = new
    confirm_all(database, program, ["delivered"])
    drain(database, loop_settings, FakeClock())
    (item,) = receiver.accepted
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    receiver.verify(item, old)
    receiver.verify(item, new)


def outbox_jobs(database: Database, state: str = JobState.queued) -> list[Job]:
    with database.reader() as db:
        return list(db.scalars(select(Job).where(Job.kind == outbox.JOB_KIND, Job.state == state)))


@pytest.mark.req("R9.1")
def test_events_queue_one_outbox_job_and_a_run_queues_the_next_retry(
        program: Program, database: Database, loop_settings: Settings, receiver: Receiver) -> None:
    """Every event's transaction queues the outbox job (one for all of them); a run that meets a
    500 queues the next run for the retry, five seconds on, and nothing earlier."""
    receiver.secret = register(database, program.clinic1_id, receiver.url, AT_THE_DOOR)
    receiver.behaviours.extend(["500"])
    confirm_all(database, program, ALL_DELIVERED)
    (queued,) = outbox_jobs(database)
    assert (queued.dedupe_key, queued.run_after) == (outbox.NEW_KEY, None)

    clock = JobClock(utcnow())
    runner = Runner(database, loop_settings, [sender.job_kind()], clock=clock, poll_s=0)
    assert runner.run_once()
    assert len(receiver.unique()) == len(ALL_DELIVERED) - 1
    (retry,) = outbox_jobs(database)
    assert retry.dedupe_key == outbox.RETRY_KEY
    assert 4.5 <= (retry.run_after - clock.now()).total_seconds() <= 5.5  # type: ignore[operator]
    assert not runner.run_once()  # not due yet
    clock.advance(6)
    assert runner.run_once()
    assert len(receiver.unique()) == len(ALL_DELIVERED)
    assert outbox_jobs(database) == [] and len(outbox_jobs(database, JobState.done)) == 2


def test_an_event_rolled_back_queues_nothing(program: Program, database: Database) -> None:
    """The job exists exactly when the event does."""
    with database.writer() as db:
        make_day(db, program, date=DAY)
        db.commit()
    assert outbox_jobs(database) == []
    with database.writer() as db:
        stop = db.scalars(select(Stop)).first()
        user_id = db.scalars(select(Driver.user_id)).first()
        at = utcnow()
        confirm_stop(db, stop=stop, user_id=user_id, outcome="delivered", note=None, occurred_at=at,  # type: ignore[arg-type]
                     idempotency_key="k")
        assert len(db.scalars(select(Job).where(Job.kind == outbox.JOB_KIND)).all()) == 1
        db.rollback()
    assert outbox_jobs(database) == []
