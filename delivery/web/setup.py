"""The first-run page: shown while the database holds no program, gone once one is started.

It takes what `delivery setup` takes (one service, delivery.program.setup) plus the choices that have
defaults, signs the new admin in and sends them to the admin pages.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template

from delivery.models import BoxType
from delivery.platform import auth
from delivery.program import setup
from delivery.program.orders import WEEKDAYS
from delivery.referrals.geocoding import AnswerKind, make_geocoder
from delivery.web.forms import Errors, FormData, field_errors
from delivery.web.render import DB, Config, page
from delivery.web.security import session_cookie

TIMEZONES = ("America/Los_Angeles", "America/Denver", "America/Phoenix", "America/Chicago",
             "America/New_York", "America/Anchorage", "Pacific/Honolulu", "America/Puerto_Rico",
             "Europe/London", "UTC")
DEFAULTS = {"timezone": "America/Los_Angeles", "depot_opens": "08:00", "depot_closes": "17:00",
            "delivery_weekday": "1", "boxes_per_delivery_day": "50", "depot_name": "Warehouse",
            "admin_name": ""}


def _body(form: dict[str, Any]) -> dict[str, Any]:
    """The form's flat fields as a ProgramIn body (blanks left out, so defaults and 'required' apply)."""
    def text(name: str) -> str:
        value = form.get(name, "")
        return (value[-1] if isinstance(value, list) else value).strip()

    def hour(name: str) -> str:  # a browser's time field sends HH:MM; msgspec wants the seconds too
        value = text(name)
        return f"{value}:00" if len(value) == 5 else value

    depot = {"name": text("depot_name"), "address": text("depot_address"), "lat": text("depot_lat"),
             "lon": text("depot_lon"), "opens": hour("depot_opens"), "closes": hour("depot_closes")}
    boxes = form.get("box_types", [])
    body: dict[str, Any] = {
        "food_bank": text("food_bank"), "timezone": text("timezone"),
        "depots": [{k: v for k, v in depot.items() if v}],
        "clinics": [line.strip() for line in text("clinics").splitlines() if line.strip()],
        "delivery_weekday": text("delivery_weekday"),
        "boxes_per_delivery_day": text("boxes_per_delivery_day"),
        "box_types": boxes if isinstance(boxes, list) else [boxes],
        "admin_email": text("admin_email"), "admin_name": text("admin_name"),
        "admin_password": form.get("admin_password", "")}
    return {k: v for k, v in body.items() if v != ""}


_FIELD_OF = {"depots.0.name": "depot_name", "depots.0.address": "depot_address", "depots.0.lat": "depot_lat",
             "depots.0.lon": "depot_lon", "depots.0.opens": "depot_opens", "depots.0.closes": "depot_closes",
             "depots": "depot_address"}


def _errors(body: dict[str, Any]) -> Errors:
    found = field_errors(setup.ProgramIn, body)
    depot = body.get("depots", [{}])[0]
    found |= {f"depots.0.{k}": v for k, v in field_errors(setup.DepotIn, depot).items()
              if not (k in ("lat", "lon") and k not in depot)}  # a missing point may be geocoded
    found.pop("depots", None)
    return {_FIELD_OF.get(k, k): v for k, v in found.items()}


def _locate(body: dict[str, Any], settings: Any) -> str | None:
    """Fill in the depot's point from its address when a geocoder is configured; else say what to do."""
    depot = body["depots"][0]
    if "lat" in depot and "lon" in depot:
        return None
    geocoder = make_geocoder(settings)
    if geocoder is None:
        return "Enter the depot's latitude and longitude (no geocoder is configured to find them)."
    answer = geocoder.lookup(depot["address"])
    if answer.kind != AnswerKind.found or answer.lat is None or answer.lon is None:
        return "The address could not be placed on the map: enter its latitude and longitude."
    depot["lat"], depot["lon"] = answer.lat, answer.lon
    return None


class SetupController(Controller):
    path = "/setup"

    def _form(self, request: Request, values: dict[str, Any], errors: Errors,
              status_code: int = 200) -> Template:
        return page(request, "account/setup.html", values=values, errors=errors, timezones=TIMEZONES,
                    weekdays=list(enumerate(WEEKDAYS)), box_types=[b.value for b in BoxType],
                    password_min=auth.MIN_PASSWORD_LENGTH, status_code=status_code)

    @get("/", opt={"public": True}, sync_to_thread=True)
    def first_run(self, request: Request, db: DB) -> Response | Template:
        """The first-run form; once a program exists it sends people to sign in."""
        if setup.has_program(db):
            return Redirect("/login")
        return self._form(request, dict(DEFAULTS), {})

    @post("/", opt={"public": True}, sync_to_thread=True)
    def start_program(self, request: Request, db: DB, settings: Config,
                      data: FormData) -> Response | Template:
        """Start the program, sign its first admin in and show them their pages."""
        if setup.has_program(db):
            return Redirect("/login", status_code=303)
        values = {k: v for k, v in data.items() if k != "admin_password"}
        body = _body(data)
        errors = _errors(body)
        if not errors:
            problem = _locate(body, settings)
            if problem:
                errors = {"depot_lat": problem}
        if not errors:
            try:
                admin = setup.start_program(db, msgspec.convert(body, setup.ProgramIn, strict=False),
                                            settings)
            except setup.SetupError as exc:
                errors = {_FIELD_OF.get(exc.field, exc.field) or "form": str(exc)}
            except msgspec.ValidationError as exc:
                errors = {"form": str(exc)}
        if errors:
            db.rollback()
            return self._form(request, values, errors, status_code=422)
        raw, _ = auth.start_session(db, admin, settings)
        db.commit()
        response = Redirect("/admin?started=1", status_code=303)
        response.set_cookie(**session_cookie(settings, raw))
        return response
