"""The `delivery` command: serve, migrate, load the demo, import, plan, solve, tokens, backups, worker."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from delivery.platform.settings import Settings, from_env

if TYPE_CHECKING:
    from delivery.platform.db import Database

ROLES = ("admin", "coordinator", "clinic_staff", "benefits", "driver")


class CommandError(Exception):
    """A command that cannot run as asked; the message says what to fix (exit code 2)."""


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date; write it as YYYY-MM-DD") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="delivery", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the web app")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])

    demo = sub.add_parser("demo", help="demo data")
    demo.add_argument("action", choices=["load"])

    imp = sub.add_parser("import", help="bulk intake")
    imp.add_argument("what", choices=["referrals"])
    imp.add_argument("file", type=Path)
    imp.add_argument("--clinic", help="the referring clinic's name or id (or a 'clinic' column)")

    geo = sub.add_parser("geocode", help="geocode addresses still waiting for a point")
    geo.add_argument("--limit", type=int, default=None)

    token = sub.add_parser("token", help="API tokens")
    token.add_argument("action", choices=["create"])
    token.add_argument("--user", required=True, metavar="EMAIL")

    backup = sub.add_parser("backup", help="online backup of the database (and photos, encrypted with age)")
    backup.add_argument("path", type=Path)
    backup.add_argument("--recipient", action="append", default=[], metavar="AGE1…",
                        help="an age public key to encrypt for (default: DELIVERY_BACKUP_RECIPIENTS)")
    restore = sub.add_parser("restore", help="restore an encrypted backup into an empty database")
    restore.add_argument("file", type=Path)
    restore.add_argument("--identity", type=Path, required=True, metavar="KEYFILE",
                         help="the age identity (private key) file the backup was encrypted for")
    restore.add_argument("--to", dest="target", required=True, metavar="DATABASE_URL")
    restore.add_argument("--photos", type=Path, required=True, metavar="DIR", help="an empty folder")
    sheets = sub.add_parser("sheets", help="emergency: a day's route sheets from a backup, the app down")
    sheets.add_argument("--from-backup", dest="backup_file", type=Path, required=True, metavar="FILE")
    sheets.add_argument("--identity", type=Path, required=True, metavar="KEYFILE")
    sheets.add_argument("--date", required=True, type=_date, metavar="YYYY-MM-DD")
    sheets.add_argument("--out", type=Path, metavar="FILE.html", help="default: standard output")

    solve = sub.add_parser("solve", help="solve a routing problem file, print the solution JSON")
    solve.add_argument("file")
    solve.add_argument("--format", choices=["solomon", "json"])
    solve.add_argument("--time-limit", type=float, default=10.0)

    plan = sub.add_parser("plan", help="plan a delivery day from the database")
    plan.add_argument("date", type=_date)
    plan.add_argument("--time-limit", type=float, default=30.0)

    worker = sub.add_parser("worker",
                            help="run background jobs (plan solves, geocoding, webhooks, …) until stopped")
    worker.add_argument("--kinds", metavar="K,...", help="run only these kinds of job (default: every kind)")

    setup = sub.add_parser("setup", help="start a real program (once): food bank, depots, clinics, admin",
                           description="Start a real program. The admin's password comes from "
                           "DELIVERY_ADMIN_PASSWORD, else it is asked for. Missing flags are asked for "
                           "in a terminal.")
    setup.add_argument("--food-bank", metavar="NAME")
    setup.add_argument("--timezone", metavar="TZ", help="e.g. America/Los_Angeles")
    setup.add_argument("--depot", action="append", default=[], metavar="NAME|ADDRESS|LAT|LON")
    setup.add_argument("--clinic", action="append", default=[], metavar="NAME")
    setup.add_argument("--admin-email", metavar="EMAIL")

    invite = sub.add_parser("invite", help="invite a person; prints the link when no SMTP is configured")
    invite.add_argument("--email", required=True)
    invite.add_argument("--role", required=True, choices=ROLES)
    invite.add_argument("--clinic", metavar="NAME", help="the clinic of a clinic_staff invite (of a benefits "
                        "one: its patients only; without it, the whole program's)")

    link = sub.add_parser("route-link", help="print a driver's personal link to a published route")
    link.add_argument("--driver", required=True, metavar="EMAIL")
    link.add_argument("--date", required=True, type=_date)
    hook = sub.add_parser("webhook", help="a clinic's webhook endpoints")
    hook_sub = hook.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = hook_sub.add_parser("add", help="register an endpoint; prints its id and secret (shown once)")
    add.add_argument("--clinic", required=True, metavar="NAME")
    add.add_argument("--url", required=True)
    add.add_argument("--events", default="", metavar="KIND,...", help="event kinds (default: every kind)")

    fhir = sub.add_parser("fhir-client", help="clinic systems registered for SMART Backend Services")
    fhir_sub = fhir.add_subparsers(dest="action", required=True, metavar="ACTION")
    fadd = fhir_sub.add_parser("add",
                               help="register a clinic's system by its public keys; prints its client id")
    fadd.add_argument("--clinic", required=True, metavar="NAME")
    keys = fadd.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-url", metavar="URL",
                      help="where the system publishes its public keys (read now)")
    keys.add_argument("--jwks-file", type=Path, metavar="FILE", help="its public keys as a JWKS file")
    fadd.add_argument("--scope", default=None, help="system/ scopes granted (default: what /fhir needs)")
    fadd.add_argument("--client-id", default=None, help="the id the system signs as (default: made up)")
    fhir_sub.add_parser("list", help="registered systems and whether they are live")
    frevoke = fhir_sub.add_parser("revoke", help="stop a system: its tokens stop working at once")
    frevoke.add_argument("client_id", metavar="CLIENT_ID")

    report = sub.add_parser("report", help="the funder report for a period (JSON, CSV or PDF)")
    report.add_argument("--from", dest="start", required=True, type=_date, metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="end", required=True, type=_date, metavar="YYYY-MM-DD")
    report.add_argument("--clinic", metavar="NAME", help="only this clinic (default: the whole program)")
    report.add_argument("--format", choices=["json", "csv", "pdf"], default="json")
    report.add_argument("--out", type=Path, metavar="FILE", help="write here (default: standard output)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = from_env()
    try:
        return run(args, settings)
    except CommandError as exc:
        print(f"delivery {args.command}: {exc}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "solve":
        from delivery.routing.cli import solve_command

        return solve_command(args.file, args.format, args.time_limit)

    from delivery.platform.db import Database, upgrade

    if args.command == "db":
        upgrade(settings.database_url)
        print("database is up to date")
        return 0
    if args.command in ("serve", "worker"):
        preflight(settings)
    if args.command == "restore":
        from delivery.platform.backup import BackupError, restore

        try:
            print(restore(args.file, args.identity, args.target, args.photos))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        return 0
    if args.command == "sheets":
        from delivery.web.emergency import EmergencyError, sheets_from_backup

        try:
            html = sheets_from_backup(args.backup_file, args.identity, args.date)
        except EmergencyError as exc:
            raise CommandError(str(exc)) from None
        if args.out:
            args.out.write_text(html, encoding="utf-8")
            print(f"route sheets for {args.date} written to {args.out}")
        else:
            print(html)
        return 0
    if args.command == "serve":
        import uvicorn

        from delivery.web.app import create_app, tune_server_process

        tune_server_process(settings)
        uvicorn.run(create_app(settings), host=args.host or settings.host, port=args.port or settings.port,
                    log_level="info")
        return 0

    database = Database(settings.database_url)
    try:
        if args.command == "demo":
            from delivery import demo

            print(demo.load(database, settings))
            return 0
        if args.command == "import":
            from delivery.referrals import csv_import

            report = csv_import.import_file(database, args.file, clinic=args.clinic, clock=settings.clock)
            print(report.text())
            if report.ok:
                from delivery.referrals import geocoding

                with database.writer() as db:
                    sent = geocoding.review_if_off(db, settings)
                    db.commit()
                if sent:
                    print(f"  geocoding is off: {sent} address(es) sent to the review queue")
            return 0 if report.ok else 1
        if args.command == "geocode":
            from delivery.referrals import geocoding

            print(geocoding.geocode_pending(database, settings, limit=args.limit))
            return 0
        if args.command == "token":
            from delivery.platform import auth

            with database.writer() as db:
                try:
                    raw = auth.create_api_token(db, args.user)
                except auth.AccountError as exc:
                    raise CommandError(str(exc)) from None
                db.commit()
            print(raw)
            return 0
        if args.command == "backup":
            from delivery.platform.backup import BackupError, backup

            recipients = args.recipient or settings.recipients
            if settings.production and not recipients:
                raise CommandError("production backups are encrypted: pass --recipient age1… or set "
                                   "DELIVERY_BACKUP_RECIPIENTS")
            try:
                print(backup(settings.database_url, args.path, recipients=recipients,
                             photos=settings.photos))
            except BackupError as exc:
                raise CommandError(str(exc)) from None
            return 0
        if args.command == "plan":
            from delivery.plans import planning

            return planning.plan_command(database, settings, args.date, args.time_limit)
        if args.command == "worker":
            from delivery import worker

            only = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
            try:
                runner = worker.runner(database, settings, only)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            worker.serve(runner)
            return 0
        if args.command == "webhook":
            return webhook_command(database, settings, args)
        if args.command == "fhir-client":
            return fhir_client_command(database, settings, args)
        if args.command == "report":
            return report_command(database, settings, args)
        if args.command == "setup":
            return setup_command(database, settings, args)
        if args.command == "invite":
            return invite_command(database, settings, args)
        if args.command == "route-link":
            from delivery.plans import publishing

            return publishing.route_link_command(database, settings, args.driver, args.date)
    finally:
        database.dispose()
    raise CommandError(f"unknown command {args.command}")


def preflight(settings: Settings) -> None:
    """Refuse to serve an unsafe production configuration or a database not at this code's schema."""
    from delivery.platform.preflight import production_problems, schema_problems

    problems = production_problems(settings) + schema_problems(settings.database_url)
    if problems:
        raise CommandError("refusing to start:\n  - " + "\n  - ".join(problems))


