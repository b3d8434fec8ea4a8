"""Settings as data: read once from the environment, passed into `create_app(settings)`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec

from delivery.platform.clock import Clock

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the app needs to know about where it runs. Each field has a DELIVERY_* variable."""

    database_url: str = f"sqlite:///{VAR / 'delivery.db'}"
    """SQLAlchemy URL. SQLite (the default) for one machine; postgresql+psycopg://… in production."""
    secret_key: str = ""
    """Signs nothing secret by itself today but keys token hashes; set in production."""
    base_url: str = "http://127.0.0.1:8000"
    """Where people reach the app; personal links for drivers are built on it."""
    host: str = "127.0.0.1"
    port: int = 8000
    secure_cookies: bool = True
    """Cookies marked Secure with the __Host- prefix. Browsers accept them on http://127.0.0.1 too."""
    staff_absolute_hours: int = 12
    """Idle timeouts are each program's own settings (delivery.program.program_settings)."""
    geocoder: str = "nominatim"
    """nominatim, photon or none."""
    geocoder_url: str = ""
    """Base URL of a self-hosted geocoder (scheme and host, e.g. http://127.0.0.1:8080)."""
    geocoder_min_delay_s: float = 1.0
    """Nominatim's usage policy: at most one request per second."""
    geocoder_timeout_s: float = 5.0
    routing_matrix: str = "geodesic"
    osrm_url: str = ""
    tile_url: str = ""
    """Map tiles for the coordinator's map; empty draws routes on a plain background."""
    job_poll_s: float = 0.5
    """How often an idle `delivery worker` looks for due jobs (the latency floor of a webhook)."""
    job_stale_after_s: float = 60.0
    """A running job whose worker has not beaten its heartbeat for this long is taken back."""
    webhook_allow_loopback: bool = False
    """Let webhook endpoints be http(s)://127.0.0.1 or localhost: the demo and the tests only."""
    webhook_timeout_s: float = 10.0
    """A receiver that has not answered 2xx within this is a failed attempt."""
    webhook_concurrency: int = 8
    """Requests the sender keeps in flight at once."""
    smtp_url: str = ""
    """smtp://user:pass@host:587 (STARTTLS when the server offers it) or smtps://…:465. Empty: no email
    is sent and the admin is shown the links instead."""
    mail_from: str = ""
    """The From address of invites and resets; empty: no-reply@ the base URL's host."""
    twilio_account_sid: str = ""
    """Texts to patients go through Twilio with this account (AC…); empty: no text is sent, and the
    outbox page lists what would have been."""
    twilio_auth_token: str = ""
    """Authenticates the API calls and checks the X-Twilio-Signature of replies and status callbacks."""
    twilio_from: str = ""
    """The sending number (+1…) or a Messaging Service SID (MG…)."""
    twilio_api_url: str = ""
    """Twilio's REST API base (default https://api.twilio.com); tests point it at a loopback server."""
    twilio_timeout_s: float = 10.0
    photo_dir: str = ""
    """Where delivery photos are kept (default var/photos); back it up with the database."""
    limit_login_client: str = "30 per 15 minutes"
    """Sign-ins, reset requests, link and token redemptions from one client (IP) (R1.4, R6.1)."""
    limit_login_account: str = "10 per 15 minutes"
    """Failed sign-ins for one account, reset requests for one email, opens of one link."""
    limit_api: str = "600 per minute"
    """API and FHIR requests per principal (per IP when no token is sent) (R6.2)."""
    expensive_time_limit_s: int = 120
    """A report PDF or export runs once at a time per person; a slot left by a dead process frees
    itself after this long (R6.4)."""
    password_time_cost: int = 3
    """argon2id passes over memory (RFC 9106's second recommendation, argon2-cffi's default)."""
    password_memory_kib: int = 64 * 1024
    """argon2id memory per hash in KiB; with time_cost this sets how long a sign-in takes (~0.1-0.5 s
    on the 2-core machine). Tests choose cheap values here rather than patching the hasher."""
    password_parallelism: int = 4
    switch_interval_ms: float = 0.5
    """How long a thread of `delivery serve` may keep Python's interpreter lock before handing it on
    (sys.setswitchinterval; Python's default is 5 ms). A request holding SQLite's single writer gives
    the lock up at every query and then waits this long behind CPU-bound work (an edit's checker, a
    page rendering) to get it back, so the queue for the writer grows with it (scripts/bench_web.py
    --mixed: small-write p99 ~180-370 ms at 5 ms, ~100 ms at 0.5 ms on the shared 2-core machine)."""
    demo: bool = False
    """The demo that scripts/run starts: documents the API at /schema."""
    production: bool = False
    """Holding real patients' data: `delivery serve` refuses an unsafe configuration (preflight)."""
    backup_recipients: str = ""
    """age public keys (age1…, comma-separated) `delivery backup` encrypts for; required in production."""
    drill_ack_before_commit: bool = False
    """The kill drill's negative control only (scripts/drill_kill.py --ack-before-commit): answer a
    confirmation before it is committed, the bug the drill must catch. Never set it anywhere else."""
    clock: Clock = msgspec.field(default_factory=Clock)
    """What time it is (not from the environment): tests pass a FixedClock."""

    @property
    def photos(self) -> Path:
        return Path(self.photo_dir) if self.photo_dir else VAR / "photos"

    @property
    def recipients(self) -> list[str]:
        return [key.strip() for key in self.backup_recipients.split(",") if key.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def encode(settings: Settings) -> bytes:
    """Settings as JSON for a child process (decode with type=Settings). The clock stays behind:
    a child process reads the system clock."""
    fields = {name: getattr(settings, name) for name in settings.__struct_fields__ if name != "clock"}
    return msgspec.json.encode(fields)


def _as_bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def from_env(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from DELIVERY_* environment variables, then apply keyword overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        if field.name == "clock":
            continue
        raw = env.get(f"DELIVERY_{field.name.upper()}")
        if raw is None:
            continue
        if field.type is bool or field.type == "bool":
            values[field.name] = _as_bool(raw)
        elif field.type in (int, "int"):
            values[field.name] = int(raw)
        elif field.type in (float, "float"):
            values[field.name] = float(raw)
        else:
            values[field.name] = raw
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    if not settings.secret_key:
        settings = msgspec.structs.replace(settings, secret_key=_local_secret())
    return settings


def _local_secret() -> str:
    """A per-installation secret kept under var/, so a new user needs to set nothing."""
    path = VAR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR.mkdir(exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.write_text(key)
    path.chmod(0o600)
    return key
