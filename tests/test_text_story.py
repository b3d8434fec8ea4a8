"""Texts to patients, end to end: a published day texts each consenting patient the day before in
their language (through the twilio client, to a loopback server speaking Twilio's REST shape);
replies come back as signed Twilio webhooks over real HTTP: "2" takes the stop off the day and
tells the coordinator, an opt-out word in Vietnamese stops every later text; a delivery is texted
once the driver's undo window has passed. Then the failures: an invalid number, Twilio's rate limit,
texting off, quiet hours, a forged or repeated webhook."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from delivery.field.confirmations import confirm_stop
from delivery.models import (
    AuditEvent,
    EventKind,
    InboundText,
    Job,
    JobState,
    Organization,
    Patient,
    PlanStatus,
    ReferralEvent,
    ReplyMeaning,
    Route,
    Stop,
    StopStatus,
    TextKind,
    TextMessage,
    TextState,
)
from delivery.plans import day as plan_day
from delivery.plans import publishing
from delivery.platform.audit import AuditContext
from delivery.platform.clock import FixedClock
from delivery.platform.db import Database
from delivery.platform.jobs import Runner
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from delivery.worker import kinds
from tests import twilio_server
from tests.builders import Program, api_token, referral_body, sign_in
from tests.conftest import BASE_URL
from tests.day_builders import add_driver
from tests.live import loopback_socket, serving
from tests.twilio_server import FakeTwilio, sign

LA = ZoneInfo("America/Los_Angeles")
DAY = dt.date(2026, 12, 1)  # a Tuesday, the program's delivery day
MONDAY_9AM = dt.datetime(2026, 11, 30, 9, 0, tzinfo=LA)
PEOPLE = {  # mrn: (given name, language, phone, agreed to texts)
    "A-1": ("Rosa", "es", "+15105550101", True),
    "A-2": ("Mei", "zh", "(510) 555-0102", True),
    "A-3": ("Lan", "vi", "+1 510 555 0103", True),
    "A-4": ("Ann", "en", "+15105550104", False),
}


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with twilio_server.serving(FakeTwilio()) as fake:
        yield fake


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(MONDAY_9AM)


@pytest.fixture
def sock() -> Iterator[socket.socket]:
    """The app's port, bound before the app is built (its base_url is what Twilio signs)."""
    bound = loopback_socket()
    yield bound
    bound.close()


@pytest.fixture
def text_settings(settings: Settings, twilio: FakeTwilio, clock: FixedClock,
                  sock: socket.socket) -> Settings:
    """Twilio pointed at the loopback server; the app's own address is where Twilio's webhooks go."""
    return msgspec.structs.replace(
        settings, clock=clock, base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        twilio_account_sid=twilio_server.ACCOUNT_SID, twilio_auth_token=twilio_server.AUTH_TOKEN,
        twilio_from=twilio_server.FROM, twilio_api_url=twilio.url)


@pytest.fixture
def live(text_settings: Settings, database: Database, sock: socket.socket) -> Iterator[str]:
    """The app served for real on the loopback port its base_url names."""
    with serving(create_app(text_settings, database), sock):
        yield text_settings.base_url


