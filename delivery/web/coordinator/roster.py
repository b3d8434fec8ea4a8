"""The roster pages: drivers (list, add, edit, deactivate), each driver's shifts for the next
weeks, and the days the program is closed. Every change goes through delivery.program.roster."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import Session

from delivery.models import Driver, Holiday, Organization, Shift
from delivery.program import roster
from delivery.web.coordinator.overview import COORDINATORS
from delivery.web.forms import Errors, convert
from delivery.web.render import DB, PathId, page, principal, program_today

FormData = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
POLICY = {"roles": COORDINATORS}


def programs(request: Request) -> list[int]:
    return principal(request).organizations_with(*COORDINATORS)


def _today(request: Request, db: Session, food_bank_id: int) -> dt.date:
    food_bank = db.get(Organization, food_bank_id)
    assert food_bank is not None
    return program_today(request, food_bank)


def visible_driver(db: Session, request: Request, driver_id: int) -> Driver:
    """A driver of one of the coordinator's programs; any other id is simply not found."""
    driver = db.get(Driver, driver_id)
    if driver is None or driver.food_bank_id not in programs(request):
        raise NotFoundException("No such driver.")
    return driver


def _one(value: Any) -> str:
    value = value[-1] if isinstance(value, list) else value
    return value.strip() if isinstance(value, str) else ""


def driver_body(form: dict[str, Any]) -> dict[str, Any]:
    """The form's strings into DriverIn's shape; blanks left out so defaults and 'required' apply."""
    body: dict[str, Any] = {}
    for name in ("display_name", "email", "phone", "vehicle", "capacity_boxes", "home_lat", "home_lon"):
        if _one(form.get(name)):
            body[name] = _one(form.get(name))
    body["languages"] = [code.strip() for code in _one(form.get("languages")).replace(";", ",").split(",")
                         if code.strip()]
    body["carries_upstairs"] = "carries_upstairs" in form
    return body


def driver_values(driver: Driver) -> dict[str, str]:
    return {"display_name": driver.user.display_name, "email": driver.user.email,
            "phone": driver.phone or "", "vehicle": driver.vehicle,
            "capacity_boxes": str(driver.capacity_boxes), "languages": ", ".join(driver.languages),
            "carries_upstairs": "true" if driver.carries_upstairs else "",
            "home_lat": "" if driver.home_lat is None else str(driver.home_lat),
            "home_lon": "" if driver.home_lon is None else str(driver.home_lon)}


def shift_body(form: dict[str, Any]) -> dict[str, Any]:
    """The form's strings; a browser's time input sends HH:MM, msgspec reads HH:MM:SS."""
    body = {name: _one(form.get(name)) for name in ("date", "start", "end", "start_place", "end_place")
            if _one(form.get(name))}
    for name in ("start", "end"):
        if len(body.get(name, "")) == 5:
            body[name] += ":00"
    return body


