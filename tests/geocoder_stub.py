"""A loopback geocoder for tests: answers `/search` like Nominatim and `/api` like Photon.

Answers are scripted per query (`q`): `stub.script(q, "house")`, or several in turn
(`stub.script(q, "429", "500", "house")`: one per request, the last one repeats). Unscripted
queries get `[]`. Every request is recorded with its parameters, User-Agent and arrival time.

The bodies follow the real formats: Nominatim's `format=json` list of places (lat/lon as strings,
class/type/addresstype, place_rank, importance, boundingbox as four strings) and Photon's GeoJSON
FeatureCollection.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"


def nominatim_house(lat: float, lon: float, display_name: str, osm_id: int = 1) -> dict[str, Any]:
    """A house-number hit (the shape of a US TIGER / OSM address node)."""
    return {"place_id": 100000 + osm_id, "licence": LICENCE, "osm_type": "node", "osm_id": osm_id,
            "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "class": "place", "type": "house",
            "place_rank": 30, "importance": 0.00001, "addresstype": "place", "name": "",
            "display_name": display_name,
            "boundingbox": [f"{lat - 0.00005:.7f}", f"{lat + 0.00005:.7f}",
                            f"{lon - 0.00005:.7f}", f"{lon + 0.00005:.7f}"]}


def nominatim_city(lat: float, lon: float, display_name: str) -> dict[str, Any]:
    """A city-level match: what Nominatim falls back to when it does not know the street."""
    return {"place_id": 200000, "licence": LICENCE, "osm_type": "relation", "osm_id": 2833530,
            "lat": f"{lat:.7f}", "lon": f"{lon:.7f}", "class": "boundary", "type": "administrative",
            "place_rank": 16, "importance": 0.72, "addresstype": "city", "name": "Oakland",
            "display_name": display_name,
            "boundingbox": [f"{lat - 0.1:.7f}", f"{lat + 0.1:.7f}", f"{lon - 0.1:.7f}", f"{lon + 0.1:.7f}"]}


def photon_house(lat: float, lon: float, number: str, street: str) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"osm_type": "N", "osm_id": 1, "osm_key": "place", "osm_value": "house",
                           "type": "house", "housenumber": number, "street": street, "city": "Oakland",
                           "state": "California", "postcode": "94603", "country": "United States",
                           "countrycode": "US"}}


HOUSE = nominatim_house(37.7491, -122.1690, "1234, 98th Avenue, Elmhurst, Oakland, Alameda County, "
                                            "California, 94603, United States")
FAR_APART = [
    nominatim_house(37.7491, -122.1690, "1234, 98th Avenue, Oakland, California, 94603, United States", 1),
    nominatim_house(37.7800, -122.2200, "1234, 98th Street, Oakland, California, 94603, United States", 2),
]
SAME_PLACE = [  # an address node and its building 20 m apart: one place, not ambiguous
    HOUSE,
    {**nominatim_house(37.7492, -122.1691, "Building, 98th Avenue, Oakland, California", 3),
     "class": "building", "type": "yes", "addresstype": "building"},
]
CITY = nominatim_city(37.8044, -122.2712, "Oakland, Alameda County, California, United States")


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    user_agent: str
    at: float  # time.monotonic()


class StubGeocoder:
    """Start with `start()`; `domain` is "127.0.0.1:PORT"; `url` is what DELIVERY_GEOCODER_URL takes."""

    def __init__(self, slow_seconds: float = 1.5) -> None:
        self.slow_seconds = slow_seconds
        self.requests: list[Seen] = []
        self._scripts: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    # -- scripting ------------------------------------------------------------------------------
    def script(self, query: str, *answers: str) -> None:
        """Answers: house, same_place, far_apart, city, none, 429, 500, slow, photon_house."""
        with self._lock:
            self._scripts[query] = list(answers)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()

    def count(self, query: str | None = None) -> int:
        return sum(1 for r in self.requests if query is None or r.params.get("q") == query)

    def _next(self, query: str) -> str:
        with self._lock:
            answers = self._scripts.get(query)
            if not answers:
                return "none"
            return answers.pop(0) if len(answers) > 1 else answers[0]

    # -- serving --------------------------------------------------------------------------------
    def start(self) -> StubGeocoder:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with stub._lock:
                    stub.requests.append(Seen(url.path, params, self.headers.get("User-Agent", ""),
                                              time.monotonic()))
                if url.path not in ("/search", "/api"):
                    self._send(404, {"error": "not found"})
                    return
                answer = stub._next(params.get("q", ""))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # client gave up
                    self._answer(url.path, answer)

            def _answer(self, path: str, answer: str) -> None:
                if answer == "429":
                    self._send(429, {"error": "Too Many Requests"}, {"Retry-After": "1"})
                elif answer == "500":
                    self._send(500, {"error": "Internal Server Error"})
                elif answer == "slow":
                    stub._closing.wait(stub.slow_seconds)
                    self._send(200, [HOUSE])
                elif path == "/api":
                    features = [photon_house(37.7491, -122.1690, "1234", "98th Avenue")] \
                        if answer == "photon_house" else []
                    self._send(200, {"type": "FeatureCollection", "features": features})
                else:
                    body = {"house": [HOUSE], "same_place": SAME_PLACE, "far_apart": FAR_APART,
                            "city": [CITY]}.get(answer, [])
                    self._send(200, body)

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), name="geocoder-stub",
                         daemon=True).start()
        return self

    @property
    def domain(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.domain}"

    def stop(self) -> None:
        self._closing.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