@pytest.fixture
def pages(text_settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(app=create_app(text_settings, database), base_url=BASE_URL) as client:
        yield client


def run_jobs(database: Database, settings: Settings) -> int:
    """What `delivery worker` does next, at the settings' clock: every due job, and those they queue."""
    runner = Runner(database, settings, kinds(), poll_s=0, clock=settings.clock)
    ran = 0
    while runner.run_once():
        ran += 1
    return ran


def refer_everyone(database: Database, pages: TestClient, program: Program) -> None:
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    for mrn, (given, language, phone, agreed) in PEOPLE.items():
        body = referral_body(patient__mrn=mrn, patient__given_name=given, patient__language=language,
                             patient__phone=phone, patient__consent_to_text=agreed)
        answer = pages.post("/api/v1/referrals", json=body, headers=headers)
        assert answer.status_code == 201 and answer.json()["order_id"], answer.text


def turn_texting(pages: TestClient, program: Program, on: bool) -> None:
    csrf = sign_in(pages, program.coordinator)
    answer = pages.post(f"/coordinator/texts/programs/{program.food_bank_id}/enabled",
                        data={"enabled": "true" if on else "false"}, headers={"x-csrf-token": csrf})
    assert answer.status_code == 200, answer.text  # followed to the texts page


def publish_day(database: Database, program: Program, settings: Settings) -> dict[str, int]:
    """The day prepared from the orders, every stop on one driver's route from 10:40, published
    through the real publishing service; returns each MRN's stop id."""
    with database.writer() as db:
        food_bank = db.get(Organization, program.food_bank_id)
        driver = add_driver(db, program, 1, date=DAY)
        plan = plan_day.prepare(db, food_bank, DAY)  # type: ignore[arg-type]
        route = Route(plan_id=plan.id, driver_id=driver.id, colour=0)
        db.add(route)
        db.flush()
        stops = db.scalars(select(Stop).where(Stop.plan_id == plan.id).order_by(Stop.id)).unique().all()
        for n, stop in enumerate(stops):
            stop.route_id, stop.seq, stop.eta = route.id, n + 1, 10 * 3600 + 40 * 60 + n * 600
        plan.status = PlanStatus.planned
        publishing.publish(db, plan, AuditContext(user_id=None), settings)
        db.commit()
        return {stop.patient.mrn: stop.id for stop in stops}


def driver_confirms(database: Database, stop_id: int, outcome: str, clock: FixedClock) -> None:
    """The stop's driver confirms it now (the confirmation service, as the driver's page does)."""
    with database.writer() as db:
        stop = db.get(Stop, stop_id)
        user_id = db.get(Route, stop.route_id).driver.user_id  # type: ignore[union-attr]
        confirm_stop(db, stop=stop, user_id=user_id, outcome=outcome, note=None,  # type: ignore[arg-type]
                     occurred_at=clock.now(), idempotency_key=f"{stop_id}-{outcome}", now=clock.now())
        db.commit()


def texting_day(database: Database, pages: TestClient, program: Program,
                settings: Settings) -> dict[str, int]:
    """Everyone referred, texting turned on by the coordinator, the day published."""
    refer_everyone(database, pages, program)
    turn_texting(pages, program, on=True)
    return publish_day(database, program, settings)


def reply(base_url: str, from_number: str, body: str, sid: str, *,
          signature: str | None = None) -> httpx.Response:
    """Twilio posting a patient's text to our webhook, signed as Twilio signs."""
    url = base_url + "/sms/inbound"
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": twilio_server.ACCOUNT_SID, "From": from_number,
            "To": twilio_server.FROM, "Body": body, "NumMedia": "0"}
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": signature or sign(url, form)})


def texts(database: Database) -> list[TextMessage]:
    with database.reader() as db:
        return list(db.scalars(select(TextMessage).order_by(TextMessage.id)).unique())


def sent_to(twilio: FakeTwilio, number: str) -> list[str]:
    return [s.form["Body"] for s in twilio.sent if s.form["To"] == number]


