"""SMART scopes (v2 `system/Task.rs`, and v1 `system/Task.read`): what a system token may do."""

from __future__ import annotations

import re

SCOPE = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perm>[cruds]+|read|write|\*)$")
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


def permissions(scope: str) -> tuple[str, str] | None:
    """("Task", "rs") for system/Task.rs; None for anything that is not a system scope."""
    match = SCOPE.match(scope)
    if match is None:
        return None
    return match["type"], V1.get(match["perm"], match["perm"])


def allows(granted: frozenset[str], resource_type: str, permission: str) -> bool:
    """Whether any granted scope covers this permission (c, r, u, d or s) on this resource type."""
    for scope in granted:
        found = permissions(scope)
        if found and found[0] in ("*", resource_type) and permission in found[1]:
            return True
    return False


def narrow(requested: str, granted: str) -> str:
    """The requested scopes the client was granted (a scope no wider than the pre-authorised one)."""
    allowed = frozenset(granted.split())
    kept = []
    for scope in requested.split():
        found = permissions(scope)
        if found and all(allows(allowed, found[0] if found[0] != "*" else "*", p) for p in found[1]):
            kept.append(scope)
    return " ".join(kept)
