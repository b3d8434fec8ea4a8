"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.

Written out (a dozen lines) rather than taken from the `standardwebhooks` package, whose signer
needs the whole `Webhook` object and one secret at a time; the tests check every delivery with
that package and with `svix`, and this function against the specification's test vector.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

PREFIX = "whsec_"
SECRET_BYTES = 32  # R9.2: at least 24 random bytes


def new_secret() -> str:
    """A fresh endpoint secret, `whsec_` and base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,…` signature of a message with one secret."""
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret, space-separated (rotation)."""
    signature = " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature,
            "content-type": "application/json"}