def test_the_sms_story(program: Program, database: Database, text_settings: Settings, clock: FixedClock,
                       twilio: FakeTwilio, live: str, pages: TestClient) -> None:
    """Publish → day-before texts in Spanish, Chinese, Vietnamese at 10 am (none to the patient who did
    not agree) → "2" removes the stop and tells the coordinator → DỪNG stops texts → a delivery is
    texted after the undo window, with the time in the patient's language."""
    stop_of = texting_day(database, pages, program, text_settings)

    run_jobs(database, text_settings)
    assert twilio.sent == []  # made, waiting for 10 am the day before
    assert {t.state for t in texts(database)} == {TextState.queued} and len(texts(database)) == 3
    clock.set(MONDAY_9AM.replace(hour=10))
    run_jobs(database, text_settings)

    assert sent_to(twilio, "+15105550101") == [
        "Su caja de frutas y verduras llega mañana entre las 10:00 y las 12:00. "
        "Responda 1 si estará en casa, 2 para saltarse esta semana."]
    assert sent_to(twilio, "+15105550102") == [
        "您的蔬果箱将于明天10:00至12:00之间送达。如果您在家，请回复1；如要跳过本周，请回复2。"]
    assert "Trả lời 1" in sent_to(twilio, "+15105550103")[0]
    assert sent_to(twilio, "+15105550104") == []  # no consent
    assert {s.form["From"] for s in twilio.sent} == {twilio_server.FROM}
    assert {s.form["StatusCallback"] for s in twilio.sent} == {live + "/sms/status"}
    with database.reader() as db:
        audited = db.scalars(select(AuditEvent).where(AuditEvent.resource == "text_message")).all()
        assert len(audited) == 3 and all(a.patient_id for a in audited)
        assert not any("Rosa" in (a.detail or "") or "555" in (a.detail or "") for a in audited)

    # Twilio tells us Rosa's text arrived
    rosa_sid = next(s.sid for s in twilio.sent if s.form["To"] == "+15105550101")
    form = {"MessageSid": rosa_sid, "MessageStatus": "delivered", "AccountSid": twilio_server.ACCOUNT_SID}
    status = httpx.post(live + "/sms/status", data=form,
                        headers={"X-Twilio-Signature": sign(live + "/sms/status", form)})
    assert status.status_code == 204

    # Rosa replies 2: her stop leaves the day, the timeline says so, the coordinator is told
    answer = reply(live, "+15105550101", " 2 ", "SM" + "a" * 32)
    assert answer.status_code == 200 and "<Response" in answer.text
    with database.reader() as db:
        stop = db.get(Stop, stop_of["A-1"])
        assert stop is not None and stop.status == StopStatus.removed
        assert "replied 2" in (stop.removed_reason or "")
        kinds_told = db.scalars(select(ReferralEvent.kind).where(
            ReferralEvent.data["stop_id"].as_integer() == stop.id)).all()
        assert EventKind.stop_removed in kinds_told
        rosa_text = db.scalars(select(TextMessage).where(TextMessage.stop_id == stop.id)).one()
        assert (rosa_text.state, rosa_text.reply) == (TextState.delivered, ReplyMeaning.skip)
    sign_in(pages, program.coordinator)  # the clock moved past the idle sign-out
    page = pages.get("/coordinator/texts").text
    assert "Rosa Diaz" in page and "Skipping this week: the stop was taken off Tue 01 Dec." in page
    assert "Mark handled" in page

    # Lan opts out in Vietnamese; Mei says she will be home
    assert reply(live, "+15105550103", "Dừng", "SM" + "b" * 32).status_code == 200
    assert reply(live, "+15105550102", "1", "SM" + "c" * 32).status_code == 200
    with database.reader() as db:
        lan = db.scalars(select(Patient).where(Patient.mrn == "A-3")).one()
        assert lan.texts_stopped_at == clock.now()
        meanings = dict(db.execute(select(InboundText.body, InboundText.meaning)).all())
        assert meanings == {" 2 ": "skip", "Dừng": "stop", "1": "home"}

    # Tuesday: Mei's box is left at her door at 10:42, Lan's delivered at 10:50
    clock.set(dt.datetime(2026, 12, 1, 10, 42, tzinfo=LA))
    driver_confirms(database, stop_of["A-2"], "left_at_door", clock)
    driver_confirms(database, stop_of["A-3"], "delivered", clock)
    run_jobs(database, text_settings)
    assert len(twilio.sent) == 3  # the driver may still undo it: not yet
    clock.set(dt.datetime(2026, 12, 1, 10, 48, tzinfo=LA))
    run_jobs(database, text_settings)
    assert sent_to(twilio, "+15105550102")[-1] == "您的蔬果箱已于10:42放在您的门口。"
    assert len(sent_to(twilio, "+15105550103")) == 1  # Lan said DỪNG: nothing more
    assert reply(live, "+15105550103", "START", "SM" + "9" * 32).status_code == 200
    with database.reader() as db:  # she takes it back: texts again from now on
        assert db.scalars(select(Patient.texts_stopped_at).where(Patient.mrn == "A-3")).one() is None

    # anything else goes to the inbox for a person
    reply(live, "+15105550102", "我的邻居可以帮我收", "SM" + "d" * 32)
    sign_in(pages, program.coordinator)
    page = pages.get("/coordinator/texts").text
    assert "我的邻居可以帮我收" in page and "Not understood by the system" in page


