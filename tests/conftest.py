"""Fixtures shared by the suite: real migrated databases (SQLite always, PostgreSQL when
DELIVERY_TEST_POSTGRES_URL is set), an app built with its own settings, and a small program."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from delivery.models import Base
from delivery.platform.db import Database, upgrade
from delivery.platform.jobs import Runner
from delivery.platform.settings import ROOT, Settings
from delivery.web.app import create_app
from tests import log_guard
from tests.builders import LIGHT_PASSWORDS, PASSWORD, Program, make_program
from tests.job_builders import running_worker
from tests.mailbox import mailbox  # noqa: F401 (a fixture: a loopback SMTP server)
from tests.plan_builders import CANARIES
from tests.webhook_receiver import Receiver, serve

POSTGRES_URL = os.environ.get("DELIVERY_TEST_POSTGRES_URL", "")
BASE_URL = "https://testserver.local"  # https, so the Secure __Host- cookies are sent back
SECRET_KEY = "test-secret"
log_guard.always(*CANARIES, PASSWORD, SECRET_KEY)


@pytest.fixture(autouse=True)
def no_secrets_in_logs() -> Iterator[log_guard.LeakCatcher]:
    """R10.4: every test fails if a log record carries the PHI canary, the test password, the
    secret key, a bearer token, a session cookie or a token the test was given (tests/log_guard.py).
    Records from every logger, at every level the logger lets through."""
    catcher = log_guard.LeakCatcher()
    watched = log_guard.loggers()
    for logger in watched:
        logger.addHandler(catcher)
    yield catcher
    for logger in watched:
        logger.removeHandler(catcher)
    log_guard.reset()
    assert not catcher.caught, "secret or PHI in the log:\n" + "\n".join(catcher.caught)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (migrating per test would be slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL database for this pytest run, migrated once and dropped at the end,
    so two runs on one server never step on each other."""
    if not POSTGRES_URL:
        pytest.skip("DELIVERY_TEST_POSTGRES_URL is not set")
    base = make_url(POSTGRES_URL)
    name = f"delivery_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


BOTH_DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BOTH_DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    return empty_database(request, tmp_path, sqlite_template)


def empty_database(request: pytest.FixtureRequest, directory: Path, sqlite_template: Path) -> str:
    """A migrated database with no rows: a copy of the SQLite template, or the run's PostgreSQL
    database truncated (module-scoped fixtures build their data once with it)."""
    if request.param == "sqlite":
        path = directory / "test.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:  # every test starts from empty tables
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # One test signs in as each role from the one test client, many times: the sign-in limit per
    # client is raised for the suite (tests/test_throttle.py sets and checks the real ones).
    return Settings(database_url=database_url, secret_key=SECRET_KEY, base_url=BASE_URL,
                    geocoder="none", secure_cookies=True, photo_dir=str(tmp_path / "photos"),
                    limit_login_client="1000 per minute", **LIGHT_PASSWORDS)


@pytest.fixture
def program(database: Database) -> Program:
    """A food bank with two clinics, a coordinator and staff for each clinic."""
    with database.writer() as db:
        built = make_program(db)
        db.commit()
    return built


@pytest.fixture
def app(settings: Settings, database: Database):  # type: ignore[no-untyped-def]
    return create_app(settings, database)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app=app, base_url=BASE_URL) as test_client:
        yield test_client


@pytest.fixture
def worker(database: Database, settings: Settings) -> Iterator[Runner]:
    """A job runner with every kind, in a thread of this process (what `delivery worker` runs)."""
    with running_worker(database, settings) as runner:
        yield runner


@pytest.fixture
def start_worker(database_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `python -m delivery worker ARGS` on the test's database (more DELIVERY_* variables as
    keywords); every one is ended afterwards."""
    started: list[subprocess.Popen] = []

    def start(*args: str, **env_extra: str) -> subprocess.Popen:
        env = {**os.environ, "DELIVERY_DATABASE_URL": database_url, "DELIVERY_SECRET_KEY": "test-secret",
               "DELIVERY_GEOCODER": "none", "DELIVERY_JOB_POLL_S": "0.1", "DELIVERY_JOB_STALE_AFTER_S": "2",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               **env_extra}
        with (tmp_path / f"worker-{len(started)}.log").open("w") as log:  # the child keeps its own copy
            process = subprocess.Popen([sys.executable, "-m", "delivery", "worker", *args], env=env, cwd=ROOT,
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A clinic's webhook receiver on a loopback port (tests/webhook_receiver.py)."""
    made = Receiver()
    server, thread = serve(made)
    yield made
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def loop_settings(settings: Settings) -> Settings:
    """The test settings with webhooks allowed to loopback receivers and a short timeout: 2 s, under
    the receiver's 3 s "timeout" behaviour, yet long enough that a busy CI machine's loopback 204
    is not counted as a failed attempt (which then waits for its retry)."""
    return Settings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__},
                       "webhook_allow_loopback": True, "webhook_timeout_s": 2.0})


@pytest.fixture
def loop_client(loop_settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(app=create_app(loop_settings, database), base_url=BASE_URL) as client:
        yield client
