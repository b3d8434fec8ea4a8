"""R10.4: no PHI and no secret in any log line. A handler on every logger collects the records that
carry one of the watched strings; the autouse fixture in conftest fails the test that wrote them.

Watched: the PHI canaries (tests/plan_builders.py), the test password, the settings' secret key,
and every token a test was given (builders.api_token, builders.sign_in and the helpers that issue
route links and delivery tokens call `watch`)."""

from __future__ import annotations

import logging
import re

# Shapes a secret takes in a header or cookie, whatever its value.
SECRET_SHAPES = re.compile(r"(?i)(authorization:\s*bearer\s+\S|bearer\s+[A-Za-z0-9_\-.]{16,}"
                           r"|__host-session=[A-Za-z0-9_\-]{8,}|\bdrt_[A-Za-z0-9_\-]{8,}|/(?:r|invite|reset)/[A-Za-z0-9_\-]{20,})")
_always: set[str] = set()  # conftest's: the canaries, the test password, the settings' secret key
_watched: set[str] = set()  # this test's tokens
# The test client's own request lines (httpx, httpcore) are not the app's log: they name the
# URL the test asked for, a route link included, exactly as a browser's history would.
CLIENT_LOGGERS = ("httpx", "httpcore")


def watch(secret: str) -> str:
    """Fail the current test if `secret` reaches a log line; returns it for chaining."""
    if len(secret) >= 8:
        _watched.add(secret)
    return secret


def always(*secrets: str) -> None:
    _always.update(secrets)


def leaks(text: str) -> list[str]:
    found = [s for s in (*_always, *_watched) if s in text]
    match = SECRET_SHAPES.search(text)
    return found + ([match.group(0)[:20] + "…"] if match else [])


class LeakCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.caught: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            return
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is its own bug; still check the raw parts
            text = f"{record.msg} {record.args}"
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        found = leaks(text)
        if found:
            self.caught.append(f"{record.name} {record.levelname}: {found} in {text[:300]!r}")


def loggers() -> list[logging.Logger]:
    """The root and every logger that does not pass records up to it (litestar's own)."""
    named = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]
    return [logging.getLogger(), logging.getLogger("litestar"),
            *(lg for lg in named if isinstance(lg, logging.Logger) and not lg.propagate)]


def reset() -> None:
    _watched.clear()