def test_a_missed_attempt_is_texted_with_the_retry_day(program: Program, database: Database,
                                                        text_settings: Settings, clock: FixedClock,
                                                        twilio: FakeTwilio, pages: TestClient) -> None:
    """No answer at the door → rescheduled a week later → "we'll try again on martes"."""
    stop_of = texting_day(database, pages, program, text_settings)
    clock.set(dt.datetime(2026, 12, 1, 11, 0, tzinfo=LA))
    driver_confirms(database, stop_of["A-1"], "no_answer", clock)
    run_jobs(database, text_settings)
    assert sent_to(twilio, "+15105550101") == ["Hoy no lo encontramos; lo intentaremos de nuevo el martes."]


def test_texting_off_lists_what_would_have_been_sent(program: Program, database: Database,
                                                      text_settings: Settings, clock: FixedClock,
                                                      twilio: FakeTwilio, pages: TestClient) -> None:
    """Off by default: nothing reaches Twilio, and the outbox page shows each text as not sent."""
    refer_everyone(database, pages, program)
    publish_day(database, program, text_settings)
    clock.set(MONDAY_9AM.replace(hour=10))
    run_jobs(database, text_settings)
    assert twilio.requests == []
    assert [t.state for t in texts(database)] == [TextState.not_sent] * 3
    sign_in(pages, program.coordinator)
    page = pages.get("/coordinator/texts").text
    assert "texting is off" in page and page.count("not sent") >= 3 and "mañana" in page


def test_an_invalid_number_is_given_up_at_once_and_recorded(program: Program, database: Database,
                                                              text_settings: Settings, clock: FixedClock,
                                                              twilio: FakeTwilio, pages: TestClient) -> None:
    """Twilio's 21211 is final: the text is failed with the code, its job is done (no retry), audited."""
    twilio.invalid_numbers.add("+15105550102")
    texting_day(database, pages, program, text_settings)
    clock.set(MONDAY_9AM.replace(hour=10))
    run_jobs(database, text_settings)
    mei = next(t for t in texts(database) if t.to_number == "+15105550102")
    assert (mei.state, mei.error_code) == (TextState.failed, 21211)
    assert len([r for r in twilio.requests if r["To"] == "+15105550102"]) == 1
    with database.reader() as db:
        assert db.scalars(select(Job.state).where(
            Job.kind == "text_send", Job.payload["text_id"].as_integer() == mei.id)).all() == [JobState.done]
        refused = db.scalars(select(AuditEvent).where(AuditEvent.outcome == "refused")).one()
        assert refused.resource_id == str(mei.id)


def test_the_rate_limit_is_retried_with_backoff(program: Program, database: Database,
                                                 text_settings: Settings, clock: FixedClock,
                                                 twilio: FakeTwilio, pages: TestClient) -> None:
    """429 (code 20429) and a 500 fail the attempt; the runner tries again after its backoff."""
    texting_day(database, pages, program, text_settings)
    twilio.behaviours.extend(["429", "500"])
    clock.set(MONDAY_9AM.replace(hour=10))
    run_jobs(database, text_settings)
    assert len(twilio.sent) == 1 and len(twilio.requests) == 3
    assert sorted(t.state for t in texts(database)).count(TextState.queued) == 2
    clock.advance(dt.timedelta(minutes=2))  # past 30 s + jitter
    run_jobs(database, text_settings)
    assert len(twilio.sent) == 3 and {t.state for t in texts(database)} == {TextState.sent}


