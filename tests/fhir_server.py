"""A clinic's FHIR server on loopback for the Direct Light tests: `fhirstarter` (someone else's FHIR
server framework, FastAPI + fhir.resources) with in-memory handlers, served by uvicorn in a thread.

It can be taken down and brought back on the same port, answer scripted failures (500, 429 with
Retry-After) before its real answers, and pages Task searches (`next` links). It requires the
bearer token it was given, and records every request it saw.
"""
# No `from __future__ import annotations`: fhirstarter reads the handlers' annotations as classes.

import datetime as dt
import json
import os
import socket
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qsl, urlencode

os.environ.setdefault("FHIR_SEQUENCE", "R4B")  # fhirstarter picks its FHIR models when imported

import uvicorn
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from fhirstarter import FHIRProvider, FHIRStarter, InteractionContext
from fhirstarter.exceptions import FHIRResourceNotFoundError
from joserfc import jws, jwt
from joserfc.jwk import import_key
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MODELS: dict[str, Any] = {"Task": Task, "ServiceRequest": ServiceRequest, "Patient": Patient,
                          "Observation": Observation, "Consent": Consent, "Procedure": Procedure}
START = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)  # their clock: a counter, not the wall clock


class ClinicServer:
    def __init__(self, token: str = "clinic-secret", page_size: int = 2) -> None:
        self.token, self.page_size = token, page_size
        self.store: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in MODELS}
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.seen: list[str] = []  # "METHOD path?query" of every request that reached it
        self.writes = 0
        self.client_keys: dict[str, Any] = {}  # SMART Backend Services: client id → its public JWK
        self.assertions: list[dict[str, Any]] = []  # the verified claims of each token request
        self.lock = threading.Lock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = self._app()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    # --- the data ------------------------------------------------------------------------------

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Store (validated), stamping meta.lastUpdated from its own counter."""
        with self.lock:
            self.writes += 1
            resource = dict(resource)
            resource["meta"] = {**resource.get("meta", {}), "versionId": str(self.writes),
                                "lastUpdated": (START + dt.timedelta(seconds=self.writes)).isoformat()
                                .replace("+00:00", "Z")}
            MODELS[resource["resourceType"]].model_validate(resource)
            self.store[resource["resourceType"]][resource["id"]] = resource
            return resource

    def get(self, kind: str, id_: str) -> dict[str, Any]:
        return self.store[kind][id_]

    # --- up and down ---------------------------------------------------------------------------

    def start(self) -> None:
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the loopback FHIR server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        """Down: nothing listens on its port until `start`."""
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
            self.server = self.thread = None

    # --- the app -------------------------------------------------------------------------------

    def _app(self) -> FHIRStarter:
        provider = FHIRProvider()
        for kind, model in MODELS.items():
            provider.read(model)(self._reader(kind))
        provider.update(Task)(self._task_update)
        provider.create(Procedure)(self._procedure_create)
        provider.search_type(Task)(self._task_search)
        app = FHIRStarter()
        app.add_providers(provider)

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            self.seen.append(f"{request.method} {request.url.path}?{request.url.query}")
            if self.failures:
                status, headers = self.failures.popleft()
                return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "transient", "diagnostics": "scripted"}]},
                    status_code=status, headers=headers)
            if request.url.path == "/auth/token":
                return await self._issue_token(request)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "login"}]}, status_code=401)
            return await call_next(request)

        return app

    async def _issue_token(self, request: Request) -> Response:
        """SMART Backend Services, checked with joserfc: the assertion must verify with the client's
        registered key and name this endpoint as its audience."""
        form = dict(parse_qsl((await request.body()).decode()))
        assertion = form.get("client_assertion", "")
        try:
            issuer = json.loads(jws.extract_compact(assertion.encode()).payload)["iss"]
            claims = jwt.decode(assertion, import_key(self.client_keys[issuer]),
                                algorithms=["ES384", "RS384"]).claims
        except Exception:  # a bad or unknown assertion, whatever joserfc says about it
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        if (claims.get("aud") != f"{self.base_url}/auth/token"
                or form.get("grant_type") != "client_credentials"):
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        self.assertions.append(claims)
        return JSONResponse({"access_token": self.token, "token_type": "bearer", "expires_in": 300,
                             "scope": form.get("scope", "")})

    def _reader(self, kind: str) -> Any:
        model = MODELS[kind]

        def read(context: InteractionContext, id_: str) -> Any:
            found = self.store[kind].get(id_)
            if found is None:
                raise FHIRResourceNotFoundError
            return model.model_validate(found)

        return read

    def _task_update(self, context: InteractionContext, id_: str, resource: Task) -> Task:
        if id_ not in self.store["Task"]:
            raise FHIRResourceNotFoundError
        return Task.model_validate(self.put(resource.model_dump(mode="json", exclude_none=True)))

    def _procedure_create(self, context: InteractionContext, resource: Procedure) -> str:
        id_ = f"proc-{len(self.store['Procedure']) + 1}"
        self.put(resource.model_dump(mode="json", exclude_none=True) | {"id": id_})
        return id_

    def _task_search(self, context: InteractionContext, owner: str | None = None,
                     _last_updated: str | None = None, _include: list[str] | None = None) -> Bundle:
        tasks = sorted(self.store["Task"].values(), key=lambda t: t["meta"]["lastUpdated"])
        if owner:
            tasks = [t for t in tasks if t.get("owner", {}).get("reference") == owner]
        if _last_updated:
            assert _last_updated.startswith("gt"), "this server takes _lastUpdated=gt… only"
            after = dt.datetime.fromisoformat(_last_updated[2:])
            tasks = [t for t in tasks if dt.datetime.fromisoformat(t["meta"]["lastUpdated"]) > after]
        page = int(context.request.query_params.get("_page", "1"))
        shown = tasks[(page - 1) * self.page_size: page * self.page_size]
        entries = [{"fullUrl": f"{self.base_url}/Task/{t['id']}", "resource": t, "search": {"mode": "match"}}
                   for t in shown]
        if "Task:focus" in (_include or []):
            for t in shown:
                ref = t.get("focus", {}).get("reference", "")
                kind, _, id_ = ref.partition("/")
                if kind == "ServiceRequest" and id_ in self.store[kind]:
                    entries.append({"fullUrl": f"{self.base_url}/{ref}", "resource": self.store[kind][id_],
                                    "search": {"mode": "include"}})
        links = [{"relation": "self", "url": str(context.request.url)}]
        if page * self.page_size < len(tasks):
            query = [(k, v) for k, v in context.request.query_params.multi_items() if k != "_page"]
            links.append({"relation": "next",
                          "url": f"{self.base_url}/Task?{urlencode([*query, ('_page', page + 1)])}"})
        return Bundle.model_validate({"resourceType": "Bundle", "type": "searchset", "total": len(tasks),
                                      "link": links, "entry": entries})
