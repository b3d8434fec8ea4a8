"""A real loopback webhook receiver for tests: it verifies every request with two libraries we
did not write (`standardwebhooks` and `svix`), and can be told to misbehave first."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float
    path: str = "/hooks/"

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers the queued behaviours first (500, 410, timeout, drop, redirect), then 204.

    `accepted` holds every request it answered 2xx to, after verifying it with both libraries;
    `requests` every request it read at all."""

    secret: str = ""
    behaviours: deque[str] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    hold_s: float = 3.0
    pause_s: float = 0.0  # every answer takes this long: a batch is still going when a test acts
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def verify(self, item: Received, secret: str | None = None) -> None:
        """Raises unless both libraries accept the signature."""
        for webhook in (StandardWebhook(secret or self.secret), SvixWebhook(secret or self.secret)):
            webhook.verify(item.body, item.headers)

    def unique(self) -> dict[str, Received]:
        """What a receiver that drops repeats by webhook-id keeps: each event once."""
        kept: dict[str, Received] = {}
        for item in self.accepted:
            kept.setdefault(item.webhook_id, item)
        return kept


def serve(receiver: Receiver) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            item = Received(headers, body, time.monotonic(), self.path)
            with receiver.lock:
                receiver.requests.append(item)
                behaviour = receiver.behaviours.popleft() if receiver.behaviours else "ok"
            if behaviour == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            time.sleep(receiver.hold_s if behaviour == "timeout" else receiver.pause_s)
            code = {"ok": 204, "timeout": 204, "500": 500, "410": 410, "redirect": 307}[behaviour]
            if code == 204:
                receiver.verify(item)
                with receiver.lock:
                    receiver.accepted.append(item)
            self.send_response(code)
            if code == 307:
                self.send_header("location", receiver.url + "elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
