"""Opaque page cursors: the (created_at, id) of the last row a page showed."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from unmask.core.exceptions import InvalidInput
from unmask.core.rows import utc


def encode_cursor(stamp: datetime, key: uuid.UUID) -> str:
    """An opaque page cursor: the (created_at, id) of the last row shown."""
    raw = f"{utc(stamp).isoformat()}|{key}"  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, key = raw.split("|")
        return datetime.fromisoformat(stamp), uuid.UUID(key)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor", code="invalid_cursor") from exc
