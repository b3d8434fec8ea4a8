"""A loopback server that speaks Twilio's REST shape for sending a message, for tests.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic auth (the account SID and
auth token) and a form body (To, From or MessagingServiceSid, Body, StatusCallback) answers 201 with
Twilio's Message JSON, or Twilio's error JSON (`{"code", "message", "more_info", "status"}`): 401
code 20003 on bad credentials, 400 code 21211 for a number it calls invalid, and whatever failures a
test queues first (429 code 20429, 500). Also signs webhooks as Twilio does (`sign`), written from
Twilio's documented algorithm rather than with the twilio package the app validates with.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM = "+15105550000"
PATH = re.compile(r"^/2010-04-01/Accounts/(AC\w{32})/Messages\.json$")
ERRORS = {
    "429": (429, 20429, "Too Many Requests"),
    "500": (500, 20500, "Internal Server Error"),
}


@dataclass
class Sent:
    form: dict[str, str]
    sid: str


@dataclass
class FakeTwilio:
    """What it was asked to send (`sent`), every request (`requests`), queued failures (`behaviours`)."""

    invalid_numbers: set[str] = field(default_factory=set)
    behaviours: deque[str] = field(default_factory=deque)
    requests: list[dict[str, str]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, path: str, auth: str | None, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        match = PATH.match(path)
        if match is None:
            return 404, _error(404, 20404, "The requested resource was not found")
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if match.group(1) != ACCOUNT_SID or auth != expected:
            return 401, _error(401, 20003, "Authenticate")
        with self.lock:
            self.requests.append(form)
            behaviour = self.behaviours.popleft() if self.behaviours else "ok"
        if behaviour in ERRORS:
            status, code, message = ERRORS[behaviour]
            return status, _error(status, code, message)
        to = form.get("To", "")
        if not re.fullmatch(r"\+[1-9]\d{6,14}", to) or to in self.invalid_numbers:
            return 400, _error(400, 21211, f"Invalid 'To' Phone Number: {to[:4]}XXXX")
        if not (form.get("From") or form.get("MessagingServiceSid")) or not form.get("Body"):
            return 400, _error(400, 21602, "Message body is required.")
        sid = "SM" + uuid.uuid4().hex
        now = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        with self.lock:
            self.sent.append(Sent(form=form, sid=sid))
        return 201, {
            "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": form["Body"],
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "num_media": "0",
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid, "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
            "to": to, "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"}


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


@contextmanager
def serving(fake: FakeTwilio) -> Iterator[FakeTwilio]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw_form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
            form = {k: v[0] for k, v in raw_form.items()}
            status, body = fake.answer(self.path, self.headers.get("authorization"), form)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1, keyed by the auth token, of the full URL followed by
    each form parameter's name and value, sorted by name (Twilio's "Webhooks security")."""
    payload = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
