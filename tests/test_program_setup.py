"""Starting a real program from the command line, and mail that really reaches an SMTP server."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from delivery.cli import main
from delivery.models import Depot, Invite, Organization, OrganizationKind, User
from delivery.platform import auth, mail
from delivery.platform.audit import AuditContext
from delivery.platform.db import Database
from delivery.platform.settings import Settings
from tests.mailbox import Mailbox

ADMIN_PASSWORD = "a long admin passphrase"
SETUP = ["setup", "--food-bank", "Northside Pantry", "--timezone", "America/Chicago",
         "--depot", "Main warehouse|100 Lake St, Chicago|41.8853|-87.6229",
         "--clinic", "Lakeview Clinic", "--clinic", "Pilsen Health", "--admin-email", "Boss@North.example"]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> str:
    monkeypatch.setenv("DELIVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("DELIVERY_SECRET_KEY", "test-secret")
    monkeypatch.setenv("DELIVERY_BASE_URL", "https://food.example")
    monkeypatch.delenv("DELIVERY_SMTP_URL", raising=False)
    monkeypatch.setenv("DELIVERY_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return database_url


def test_setup_starts_a_program_once(env: str, database: Database, capsys: pytest.CaptureFixture[str],
                                     ) -> None:
    """`delivery setup` creates the food bank, its depot, its clinics and an admin who can sign in;
    a second run is refused and changes nothing."""
    assert main(SETUP) == 0
    assert "Northside Pantry is ready" in capsys.readouterr().out
    with database.reader() as db:
        food_bank = db.scalar(select(Organization).where(Organization.kind == OrganizationKind.food_bank))
        assert food_bank is not None and food_bank.timezone == "America/Chicago"
        clinics = db.scalars(select(Organization.name).where(Organization.food_bank_id == food_bank.id)).all()
        assert sorted(clinics) == ["Lakeview Clinic", "Pilsen Health"]
        depot = db.scalar(select(Depot))
        assert depot is not None
        assert (depot.lat, depot.lon, depot.name) == (41.8853, -87.6229, "Main warehouse")
        admin = auth.authenticate(db, AuditContext(), "boss@north.example", ADMIN_PASSWORD, Settings())
        assert admin is not None and admin.memberships[0].role == "admin"
        assert admin.password_hash.startswith("$argon2id$")
    assert main([*SETUP[:2], "Another", *SETUP[3:]]) == 2
    assert "already runs a program" in capsys.readouterr().err
    with database.reader() as db:
        assert len(db.scalars(select(Organization)).all()) == 3


@pytest.mark.parametrize(("change", "message"), [
    ({"--timezone": "Mars/Olympus"}, "not a time zone"),
    ({"--depot": "Warehouse|somewhere|north|west"}, "must be numbers"),
    ({"--depot": "only a name"}, "NAME|ADDRESS|LAT|LON"),
])
def test_setup_says_what_to_fix(env: str, database: Database, capsys: pytest.CaptureFixture[str],
                                change: dict[str, str], message: str) -> None:
    """A bad flag exits 2 with a message naming the fix, and no program is half-made."""
    args = list(SETUP)
    for flag, value in change.items():
        args[args.index(flag) + 1] = value
    assert main(args) == 2
    assert message in capsys.readouterr().err
    with database.reader() as db:
        assert db.scalar(select(Organization.id)) is None


def test_setup_refuses_a_weak_admin_password(env: str, database: Database, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The first admin's password meets the same rules as everyone's (R1.5)."""
    monkeypatch.setenv("DELIVERY_ADMIN_PASSWORD", "password")
    assert main(SETUP) == 2
    assert "most common" in capsys.readouterr().err
    with database.reader() as db:
        assert db.scalar(select(User.id)) is None


def test_setup_without_a_terminal_names_the_missing_flag(env: str, capsys: pytest.CaptureFixture[str],
                                                        ) -> None:
    """Run by a script (no terminal), a missing flag is an error, not a prompt that hangs."""
    assert main(["setup", "--food-bank", "X", "--timezone", "UTC"]) == 2
    assert "Depot (NAME|ADDRESS|LAT|LON) is missing" in capsys.readouterr().err


def test_invite_prints_the_link_without_smtp(env: str, database: Database,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """With no SMTP server the command prints the single-use link; only its hash is stored."""
    assert main(SETUP) == 0
    assert main(["invite", "--email", "sam@lakeview.example", "--role", "clinic_staff",
                 "--clinic", "Lakeview Clinic"]) == 0
    out = capsys.readouterr().out
    assert "No SMTP server is configured" in out
    raw = out.strip().rsplit("/invite/", 1)[1]
    with database.reader() as db:
        invite = db.scalar(select(Invite))
        assert invite is not None and invite.organization.name == "Lakeview Clinic"
        assert invite.token_hash == auth.token_hash(raw) and raw not in invite.token_hash


def test_invite_of_clinic_staff_needs_a_known_clinic(env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SETUP) == 0
    assert main(["invite", "--email", "x@y.example", "--role", "clinic_staff"]) == 2
    assert "--clinic NAME" in capsys.readouterr().err
    assert main(["invite", "--email", "x@y.example", "--role", "clinic_staff", "--clinic", "Nope"]) == 2
    assert "no clinic named 'Nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("clinic", "belongs_to"), [([], "Northside Pantry"),
                                                  (["--clinic", "Lakeview Clinic"], "Lakeview Clinic")])
def test_benefits_staff_are_invited_to_the_program_or_one_clinic(env: str, database: Database,
                                                                 clinic: list[str], belongs_to: str) -> None:
    """Benefits-enrollment staff work the whole program's worklist, or one clinic's with --clinic."""
    assert main(SETUP) == 0
    assert main(["invite", "--email", "bea@north.example", "--role", "benefits", *clinic]) == 0
    with database.reader() as db:
        invite = db.scalar(select(Invite))
        assert invite is not None and (invite.role, invite.organization.name) == ("benefits", belongs_to)


def test_invite_is_mailed_through_smtp(env: str, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """With DELIVERY_SMTP_URL the invite leaves by SMTP (with the URL's credentials), as plain text and
    HTML, carrying the link; the terminal does not show it."""
    assert main(SETUP) == 0
    monkeypatch.setenv("DELIVERY_SMTP_URL", mailbox.url)
    monkeypatch.setenv("DELIVERY_MAIL_FROM", "pantry@food.example")
    assert main(["invite", "--email", "casey@north.example", "--role", "coordinator"]) == 0
    out = capsys.readouterr().out
    assert "Invite sent to casey@north.example" in out and "/invite/" not in out
    assert mailbox.logins == ["mailer"]
    [message] = mailbox.to("casey@north.example")
    assert message["From"] == "pantry@food.example"
    assert message["Subject"] == "You are invited to Northside Pantry"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = mailbox.link("casey@north.example", "/invite/")
    assert link.startswith("https://food.example/invite/") and f'href="{link}"' in html


def test_unreachable_smtp_is_a_clear_error() -> None:
    """A server that does not answer gives a MailError naming the host, not a traceback."""
    settings = Settings(smtp_url="smtp://127.0.0.1:1", base_url="https://food.example")
    with pytest.raises(mail.MailError, match=r"through 127\.0\.0\.1"):
        mail.send(settings, mail.render("reset", "a@b.example", program="P", email="a@b.example",
                                        link="https://food.example/reset/x", expires="soon"))
