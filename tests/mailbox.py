"""A real SMTP server on a free loopback port (aiosmtpd) that keeps what arrives, for tests to read."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "mailer", "s3cret pass"


class _LoopbackController(Controller):
    """aiosmtpd checks its server by connecting to `port`; with port 0 that is the port it got."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class Mailbox:
    url: str = ""
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def link(self, address: str, path: str) -> str:
        """The link to `path` in the latest message to `address` (its plain-text part)."""
        body = self.to(address)[-1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
        match = re.search(rf"https?://\S+{re.escape(path)}\S+", body)
        assert match, f"no {path} link in: {body}"
        return match.group(0)


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    if ok:
        session_login = data.login.decode()
        server.event_handler.logins.append(session_login)
    return AuthResult(success=ok)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A loopback SMTP server that asks for credentials (plain connection: tests carry no certificate)."""
    box = Mailbox()
    with warnings.catch_warnings():
        # aiosmtpd warns about AUTH without TLS at every connection (in its own thread): known, test-only.
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        controller = _LoopbackController(box, hostname="127.0.0.1", port=0, authenticator=_authenticate,
                                         auth_require_tls=False, auth_required=True)
        controller.start()
        box.url = f"smtp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{controller.port}"
        yield box
        controller.stop()
