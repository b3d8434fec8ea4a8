"""Drivers from a CSV on the admin's page: all rows or none, with a report naming each row to fix."""

from __future__ import annotations

from litestar.testing import TestClient
from sqlalchemy import func, select

from delivery.models import Driver
from delivery.platform.db import Database
from tests.builders import Program, sign_in

GOOD = ("email,name,phone,vehicle,capacity_boxes,languages,carries_upstairs\r\n"
        "ana@example.org,Ana Ruiz,+1 510 555 0100,car,10,en es,yes\r\n"
        "bo@example.org,Bo Chen,,van,24,yue,no\r\n")


def upload(client: TestClient, token: str, text: str):  # type: ignore[no-untyped-def]
    return client.post("/admin/drivers/import", data={"csrf_token": token},
                       files={"file": ("drivers.csv", text.encode(), "text/csv")})


def drivers(database: Database) -> int:
    with database.reader() as db:
        return db.scalar(select(func.count(Driver.id))) or 0


def test_a_good_file_adds_every_driver(client: TestClient, program: Program, database: Database) -> None:
    token = sign_in(client, program.admin)
    response = upload(client, token, GOOD)
    assert response.status_code == 200 and "2 drivers added" in response.text
    with database.reader() as db:
        bo = db.scalars(select(Driver)).all()[1]
        assert (bo.vehicle, bo.capacity_boxes, bo.languages) == ("van", 24, ["yue"])
        assert bo.carries_upstairs is False
        assert bo.user.password_hash is None  # they sign in by route link until they accept an invite


def test_one_bad_row_imports_nothing_and_names_each_problem(client: TestClient, program: Program,
                                                            database: Database) -> None:
    token = sign_in(client, program.admin)
    bad = GOOD + "cy@example.org,Cy,,bike,ten,,maybe\r\nana@example.org,Ana again,,car,5,,\r\n"
    response = upload(client, token, bad)
    assert response.status_code == 422 and "nothing was imported" in response.text
    assert "Row 4, capacity_boxes: Expected `int`" in response.text  # the row's first problem
    assert "Row 5, email: ana@example.org is also on row 2" in response.text
    assert drivers(database) == 0


def test_an_email_that_already_has_an_account_rolls_back_the_whole_file(
        client: TestClient, program: Program, database: Database) -> None:
    token = sign_in(client, program.admin)
    response = upload(client, token, GOOD + f"{program.coordinator},Casey,,car,5,,\r\n")
    assert response.status_code == 422
    assert f"An account for {program.coordinator} already exists" in response.text
    assert drivers(database) == 0


def test_only_admins_import_drivers(client: TestClient, program: Program) -> None:
    token = sign_in(client, program.coordinator)
    assert upload(client, token, GOOD).status_code == 403
