"""Registering a clinic's system for SMART Backend Services without code: `delivery fhir-client
add|list|revoke` and the admins' FHIR page; each change audited, and the registered keys really get
(and, once revoked, no longer get) a token."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from delivery.cli import main
from delivery.models import AuditEvent, FhirClient
from delivery.platform.db import Database
from tests.builders import Program, sign_in
from tests.test_fhir_smart import CLIENT, EC_KEY, RSA_KEY, ask, assertion

JWKS = {"keys": [EC_KEY.as_dict(private=False), RSA_KEY.as_dict(private=False)]}


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("DELIVERY_DATABASE_URL", database_url)
    monkeypatch.setenv("DELIVERY_SECRET_KEY", "test-secret")
    monkeypatch.setenv("DELIVERY_WEBHOOK_ALLOW_LOOPBACK", "true")


@pytest.fixture
def jwks_url() -> Iterator[str]:
    """The clinic's key set published on a loopback HTTP server."""
    body = json.dumps(JWKS).encode()

    class Keys(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


def test_the_command_registers_lists_and_revokes_a_system(
        cli_env: None, client, program: Program, database: Database, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps(JWKS))
    assert main(["fhir-client", "add", "--clinic", "Fruitvale Clinic", "--jwks-file", str(keys),
                 "--client-id", CLIENT]) == 0
    assert capsys.readouterr().out.startswith(f"client {CLIENT} for Fruitvale Clinic: token URL ")
    status, body = ask(client, assertion(), "system/Task.rs")
    assert status == 200 and body["scope"] == "system/Task.rs"

    assert main(["fhir-client", "list"]) == 0
    assert capsys.readouterr().out.split("\t")[:3] == [CLIENT, "Fruitvale Clinic", "live"]
    assert main(["fhir-client", "revoke", CLIENT]) == 0
    assert client.get("/fhir/Task", headers={"Authorization": f"Bearer {body['access_token']}"}
                      ).status_code == 401, "its live token stops at once"
    assert ask(client, assertion())[1]["error"] == "invalid_client"
    assert main(["fhir-client", "revoke", CLIENT]) == 2
    assert "revoked already" in capsys.readouterr().err
    with database.reader() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.resource == "fhir_client")).all()
    assert [(r.action, r.resource_id, r.client_id) for r in rows] == [
        ("C", CLIENT, "cli:fhir-client add"), ("U", CLIENT, "cli:fhir-client revoke")]


def test_the_command_reads_a_jwks_url_and_refuses_bad_keys_clearly(
        cli_env: None, client, program: Program, database: Database, jwks_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fhir-client", "add", "--clinic", "Fruitvale Clinic", "--jwks-url", jwks_url,
                 "--client-id", CLIENT]) == 0
    with database.reader() as db:
        assert db.scalars(select(FhirClient)).one().jku == jwks_url
    assert ask(client, assertion(header={"jku": jwks_url}))[0] == 200
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [EC_KEY.as_dict(private=True)]}))
    for args, says in ((["--jwks-file", str(private)], "public keys only"),
                       (["--jwks-url", jwks_url.replace("jwks.json", "gone")], "HTTP 404"),
                       (["--jwks-url", "http://ehr.example.org/jwks.json"], "https://"),
                       (["--jwks-file", str(private), "--scope", "patient/Task.rs"], "not a system scope")):
        assert main(["fhir-client", "add", "--clinic", "Fruitvale Clinic", *args]) == 2, args
        assert says in capsys.readouterr().err, args


def test_an_admin_registers_and_revokes_a_system_on_the_page(client, program: Program,
                                                            database: Database) -> None:
    token = sign_in(client, program.admin)
    assert "No clinic system is registered yet." in client.get("/fhir-admin/").text
    with database.reader() as db:
        clinic_id = program.clinic1_id
    bad = client.post("/fhir-admin/clients", data={"clinic_id": clinic_id, "jwks": "{not json",
                                                   "csrf_token": token})
    assert bad.status_code == 422 and "The key set is not JSON" in bad.text
    made = client.post("/fhir-admin/clients", data={"clinic_id": clinic_id, "jwks": json.dumps(JWKS),
                                                    "client_id": CLIENT, "csrf_token": token})
    assert made.status_code == 200 and f"Registered {CLIENT} for Fruitvale Clinic" in made.text
    gone = client.post(f"/fhir-admin/clients/{CLIENT}/revoke", data={"csrf_token": token},
                       follow_redirects=False)
    assert gone.status_code == 303
    assert "revoked" in client.get("/fhir-admin/").text
    with database.reader() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.resource == "fhir_client")).all()
        assert [(r.action, r.user_id is not None) for r in rows] == [("C", True), ("U", True)]
        assert db.scalars(select(FhirClient)).one().revoked_at is not None


def test_coordinators_and_clinic_staff_do_not_register_systems(client, program: Program) -> None:
    token = sign_in(client, program.coordinator)
    assert client.get("/fhir-admin/").status_code == 403
    assert client.post("/fhir-admin/clients", data={"jwks": json.dumps(JWKS), "csrf_token": token}
                       ).status_code == 403