class RosterController(Controller):
    path = "/coordinator"

    # --- drivers ---------------------------------------------------------------------------

    def _drivers_page(self, request: Request, db: Session, *, values: dict[str, Any], errors: Errors,
                      editing: Driver | None, status_code: int = 200, done: str = "") -> Template:
        drivers = [d for food_bank in programs(request) for d in roster.program_drivers(db, food_bank)]
        return page(request, "coordinator/drivers.html", status_code=status_code, drivers=drivers,
                    values=values, errors=errors, editing=editing, done=done)

    @get("/drivers", opt=POLICY, sync_to_thread=True)
    def drivers(self, request: Request, db: DB, edit: FromQuery[int] = 0,
                done: FromQuery[str] = "") -> Template:
        """Every driver of the program, a form to add one, and (with ?edit=ID) a form to change one."""
        editing = visible_driver(db, request, edit) if edit else None
        values = driver_values(editing) if editing else {"vehicle": "car", "carries_upstairs": "true"}
        return self._drivers_page(request, db, values=values, errors={}, editing=editing, done=done[:40])

    @post("/drivers", opt=POLICY, sync_to_thread=True, status_code=200)
    def add_driver(self, request: Request, db: DB, data: FormData) -> Response | Template:
        data_in, errors = convert(roster.DriverIn, driver_body(data))
        if data_in is not None:
            try:
                driver = roster.add_driver(db, food_bank_id=programs(request)[0], data=data_in)
            except roster.RosterError as exc:
                errors = {exc.field: str(exc)}
            else:
                db.commit()
                return Redirect(f"/coordinator/drivers/{driver.id}/shifts?done=added")
        db.rollback()
        return self._drivers_page(request, db, values=data, errors=errors, editing=None, status_code=422)

    @post("/drivers/{driver_id:int}", opt=POLICY, sync_to_thread=True, status_code=200)
    def update_driver(self, request: Request, db: DB, driver_id: PathId,
                      data: FormData) -> Response | Template:
        driver = visible_driver(db, request, driver_id)
        data_in, errors = convert(roster.DriverIn, driver_body(data))
        if data_in is not None:
            try:
                roster.update_driver(db, driver, data_in)
            except roster.RosterError as exc:
                errors = {exc.field: str(exc)}
            else:
                db.commit()
                return Redirect("/coordinator/drivers?done=saved")
        db.rollback()
        return self._drivers_page(request, db, values=data, errors=errors, editing=driver, status_code=422)

    @post("/drivers/{driver_id:int}/deactivate", opt=POLICY, sync_to_thread=True, status_code=200)
    def deactivate_driver(self, request: Request, db: DB, driver_id: PathId) -> Response:
        driver = visible_driver(db, request, driver_id)
        roster.deactivate_driver(db, driver, today=_today(request, db, driver.food_bank_id))
        db.commit()
        return Redirect("/coordinator/drivers?done=deactivated")

    @post("/drivers/{driver_id:int}/reactivate", opt=POLICY, sync_to_thread=True, status_code=200)
    def reactivate_driver(self, request: Request, db: DB, driver_id: PathId) -> Response:
        driver = visible_driver(db, request, driver_id)
        roster.reactivate_driver(db, driver)
        db.commit()
        return Redirect("/coordinator/drivers?done=reactivated")

    # --- shifts ----------------------------------------------------------------------------

    def _shifts_page(self, request: Request, db: Session, driver: Driver, *, values: dict[str, Any],
                     errors: Errors, editing: Shift | None = None, status_code: int = 200,
                     done: str = "") -> Template:
        today = _today(request, db, driver.food_bank_id)
        last = today + dt.timedelta(weeks=roster.SHIFT_WEEKS)
        shifts = roster.shifts_between(db, driver, today, last)
        depots = roster.program_depots(db, driver.food_bank_id)
        holidays = db.scalars(select(Holiday).where(Holiday.food_bank_id == driver.food_bank_id,
                                                    Holiday.date >= today, Holiday.date <= last)
                              .order_by(Holiday.date)).all()
        return page(request, "coordinator/shifts.html", status_code=status_code, driver=driver,
                    shifts=shifts, depots=depots, depot_names={d.id: d.name for d in depots},
                    holidays=holidays, values=values, errors=errors, editing=editing, today=today,
                    last=last, done=done, day_label=roster.day_label)

    def _default_shift(self, db: Session, driver: Driver) -> dict[str, str]:
        depots = roster.program_depots(db, driver.food_bank_id)
        place = f"depot:{depots[0].id}" if depots else roster.HOME
        return {"start": "09:00", "end": "13:00", "start_place": place, "end_place": place}

    @get("/drivers/{driver_id:int}/shifts", opt=POLICY, sync_to_thread=True)
    def shifts(self, request: Request, db: DB, driver_id: PathId, edit: FromQuery[int] = 0,
               done: FromQuery[str] = "") -> Template:
        """The driver's shifts for the next four weeks, with forms to add, change or remove one."""
        driver = visible_driver(db, request, driver_id)
        editing = db.get(Shift, edit) if edit else None
        if editing is not None and editing.driver_id != driver.id:
            editing = None
        if editing is not None:
            values = {"date": editing.date.isoformat(), "start": f"{editing.start:%H:%M}",
                      "end": f"{editing.end:%H:%M}",
                      "start_place": f"depot:{editing.start_depot_id}" if editing.start_depot_id else "home",
                      "end_place": f"depot:{editing.end_depot_id}" if editing.end_depot_id else "home"}
        else:
            values = self._default_shift(db, driver)
        return self._shifts_page(request, db, driver, values=values, errors={}, editing=editing,
                                 done=done[:40])

    def _save_shift(self, request: Request, db: Session, driver: Driver, data: dict[str, Any],
                    shift: Shift | None) -> Response | Template:
        shift_in, errors = convert(roster.ShiftIn, shift_body(data))
        errors = {k: "Enter a time as HH:MM." if "RFC3339 encoded time" in v else v
                  for k, v in errors.items()}
        if shift_in is not None:
            try:
                roster.save_shift(db, driver=driver, data=shift_in, offered_by="coordinator",
                                  today=_today(request, db, driver.food_bank_id), shift=shift)
            except roster.RosterError as exc:
                errors = {exc.field: str(exc)}
            else:
                db.commit()
                return Redirect(f"/coordinator/drivers/{driver.id}/shifts?done=saved")
        db.rollback()
        return self._shifts_page(request, db, driver, values=data, errors=errors, editing=shift,
                                 status_code=422)

    @post("/drivers/{driver_id:int}/shifts", opt=POLICY, sync_to_thread=True, status_code=200)
    def add_shift(self, request: Request, db: DB, driver_id: PathId,
                  data: FormData) -> Response | Template:
        driver = visible_driver(db, request, driver_id)
        return self._save_shift(request, db, driver, data, None)

    def _shift_of(self, db: Session, driver: Driver, shift_id: int) -> Shift:
        shift = db.get(Shift, shift_id)
        if shift is None or shift.driver_id != driver.id:
            raise NotFoundException("No such shift.")
        return shift

    @post("/drivers/{driver_id:int}/shifts/{shift_id:int}", opt=POLICY, sync_to_thread=True,
          status_code=200)
    def change_shift(self, request: Request, db: DB, driver_id: PathId, shift_id: PathId,
                     data: FormData) -> Response | Template:
        driver = visible_driver(db, request, driver_id)
        return self._save_shift(request, db, driver, data, self._shift_of(db, driver, shift_id))

    @post("/drivers/{driver_id:int}/shifts/{shift_id:int}/delete", opt=POLICY, sync_to_thread=True,
          status_code=200)
    def remove_shift(self, request: Request, db: DB, driver_id: PathId,
                     shift_id: PathId) -> Response | Template:
        driver = visible_driver(db, request, driver_id)
        try:
            roster.remove_shift(db, self._shift_of(db, driver, shift_id))
        except roster.RosterError as exc:
            db.rollback()
            return self._shifts_page(request, db, driver, values=self._default_shift(db, driver),
                                     errors={"": str(exc)}, status_code=409)
        db.commit()
        return Redirect(f"/coordinator/drivers/{driver.id}/shifts?done=removed")

    # --- holidays --------------------------------------------------------------------------

    def _holidays_page(self, request: Request, db: Session, *, values: dict[str, Any], errors: Errors,
                       status_code: int = 200, done: str = "") -> Template:
        today = _today(request, db, programs(request)[0])
        holidays = db.scalars(select(Holiday).where(Holiday.food_bank_id.in_(programs(request)),
                                                    Holiday.date >= today).order_by(Holiday.date)).all()
        return page(request, "coordinator/holidays.html", status_code=status_code, holidays=holidays,
                    values=values, errors=errors, done=done, day_label=roster.day_label, today=today)

    @get("/holidays", opt=POLICY, sync_to_thread=True)
    def holidays(self, request: Request, db: DB, done: FromQuery[str] = "") -> Template:
        """Days the program is closed: no stops are built and no shifts offered for them."""
        return self._holidays_page(request, db, values={}, errors={}, done=done[:40])

    @post("/holidays", opt=POLICY, sync_to_thread=True, status_code=200)
    def mark_holiday(self, request: Request, db: DB, data: FormData) -> Response | Template:
        errors: Errors = {}
        try:
            day = dt.date.fromisoformat(_one(data.get("date")))
        except ValueError:
            errors = {"date": "Enter a date as YYYY-MM-DD."}
        else:
            try:
                food_bank = programs(request)[0]
                roster.mark_holiday(db, food_bank_id=food_bank, date=day, name=_one(data.get("name")),
                                    today=_today(request, db, food_bank))
            except roster.RosterError as exc:
                errors = {exc.field: str(exc)}
            else:
                offered = len(roster.shifts_on(db, food_bank, day))
                db.commit()
                return Redirect(f"/coordinator/holidays?done={'closed-with-shifts' if offered else 'closed'}")
        db.rollback()
        return self._holidays_page(request, db, values=data, errors=errors, status_code=422)

    @post("/holidays/{holiday_id:int}/delete", opt=POLICY, sync_to_thread=True, status_code=200)
    def remove_holiday(self, request: Request, db: DB, holiday_id: PathId) -> Response:
        holiday = db.get(Holiday, holiday_id)
        if holiday is None or holiday.food_bank_id not in programs(request):
            raise NotFoundException("No such closed day.")
        roster.remove_holiday(db, holiday)
        db.commit()
        return Redirect("/coordinator/holidays?done=reopened")
