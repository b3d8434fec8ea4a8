"""An OSRM-style table service on 127.0.0.1 (the real HTTP protocol): durations and distances
that grow with the distance between the points' positions in the request, and a hook that runs
while a request is being answered (to act while the app waits for its travel matrix)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Osrm:
    url: str = ""
    requests: int = 0
    while_answering: Callable[[], None] | None = None


class _Table(BaseHTTPRequestHandler):
    """Answers /table/v1/driving/... like OSRM: durations (s) and distances (m), row-major."""

    def do_GET(self) -> None:
        osrm: Osrm = self.server.osrm  # type: ignore[attr-defined]
        osrm.requests += 1
        if osrm.while_answering is not None:
            osrm.while_answering()
        coords = self.path.split("/table/v1/driving/")[1].split("?")[0].split(";")
        n = len(coords)
        body = {
            "code": "Ok",
            "durations": [[abs(i - j) * 60.5 for j in range(n)] for i in range(n)],
            "distances": [[abs(i - j) * 500.0 for j in range(n)] for i in range(n)],
            "sources": [{"location": [0, 0]}] * n,
            "destinations": [{"location": [0, 0]}] * n,
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def osrm_server() -> Iterator[Osrm]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Table)
    server.osrm = osrm = Osrm(url=f"http://127.0.0.1:{server.server_address[1]}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield osrm
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
