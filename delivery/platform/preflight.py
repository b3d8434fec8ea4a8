"""Checks before serving: a production configuration that is safe (R11.1), a database that is whole
and at the schema of this code (R11.3). `delivery serve` and `delivery worker` refuse to start
while any problem is listed, each said as what to change."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from delivery.platform.settings import Settings

MIN_SECRET_LENGTH = 32
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def production_problems(settings: Settings) -> list[str]:
    """What makes this configuration unsafe to hold patients' data (only in production mode)."""
    if not settings.production:
        return []
    problems = []
    if not settings.base_url.startswith("https://"):
        problems.append(f"DELIVERY_BASE_URL is {settings.base_url}: serve over https:// in production")
    if (len(settings.secret_key) < MIN_SECRET_LENGTH or settings.secret_key.startswith("test")
            or "CHANGE-ME" in settings.secret_key):  # deploy/delivery.env.example's placeholder
        problems.append(f"DELIVERY_SECRET_KEY must be a random value of at least {MIN_SECRET_LENGTH} "
                        "characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if settings.demo:
        problems.append("DELIVERY_DEMO is on: the demo documents the API to anyone; turn it off")
    if settings.webhook_allow_loopback:
        problems.append("DELIVERY_WEBHOOK_ALLOW_LOOPBACK is on: webhooks could reach this machine's services")
    if not settings.secure_cookies:
        problems.append("DELIVERY_SECURE_COOKIES is off: session cookies would travel without TLS")
    url = make_url(settings.database_url)
    if (url.get_backend_name() == "postgresql" and url.host not in LOOPBACK | {None}
            and url.query.get("sslmode") != "verify-full"):
        problems.append("DELIVERY_DATABASE_URL reaches PostgreSQL over the network without "
                        "?sslmode=verify-full: the database connection must be TLS, verified")
    if settings.drill_ack_before_commit:
        problems.append("DELIVERY_DRILL_ACK_BEFORE_COMMIT is on: it exists only for the kill drill's "
                        "negative control and loses confirmations; turn it off")
    if not settings.backup_recipients:
        problems.append("DELIVERY_BACKUP_RECIPIENTS is empty: backups must be encrypted (an age public key)")
    return problems


def schema_problems(database_url: str) -> list[str]:
    """A database that is damaged, or not at the schema this code expects, is not served (R11.3)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from delivery.platform.db import alembic_config

    engine = create_engine(database_url)
    problems = []
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                check = conn.execute(text("PRAGMA quick_check")).scalar()
                if check != "ok":
                    problems.append(f"the SQLite database failed PRAGMA quick_check: {check}")
            current = set(MigrationContext.configure(conn).get_current_heads())
    except DBAPIError as exc:
        return [f"the database cannot be read ({exc.orig}): restore the latest backup (delivery restore)"]
    finally:
        engine.dispose()
    if problems:
        return [*problems, "restore the latest backup (delivery restore)"]
    expected = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    if current != expected:
        at = ", ".join(sorted(current)) or "no schema"
        problems.append(f"the database is at {at}, this code needs {', '.join(sorted(expected))}: "
                        "run `delivery db upgrade`")
    return problems