def test_a_delivery_confirmed_at_night_is_texted_at_8am(program: Program, database: Database,
                                                         text_settings: Settings, clock: FixedClock,
                                                         twilio: FakeTwilio, pages: TestClient) -> None:
    """Quiet hours: a box left at the door at 7:58 pm is told at 8 am the next morning, not at 8:03 pm."""
    stop_of = texting_day(database, pages, program, text_settings)
    clock.set(dt.datetime(2026, 12, 1, 19, 58, tzinfo=LA))
    driver_confirms(database, stop_of["A-1"], "left_at_door", clock)
    run_jobs(database, text_settings)
    clock.set(dt.datetime(2026, 12, 1, 23, 0, tzinfo=LA))
    run_jobs(database, text_settings)
    door = [t for t in texts(database) if t.kind == TextKind.left_at_door]
    assert len(door) == 1 and door[0].state == TextState.queued
    assert door[0].send_after == dt.datetime(2026, 12, 2, 8, 0, tzinfo=LA)
    clock.set(dt.datetime(2026, 12, 2, 8, 0, tzinfo=LA))
    run_jobs(database, text_settings)
    assert sent_to(twilio, "+15105550101")[-1] == "Dejamos su caja en su puerta a las 19:58."


def test_a_forged_or_repeated_webhook(program: Program, database: Database, text_settings: Settings,
                                      live: str) -> None:
    """A wrong signature (or none) is refused and changes nothing; Twilio retrying one reply is one reply."""
    forged = reply(live, "+15105550101", "STOP", "SM" + "e" * 32, signature="bm90IGEgc2lnbmF0dXJl")
    assert forged.status_code == 403
    no_signature = httpx.post(live + "/sms/inbound", data={"MessageSid": "SMx", "From": "+15105550101",
                                                            "Body": "STOP"})
    assert no_signature.status_code == 403
    with database.reader() as db:
        assert db.scalars(select(InboundText)).all() == []
    for _ in range(2):
        assert reply(live, "+15105550199", "hola", "SM" + "f" * 32).status_code == 200
    with database.reader() as db:
        only = db.scalars(select(InboundText)).one()
        assert (only.meaning, only.patient_id, only.needs_attention) == ("other", None, True)


def test_the_inbox_marks_replies_handled_and_only_coordinators_see_it(
        program: Program, database: Database, text_settings: Settings, live: str, pages: TestClient,
        caplog: pytest.LogCaptureFixture) -> None:
    """A reply a person must read stays open until a coordinator marks it handled (audited); clinic
    staff are refused the page; no log line carries the text or the number."""
    refer_everyone(database, pages, program)
    caplog.clear()
    assert reply(live, "+15105550101", "¿Pueden venir después de las 3?", "SM" + "1" * 32).status_code == 200
    assert not any("después" in r.getMessage() or "555" in r.getMessage() for r in caplog.records)
    with database.reader() as db:
        item = db.scalars(select(InboundText)).one()
        assert item.needs_attention and item.handled_at is None and item.patient is not None
    sign_in(pages, program.clinic1)
    assert pages.get("/coordinator/texts", follow_redirects=False).status_code == 403
    csrf = sign_in(pages, program.coordinator)
    page = pages.post(f"/coordinator/texts/inbox/{item.id}/handled", headers={"x-csrf-token": csrf}).text
    assert "Mark handled" not in page and "¿Pueden venir después de las 3?" in page
    other = pages.post("/coordinator/texts/inbox/999/handled", headers={"x-csrf-token": csrf})
    assert other.status_code == 404
    with database.reader() as db:
        assert db.get(InboundText, item.id).handled_at is not None  # type: ignore[union-attr]
        told = db.execute(select(AuditEvent.action, AuditEvent.detail)
                          .where(AuditEvent.resource == "inbound_text")).all()
        assert ("U", "handled") in told and ("R", None) in told  # the page showing their words is a read
