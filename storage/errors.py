"""The object store's own errors; core maps them to domain errors with user-safe messages."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error the object store raises on purpose."""

    code = "storage_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ObjectNotFound(StorageError):
    code = "object_not_found"


class ObjectTooLarge(StorageError):
    code = "payload_too_large"


class AccessDenied(StorageError):
    code = "access_denied"


class InvalidKey(StorageError):
    """A key or bucket this store cannot address (a path escape, or a bucket it does not have)."""

    code = "invalid_source"


class StorageUnavailable(StorageError):
    """The store could not be reached or failed; worth retrying."""

    code = "storage_unavailable"
