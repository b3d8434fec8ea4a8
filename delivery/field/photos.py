"""A photo as proof of delivery (R4.5, R8.6, R11.2): only JPEG or PNG whose first bytes say so, as
declared; decoded and re-encoded here as a plain JPEG (which drops EXIF, GPS included, and anything
hidden in the file), stored under a name the server makes, its SHA-256 kept and checked on every
read. One photo per confirmation, attached with the confirmation's own Idempotency-Key, so a phone
that sends it twice gets the first answer again. HEIC would need a decoder Pillow lacks here: the
phone's page converts to JPEG before upload anyway. Services do not commit.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from delivery.models import Confirmation
from delivery.platform.errors import FieldError

MAX_BYTES = 5 * 1024 * 1024  # R4.4
MAX_SIDE = 1600  # pixels: enough to see a box at a door
MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding
MAGIC = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",)}


class PhotoError(FieldError):
    """A photo that cannot be taken; the message says what to send instead."""


@dataclass(frozen=True)
class StoredPhoto:
    name: str
    sha256: str
    size: int
    replayed: bool


def attach(confirmation: Confirmation, data: bytes, content_type: str, directory: Path) -> StoredPhoto:
    """Check, re-encode and store the photo of a confirmation; a second upload is a replay."""
    if confirmation.photo_name is not None:
        return StoredPhoto(confirmation.photo_name, confirmation.photo_sha256 or "",
                           confirmation.photo_bytes or 0, replayed=True)
    clean = reencode(data, content_type)
    name = f"{uuid.uuid4().hex}.jpg"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(clean)
    confirmation.photo_name = name
    confirmation.photo_sha256 = hashlib.sha256(clean).hexdigest()
    confirmation.photo_bytes = len(clean)
    return StoredPhoto(name, confirmation.photo_sha256, len(clean), replayed=False)


def reencode(data: bytes, content_type: str) -> bytes:
    """The picture alone, as a JPEG at most MAX_SIDE pixels on its longer side, with no metadata."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in MAGIC:
        raise PhotoError("Send the photo as image/jpeg or image/png.")
    if len(data) > MAX_BYTES:
        raise PhotoError("The photo is larger than 5 MB: send a smaller one.")
    if not data.startswith(MAGIC[kind]):
        raise PhotoError(f"The file is not a {kind.split('/')[1].upper()} image, whatever its type says.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise PhotoError("The photo has too many pixels: send a smaller one.")
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PhotoError("The photo could not be read: take it again.") from exc
    upright.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    upright.save(out, format="JPEG", quality=80, optimize=True)  # no exif= : nothing carried over
    return out.getvalue()


def read(confirmation: Confirmation, directory: Path) -> bytes:
    """The stored photo, after checking it is the file that was stored (R11.2)."""
    if confirmation.photo_name is None:
        raise FileNotFoundError("no photo")
    data = (directory / confirmation.photo_name).read_bytes()
    if hashlib.sha256(data).hexdigest() != confirmation.photo_sha256:
        raise ValueError(f"photo of confirmation {confirmation.id} does not match its SHA-256")
    return data
