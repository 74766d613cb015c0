"""Opaque page cursors: the (created_at, id) of the last row a page showed."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

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


def keyset_page(
    session: Session, query: Select[Any], model: Any, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Newest first by (created_at, id): the page after `cursor`, and the next page's cursor."""
    if cursor:
        stamp, last = decode_cursor(cursor)
        query = query.where(or_(model.created_at < stamp, and_(model.created_at == stamp, model.id < last)))
    found = session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)).all()
    page = list(found[:limit])
    return page, (encode_cursor(page[-1].created_at, page[-1].id) if len(found) > limit else None)
