"""SMART Backend Services: a clinic's system gets a five-minute token with a signed assertion (R1.6),
and each FHIR route checks the token's system/ scopes (R3.8)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from delivery.loop.fhir import smart
from delivery.platform.db import Database
from tests.builders import Program, api_token
from tests.fhir_checks import FHIR_JSON, sample_bundle

TOKEN_URL = "https://testserver.local/fhir/auth/token"
CLIENT = "clinic1-ehr"
GRANTED = ("system/Task.rsu system/Patient.c system/ServiceRequest.cr system/Procedure.r "
           "system/HealthcareService.rs system/Observation.rs")
EC_KEY = ECKey.generate_key("P-384", parameters={"kid": "ec-1"})
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
JKU = "https://ehr.example.org/jwks.json"


@pytest.fixture
def system(database: Database, program: Program) -> str:
    """clinic1's EHR registered with its public keys (one EC, one RSA)."""
    with database.writer() as db:
        smart.register_client(db, clinic_id=program.clinic1_id, client_id=CLIENT, scope=GRANTED, jku=JKU,
                              jwks={"keys": [EC_KEY.as_dict(private=False), RSA_KEY.as_dict(private=False)]})
        db.commit()
    return CLIENT


def assertion(key: Any = EC_KEY, alg: str = "ES384", header: dict[str, Any] | None = None,
              **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": now + 240, "jti": uuid.uuid4().hex}
    body |= claims
    return jwt.encode({"alg": alg, "kid": key.kid} | (header or {}), body, key, algorithms=[alg])


def ask(client, signed: str, scope: str = "system/Task.rs") -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    response = client.post("/fhir/auth/token", data={
        "grant_type": "client_credentials", "scope": scope,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": signed})
    return response.status_code, response.json()


def token(client, scope: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    status, body = ask(client, assertion(), scope)
    assert status == 200, body
    return {"Authorization": f"Bearer {body['access_token']}"}


def unsigned(alg: str) -> str:
    part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()  # noqa: E731
    claims = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": int(time.time()) + 60, "jti": "x"}
    return f"{part({'alg': alg, 'kid': 'ec-1'})}.{part(claims)}."


@pytest.mark.req("R1.6")
def test_token_endpoint_refuses_each_bad_assertion_with_invalid_client(client, system) -> None:
    """Wrong aud; exp over 300 s ahead; expired; unknown kid; alg none or HS256; a used jti; iss not
    sub; a jku not registered: each is invalid_client, and none yields a token."""
    now = int(time.time())
    replayed = assertion()
    assert ask(client, replayed)[0] == 200
    hs256 = jwt.encode({"alg": "HS256", "kid": "ec-1"}, {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL,
                                                          "exp": now + 60, "jti": "h"},
                       OctKey.generate_key(256), algorithms=["HS256"])
    bad = {
        "wrong aud": assertion(aud="https://elsewhere.example/token"),
        "exp more than 300 s ahead": assertion(exp=now + 301 + 5),
        "expired": assertion(exp=now - 5),
        "unknown kid": assertion(header={"kid": "not-registered"}),
        "alg none": unsigned("none"),
        "alg HS256": hs256,
        "jti already used": replayed,
        "iss different from sub": assertion(sub="someone-else"),
        "jku not registered": assertion(header={"jku": "https://attacker.example/jwks.json"}),
        "signed by another key": jwt.encode({"alg": "ES384", "kid": "ec-1"}, {
            "iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL, "exp": now + 60, "jti": "o"},
            ECKey.generate_key("P-384"), algorithms=["ES384"]),
    }
    for case, signed in bad.items():
        status, body = ask(client, signed)
        assert (status, body["error"]) == (400, "invalid_client"), case
        assert "access_token" not in body, case


@pytest.mark.req("R1.6")
def test_a_valid_assertion_gets_a_short_token_no_wider_than_granted(client, system) -> None:
    """RS384 or ES384; expires_in ≤ 300, no refresh_token, the scope narrowed to what was granted;
    the registered jku is accepted; a system/Observation.rs token gets 403 on a Patient write."""
    for signed in (assertion(), assertion(RSA_KEY, "RS384"), assertion(header={"jku": JKU})):
        status, body = ask(client, signed, "system/Task.rs system/Task.d system/Observation.cruds")
        assert status == 200, body
        assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 300
        assert "refresh_token" not in body
        assert body["scope"] == "system/Task.rs"
    assert ask(client, assertion(), "system/Practitioner.rs")[1]["error"] == "invalid_scope"
    observation = token(client, "system/Observation.rs")
    write = client.post("/fhir/Bundle", content=json.dumps(sample_bundle()), headers=observation | FHIR_JSON)
    assert write.status_code == 403 and write.json()["issue"][0]["code"] == "forbidden"


def test_a_system_token_is_bound_to_its_clinic(client, system, database: Database, program: Program) -> None:
    """The EHR's token creates and reads its clinic's Tasks, never another clinic's."""
    with database.writer() as db:
        other = api_token(db, program.clinic2)
        db.commit()
    theirs = client.post("/fhir/Bundle", content=json.dumps(sample_bundle()), headers=other | FHIR_JSON)
    their_task = theirs.json()["entry"][-1]["resource"]["id"]
    ehr = token(client, "system/Task.rs system/Patient.c system/ServiceRequest.c")
    ours = client.post("/fhir/Bundle", content=json.dumps(sample_bundle(mrn="E-1", request_id="E-1")),
                       headers=ehr | FHIR_JSON)
    assert ours.status_code == 200, ours.text
    our_task = ours.json()["entry"][-1]["resource"]
    assert our_task["requester"]["reference"] == f"Organization/{program.clinic1_id}"
    assert client.get(f"/fhir/Task/{our_task['id']}", headers=ehr).status_code == 200
    assert client.get(f"/fhir/Task/{their_task}", headers=ehr).status_code == 404
    assert client.get("/fhir/Task", headers=ehr).json()["total"] == 1


ROUTES = [  # method, path, the scope it needs (resource, permission)
    ("GET", "/fhir/Task/{task}", ("Task", "r")),
    ("GET", "/fhir/Task", ("Task", "s")),
    ("PATCH", "/fhir/Task/{task}", ("Task", "u")),
    ("PUT", "/fhir/Task/{task}", ("Task", "u")),
    ("POST", "/fhir/Bundle", ("Patient", "c")),
    ("GET", "/fhir/ServiceRequest/{task}", ("ServiceRequest", "r")),
    ("GET", "/fhir/Procedure/1", ("Procedure", "r")),
    ("GET", "/fhir/HealthcareService", ("HealthcareService", "s")),
    ("GET", "/fhir/HealthcareService/{bank}", ("HealthcareService", "r")),
]
SCOPES = ["system/Task.r", "system/Task.s", "system/Task.u", "system/Patient.c system/ServiceRequest.c",
          "system/Patient.c", "system/ServiceRequest.r", "system/Procedure.r", "system/HealthcareService.rs",
          "system/Observation.rs"]


@pytest.mark.req("R3.8")
@pytest.mark.parametrize("scope", SCOPES)
def test_every_fhir_route_checks_the_token_scope(client, system, clinic_task, program, scope: str) -> None:
    """Each route × scope: 403 without the scope the route needs; with it, never 401 or 403."""
    headers = token(client, scope)
    granted = frozenset(scope.split())
    for method, path, (kind, permission) in ROUTES:
        url = path.format(task=clinic_task, bank=program.food_bank_id)
        body = {"PATCH": json.dumps([{"op": "replace", "path": "/status", "value": "completed"}]),
                "PUT": json.dumps({"resourceType": "Task", "id": clinic_task, "status": "completed"}),
                "POST": json.dumps(sample_bundle(mrn="S-1", request_id="S-1"))}.get(method)
        response = client.request(method, url, content=body, headers=headers | FHIR_JSON)
        allowed = smart.scopes.allows(granted, kind, permission) and (
            method != "POST" or smart.scopes.allows(granted, "ServiceRequest", "c"))
        if allowed:
            assert response.status_code not in (401, 403) and response.status_code < 500, (method, url)
        else:
            assert response.status_code == 403, (method, url, response.status_code)


@pytest.fixture
def clinic_task(client, database: Database, program: Program) -> str:
    with database.writer() as db:
        headers = api_token(db, program.clinic1)
        db.commit()
    answer = client.post("/fhir/Bundle", content=json.dumps(sample_bundle()), headers=headers | FHIR_JSON)
    return answer.json()["entry"][-1]["resource"]["id"]


def test_smart_configuration_names_the_token_endpoint(client) -> None:
    found = client.get("/fhir/.well-known/smart-configuration").json()
    assert found["token_endpoint"] == TOKEN_URL
    assert found["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
