"""An independent FHIR client (`fhirpy`, which we did not write) uses our server over real HTTP on
loopback: create through a Bundle, read, search, include, page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fhirpy import SyncFHIRClient

from delivery.platform.db import Database
from delivery.platform.settings import Settings
from delivery.web.app import create_app
from tests.builders import Program, api_token
from tests.fhir_checks import check_service_request, check_task, sample_bundle
from tests.live import loopback_socket, serving


@dataclass(frozen=True)
class Served:
    base: str
    authorization: str


@pytest.fixture
def served(database: Database, database_url: str, program: Program) -> Iterator[Served]:
    """Our app under uvicorn on an ephemeral loopback port, and a clinic user's bearer token."""
    with database.writer() as db:
        authorization = api_token(db, program.clinic1)["Authorization"]
        db.commit()
    sock = loopback_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(database_url=database_url, secret_key="fhir-client-test", base_url=base,
                        geocoder="none")
    with serving(create_app(settings, database), sock):
        yield Served(f"{base}/fhir", authorization)


def test_fhirpy_creates_reads_searches_includes_and_pages(served: Served) -> None:
    client = SyncFHIRClient(served.base, authorization=served.authorization)
    for n in range(3):
        answer = client.resource("Bundle", **sample_bundle(mrn=f"P-{n}", request_id=f"SR-{n}")).save()
        assert answer["type"] == "transaction-response"
    first = client.resources("Task").search(_id="1").first()
    check_task(first.serialize())
    read = client.reference("Task", first.id).to_resource()
    assert read.serialize() == first.serialize()

    bundle = (client.resources("Task").search(focus=first["focus"]["reference"]).include("Task", "focus")
              .fetch_raw())
    kinds = [entry.resource.resourceType for entry in bundle.entry]
    assert kinds == ["Task", "ServiceRequest"]
    check_service_request(bundle.entry[1].resource.serialize())

    assert client.resources("Task").search(status="accepted").count() == 3
    paged = client.resources("Task").limit(2).fetch_all()  # follows the Bundle's next links
    assert sorted(int(t.id) for t in paged) == [1, 2, 3]
    for task in paged:
        check_task(task.serialize())
    capacity = client.resources("HealthcareService").fetch()[0]
    assert capacity["extension"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "capacity"
