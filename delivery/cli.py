"""The `delivery` command: serve, migrate, load the demo, import, plan, solve, tokens, backups, worker."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from delivery.platform.settings import Settings, from_env


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

    backup = sub.add_parser("backup", help="online backup of the database")
    backup.add_argument("path", type=Path)

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

    link = sub.add_parser("route-link", help="print a driver's personal link to a published route")
    link.add_argument("--driver", required=True, metavar="EMAIL")
    link.add_argument("--date", required=True, type=_date)
    hook = sub.add_parser("webhook", help="a clinic's webhook endpoints")
    hook_sub = hook.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = hook_sub.add_parser("add", help="register an endpoint; prints its id and secret (shown once)")
    add.add_argument("--clinic", required=True, metavar="NAME")
    add.add_argument("--url", required=True)
    add.add_argument("--events", default="", metavar="KIND,...", help="event kinds (default: every kind)")

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
    if args.command == "serve":
        import uvicorn

        from delivery.web.app import create_app

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

            try:
                print(backup(settings.database_url, args.path))
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
        if args.command == "report":
            return report_command(database, settings, args)
        if args.command == "route-link":
            from delivery.plans import publishing

            return publishing.route_link_command(database, settings, args.driver, args.date)
    finally:
        database.dispose()
    raise CommandError(f"unknown command {args.command}")


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


if __name__ == "__main__":
    sys.exit(main())