def report_command(database, settings: Settings, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    import msgspec

    from delivery.reports import document, funder, tables

    with database.reader() as db:
        try:
            food_bank, clinic = funder.program_for(db, args.clinic)
            report = funder.build(db, food_bank, args.start, args.end, clinic)
        except funder.ReportError as exc:
            raise CommandError(str(exc)) from None
    if args.format == "pdf":
        body = document.pdf(report, settings.clock.local(food_bank.timezone))
    elif args.format == "csv":
        body = tables.to_csv(tables.tables(report)).encode()
    else:
        body = msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"
    if args.out is not None:
        args.out.write_bytes(body)
    elif args.format == "pdf" and sys.stdout.isatty():
        raise CommandError("a PDF is not for the terminal: add --out FILE (or redirect the output)")
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    return 0


def webhook_command(database, settings: Settings, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from delivery.loop import endpoints
    from delivery.platform.audit import AuditContext

    with database.writer() as db:
        try:
            clinic = endpoints.find_clinic(db, args.clinic)
            kinds = [k.strip() for k in args.events.split(",") if k.strip()]
            made = endpoints.register(db, clinic, args.url, kinds,
                                      allow_loopback=settings.webhook_allow_loopback,
                                      actor=AuditContext.for_command("webhook add"))
        except endpoints.EndpointError as exc:
            raise CommandError(str(exc)) from None
        db.commit()
    print(f"endpoint {made.endpoint.id} for {clinic.name}: {made.endpoint.url}")
    print(f"secret (shown once): {made.secret}")
    return 0


def fhir_client_command(database, settings: Settings, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    import httpx

    from delivery.loop import endpoints
    from delivery.loop.fhir import clients
    from delivery.platform.audit import AuditContext

    actor = AuditContext.for_command(f"fhir-client {args.action}")
    if args.action == "list":
        with database.reader() as db:
            for client, clinic in clients.listing(db):
                state = f"revoked {client.revoked_at:%Y-%m-%d}" if client.revoked_at else "live"
                print(f"{client.client_id}\t{clinic.name}\t{state}\t{client.scopes}")
        return 0
    try:
        if args.action == "add":  # the key set is read before the database is touched
            if args.jwks_url:
                with httpx.Client() as http:
                    jwks = clients.fetch_jwks(args.jwks_url, http,
                                              allow_loopback=settings.webhook_allow_loopback)
            else:
                try:
                    jwks = clients.read_jwks(args.jwks_file.read_bytes())
                except OSError as exc:
                    raise CommandError(f"cannot read {args.jwks_file}: {exc.strerror}") from None
        with database.writer() as db:
            if args.action == "revoke":
                clients.revoke(db, actor, args.client_id, settings.clock)
                db.commit()
                print(f"revoked {args.client_id}")
                return 0
            clinic = endpoints.find_clinic(db, args.clinic)
            made = clients.add(db, actor, clinic, jwks, jku=args.jwks_url, scope=args.scope,
                               client_id=args.client_id)
            db.commit()
            print(f"client {made.client_id} for {clinic.name}: token URL {settings.base_url.rstrip('/')}"
                  f"/fhir/auth/token, scopes {made.scopes}")
    except (clients.ClientError, endpoints.EndpointError) as exc:
        raise CommandError(str(exc)) from None
    return 0


def _ask(label: str, given: str | None, *, secret: bool = False) -> str:
    """A flag's value, or (in a terminal) the answer to a prompt; refused when neither is there."""
    if given:
        return given
    if not sys.stdin.isatty():
        raise CommandError(f"{label} is missing: pass it as a flag (see delivery setup --help).")
    import getpass

    answer = getpass.getpass(f"{label}: ") if secret else input(f"{label}: ")
    if not answer.strip():
        raise CommandError(f"{label} is required.")
    return answer


def _depot(text: str) -> dict[str, object]:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 4:
        raise CommandError(f"--depot {text!r}: write it as \"NAME|ADDRESS|LAT|LON\".")
    name, address, lat, lon = parts
    try:
        return {"name": name, "address": address, "lat": float(lat), "lon": float(lon)}
    except ValueError:
        raise CommandError(f"--depot {text!r}: LAT and LON must be numbers like 37.75 and -122.18.") from None


def setup_command(database: Database, settings: Settings, args: argparse.Namespace) -> int:
    """`delivery setup`: start the program once, from flags or (in a terminal) answers to prompts."""
    from delivery.program import setup
    from delivery.web.forms import convert

    with database.reader() as db:
        if setup.has_program(db):
            raise CommandError("this installation already runs a program; sign in as its admin, "
                               "or invite people with `delivery invite`.")
    food_bank = _ask("Food bank name", args.food_bank)
    timezone = _ask("Time zone (e.g. America/Los_Angeles)", args.timezone)
    depots = args.depot or [_ask("Depot (NAME|ADDRESS|LAT|LON)", None)]
    email = _ask("First admin's email", args.admin_email)
    password = os.environ.get("DELIVERY_ADMIN_PASSWORD") or _ask("Admin password", None, secret=True)
    data, errors = convert(setup.ProgramIn, {"food_bank": food_bank, "timezone": timezone,
                                             "depots": [_depot(d) for d in depots], "clinics": args.clinic,
                                             "admin_email": email, "admin_password": password})
    if data is None:
        raise CommandError("; ".join(f"{where}: {message}" if where else message
                                     for where, message in errors.items()))
    with database.writer() as db:
        try:
            admin = setup.start_program(db, data, settings)
        except setup.SetupError as exc:
            raise CommandError(str(exc)) from None
        db.commit()
        print(f"{data.food_bank} is ready. Sign in as {admin.email}; invite people with `delivery invite`.")
    return 0


def invite_command(database: Database, settings: Settings, args: argparse.Namespace) -> int:
    """`delivery invite`: mail the single-use link, or print it when no SMTP server is configured."""
    from sqlalchemy import select

    from delivery.models import Organization, OrganizationKind, Role
    from delivery.platform import mail
    from delivery.platform.audit import AuditContext
    from delivery.program import people

    with database.writer() as db:
        food_bank = db.scalar(select(Organization).where(Organization.kind == OrganizationKind.food_bank)
                              .order_by(Organization.id).limit(1))
        if food_bank is None:
            raise CommandError("no program yet: run `delivery setup` first.")
        clinic_id = None
        if args.role == Role.clinic_staff and not args.clinic:
            raise CommandError("a clinic_staff invite needs --clinic NAME.")
        if args.clinic and args.role in (Role.clinic_staff, Role.benefits):
            clinic_id = db.scalar(select(Organization.id).where(Organization.name == args.clinic,
                                                                Organization.kind == OrganizationKind.clinic))
            if clinic_id is None:
                raise CommandError(f"no clinic named {args.clinic!r}.")
        try:
            organization = people.organization_for(db, food_bank, Role(args.role), clinic_id)
            issued = people.invite(db, AuditContext.for_command("invite"), email=args.email,
                                   role=Role(args.role),
                                   organization=organization, now=settings.clock.now())
        except people.PeopleError as exc:
            raise CommandError(str(exc)) from None
        message = people.invite_mail(settings, issued, program=food_bank.name, inviter=None)
        db.commit()
    if not mail.configured(settings):
        print(f"No SMTP server is configured (DELIVERY_SMTP_URL): give {issued.invite.email} this "
              f"single-use link, valid 72 hours:\n{people.link(settings.base_url, issued.raw)}")
        return 0
    try:
        mail.send(settings, message)
    except mail.MailError as exc:
        raise CommandError(f"{exc}. The invite stands: send it again from the people page.") from None
    print(f"Invite sent to {issued.invite.email}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
