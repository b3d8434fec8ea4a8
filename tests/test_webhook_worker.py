"""No event lost (R9.1, issue 11): `delivery worker` sending webhooks is SIGKILLed in the middle of
a batch; a new worker takes the batch over and every event reaches the clinic's receiver, at least
once, and exactly once after the receiver drops repeats by `webhook-id`."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable

import pytest
from sqlalchemy import select

from delivery.loop import endpoints
from delivery.models import EventKind, Organization, OutboxMessage, OutboxState, Referral
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.timeline import events, payloads
from tests.builders import Program
from tests.day_builders import add_order
from tests.job_builders import wait_until
from tests.webhook_receiver import Receiver

EVENTS = 60
WORKER_ENV = {"DELIVERY_WEBHOOK_ALLOW_LOOPBACK": "true", "DELIVERY_WEBHOOK_TIMEOUT_S": "1",
              "DELIVERY_WEBHOOK_CONCURRENCY": "4"}


def record_events(database: Database, program: Program, receiver: Receiver) -> set[str]:
    """The clinic's endpoint, then EVENTS events on three referrals; returns their webhook-ids."""
    with database.writer() as db:
        clinic = db.get(Organization, program.clinic1_id)
        receiver.secret = endpoints.register(db, clinic, receiver.url, allow_loopback=True,  # type: ignore[arg-type]
                                             actor=AuditContext()).secret
        orders = [add_order(db, program, n) for n in range(3)]
        for n in range(EVENTS):
            order = orders[n % 3]
            events.record(db, db.get(Referral, order.referral_id), EventKind.priority_changed,  # type: ignore[arg-type]
                          payloads.PriorityChanged(order_id=order.id, before=n % 2, after=(n + 1) % 2))
        db.commit()
        return set(db.scalars(select(OutboxMessage.webhook_id)))


@pytest.mark.req("R9.1")
def test_a_worker_killed_mid_batch_loses_no_event(
        program: Program, database: Database, receiver: Receiver,
        start_worker: Callable[..., subprocess.Popen]) -> None:
    receiver.pause_s = 0.1  # 60 events, 4 at a time: about 1.5 s of sending to kill the worker in
    sent = record_events(database, program, receiver)
    first = start_worker("--kinds", "outbox", **WORKER_ENV)
    wait_until(lambda: len(receiver.unique()) >= 10, 60, "the first worker to deliver ten events")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    before_restart = set(receiver.unique())
    assert 10 <= len(before_restart) < EVENTS  # killed mid-batch

    start_worker("--kinds", "outbox", **WORKER_ENV)
    wait_until(lambda: set(receiver.unique()) == sent, 90, "every event to arrive after the restart")
    for item in receiver.accepted:
        receiver.verify(item)
    by_referral: dict[int, list[int]] = {}
    for item in receiver.unique().values():
        by_referral.setdefault(item.event["data"]["referral_id"], []).append(item.event["data"]["sequence"])
    assert all(sorted(seqs) == list(range(1, EVENTS // 3 + 1)) for seqs in by_referral.values())
    wait_until(lambda: outbox_states(database) == {OutboxState.delivered}, 30, "the outbox to settle")


def outbox_states(database: Database) -> set[str]:
    with database.reader() as db:
        return set(db.scalars(select(OutboxMessage.state)))
