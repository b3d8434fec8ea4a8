"""More than one machine's worth (DESIGN.md: several app processes and workers on PostgreSQL): two
`delivery serve` processes behind a real nginx, two `delivery worker` processes on one database.
Drivers confirm through the proxy while one server and one worker (the one solving a plan) are
killed with SIGKILL mid-way. Every acknowledged confirmation is stored once, every job ends done
exactly once (the killed worker's taken back by the other), every event reaches the clinic's
webhook receiver, and a driver's session works on both servers."""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from delivery import worker
from delivery.loop import endpoints
from delivery.models import (
    Job,
    JobState,
    Organization,
    OutboxMessage,
    Plan,
    PlanJob,
    PlanJobStatus,
    Route,
)
from delivery.plans import day as days
from delivery.plans import planning
from delivery.program import waitlist_job
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from scripts import drill_kill, loadgen
from tests.builders import Program
from tests.day_builders import DAY, make_day
from tests.job_builders import wait_until
from tests.webhook_receiver import Receiver

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STALE_AFTER_S = 4  # a killed worker's job is taken back this soon (production: 60 s)


def nginx_conf(folder: Path, port: int, upstreams: list[int]) -> Path:
    """A reverse proxy as README describes it, round robin over the app servers; each answer says
    which server gave it (X-Upstream) so the test can see both were used."""
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;" for p in upstreams)
    conf = folder / "nginx.conf"
    conf.write_text(f"""
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  upstream app {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
""")
    return conf


@pytest.fixture
def postgres_only(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip("several app processes and workers need PostgreSQL (DESIGN.md)")
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (scripts/test installs Debian's nginx when it runs as root)")
    return database_url


def test_two_servers_and_two_workers_lose_nothing_when_one_of_each_is_killed(
        postgres_only: str, database: Database, program: Program, receiver: Receiver, tmp_path: Path) -> None:
    url = postgres_only
    proxy_port, ports = loadgen.free_port(), [loadgen.free_port(), loadgen.free_port()]
    env = loadgen.environment(url, proxy_port) | {"DELIVERY_JOB_STALE_AFTER_S": str(STALE_AFTER_S),
                                                  "DELIVERY_WEBHOOK_ALLOW_LOOPBACK": "true",
                                                  "DELIVERY_JOB_POLL_S": "0.2"}
    settings = loadgen.server_settings(url, proxy_port)
    phones = loadgen.seed_day(database, settings, drivers=4, stops_each=8,
                              today=settings.clock.today("America/Los_Angeles"))
    with database.writer() as db:  # the clinic's system listens; another program has a day to plan
        clinic = db.scalar(select(Organization).join(Plan, Plan.food_bank_id == Organization.food_bank_id)
                           .join(Route, Route.plan_id == Plan.id).where(Route.id == phones[0].route_id))
        receiver.secret = endpoints.register(db, clinic, receiver.url, allow_loopback=True,  # type: ignore[arg-type]
                                             actor=AuditContext()).secret
        make_day(db, program, stops=12, drivers=2, capacity=8)
        plan = days.prepare(db, db.get(Organization, program.food_bank_id), DAY)  # type: ignore[arg-type]
        plan_job = planning.enqueue(db, plan, None, time_limit_s=8).id
        db.commit()

    servers = [loadgen.start_server(env, port) for port in ports]
    # Every kind a confirmation or a plan queues (texts too); not the hourly waitlist job, which is
    # always queued again and so never "ends".
    kinds = ",".join(k.name for k in worker.kinds() if k.name != waitlist_job.KIND)
    workers = [loadgen.start_worker(env, kinds) for _ in range(2)]
    (tmp_path / "nginx").mkdir()
    proxy = subprocess.Popen([NGINX, "-c", str(nginx_conf(tmp_path / "nginx", proxy_port, ports)),
                              "-p", str(tmp_path / "nginx")], stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{proxy_port}"
        wait_until(lambda: _answers(base), 30, "nginx to answer")

        # A session started anywhere works on both servers (it lives in the shared database).
        seen = {_route_page(base, phones[0]) for _ in range(6)}
        assert {f"127.0.0.1:{p}" for p in ports} <= seen

        # The plan job is running on one worker: that worker, and one server, die mid-way.
        wait_until(lambda: _plan_status(database, plan_job) == PlanJobStatus.running, 60, "a worker to solve")
        holder = _claimed_by(database, plan_job)
        victim = next(w for w in workers if f":{w.pid}:" in holder)
        acknowledged: dict[str, int] = {}

        async def drive() -> None:
            rng = random.Random(3)
            sending = asyncio.gather(*(drill_kill.phone(base, p, acknowledged, random.Random(rng.random()),
                                                        0.05, [0]) for p in phones))
            while len(acknowledged) < 8:
                await asyncio.sleep(0.01)
            servers[0].send_signal(signal.SIGKILL)
            victim.send_signal(signal.SIGKILL)
            await sending

        asyncio.run(drive())
        servers[0].wait(10)
        victim.wait(10)

        stored = loadgen.stored_check(url, acknowledged)
        assert stored["acknowledged"] == 32 and stored["lost"] == 0 and stored["duplicates"] == 0
        assert _route_page(base, phones[1]) == f"127.0.0.1:{ports[1]}"  # the survivor serves the session

        try:
            wait_until(lambda: _open_jobs(database) == 0, 120, "every queued job to end")
        except AssertionError:
            with database.reader() as db:
                left = [(j.kind, j.state, j.attempts, j.run_after, j.claimed_by, j.last_error)
                        for j in db.scalars(select(Job).where(Job.state.in_([JobState.queued,
                                                                             JobState.running])))]
            raise AssertionError(f"jobs still open after 120 s: {left}") from None
        with database.reader() as db:
            states = {job.kind: job.state for job in db.scalars(select(Job))}
            assert set(states.values()) == {JobState.done}, states
            solved = db.get(Job, db.get(PlanJob, plan_job).job_id)  # type: ignore[union-attr]
            assert solved.attempts == 2 and holder != solved.claimed_by  # type: ignore[union-attr]
            assert db.get(PlanJob, plan_job).status == PlanJobStatus.done  # type: ignore[union-attr]
            sent = set(db.scalars(select(OutboxMessage.webhook_id)
                                  .where(OutboxMessage.clinic_id == clinic.id)))  # type: ignore[union-attr]
        assert sent and sent <= set(receiver.unique())  # every event reached the clinic, verified
    finally:
        proxy.terminate()
        for process in (*servers, *workers):
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        proxy.wait(10)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/login", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _route_page(base: str, phone: loadgen.Phone) -> str:
    response = httpx.get(f"{base}/driver/routes/{phone.route_id}", headers={"Cookie": phone.cookie},
                         timeout=10)
    assert response.status_code == 200, response.status_code
    return response.headers["x-upstream"].split(",")[-1].strip()


def _plan_status(database: Database, plan_job: int) -> str:
    with database.reader() as db:
        return db.get(PlanJob, plan_job).status  # type: ignore[union-attr]


def _claimed_by(database: Database, plan_job: int) -> str:
    with database.reader() as db:
        return db.get(Job, db.get(PlanJob, plan_job).job_id).claimed_by or ""  # type: ignore[union-attr]


def _open_jobs(database: Database) -> int:
    with database.reader() as db:
        return len(db.scalars(select(Job.id).where(Job.state.in_([JobState.queued, JobState.running]))).all())
