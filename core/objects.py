"""Signed downloads from the local object store (S3 serves presigned URLs itself)."""

from __future__ import annotations

import mimetypes

from unmask.core.exceptions import NotFound, storage_errors_mapped
from unmask.storage.objects import LocalStore, ObjectStore


def read_signed(store: ObjectStore, *, key: str, expires: str, signature: str) -> tuple[bytes, str]:
    """The object's bytes and media type, if the link is valid and unexpired."""
    if not isinstance(store, LocalStore):
        raise NotFound("objects are served by the S3 store; use the presigned URL")
    try:
        until = int(expires)
    except ValueError:
        until = 0
    if not store.verify(key, until, signature):
        raise NotFound("link expired or invalid")
    with storage_errors_mapped():
        data = store.get(key)
    return data, mimetypes.guess_type(key)[0] or "application/octet-stream"
