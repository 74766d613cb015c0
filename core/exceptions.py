"""One hierarchy of domain errors, each with a stable code and a user-safe message.

The object store and the detector raise their own error types; `from_storage` and
`from_detector` turn them into these, so the API maps one hierarchy in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError

from unmask.storage import errors as storage_errors


class UnmaskError(Exception):
    """Base of every error Unmask raises on purpose."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(UnmaskError):
    """The request or file cannot be processed as given."""

    code = "invalid_input"
    status = 400


class InvalidImage(InvalidInput):
    """The bytes are empty, corrupt or not an image format we read."""

    code = "invalid_image"
    status = 422


class PayloadTooLarge(InvalidInput):
    """The upload or referenced object exceeds the configured limit."""

    code = "payload_too_large"
    status = 413


class NotFound(UnmaskError):
    code = "not_found"
    status = 404


class ObjectNotFound(NotFound):
    """An object referenced in the store does not exist."""

    code = "object_not_found"


class StorageUnavailable(UnmaskError):
    """The object store could not be reached or refused the request."""

    code = "storage_unavailable"
    status = 503


class ConfigurationError(UnmaskError):
    """Settings are missing or contradict each other; the process must not start."""

    code = "configuration_error"


class DatabaseUnavailable(UnmaskError):
    """The database did not answer; nothing was changed."""

    code = "database_unavailable"
    status = 503


class QueueUnavailable(UnmaskError):
    """The broker refused the job id; the job is marked failed, nothing is lost silently."""

    code = "queue_unavailable"
    status = 503


class JobFailed(UnmaskError):
    """The job's input cannot be analysed (not an image, too large, ...); the code says why."""

    code = "job_failed"
    status = 422


_STORAGE = {
    storage_errors.ObjectNotFound: ObjectNotFound,
    storage_errors.ObjectTooLarge: PayloadTooLarge,
    storage_errors.AccessDenied: InvalidInput,
    storage_errors.InvalidKey: InvalidInput,
    storage_errors.StorageUnavailable: StorageUnavailable,
}


def from_storage(exc: storage_errors.StorageError) -> UnmaskError:
    """The domain error for an object store error, keeping its code."""
    for kind, domain in _STORAGE.items():
        if isinstance(exc, kind):
            return domain(exc.message, code=exc.code)
    return StorageUnavailable(exc.message)


@contextmanager
def storage_errors_mapped() -> Iterator[None]:
    """Re-raise object store errors as domain errors."""
    try:
        yield
    except storage_errors.StorageError as exc:
        raise from_storage(exc) from exc


class Unauthorized(UnmaskError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthorized"
    status = 401


class SourceNotAllowed(UnmaskError):
    """The tenant may not read that S3 location; said the same whether or not it exists."""

    code = "source_not_allowed"
    status = 403


class Conflict(UnmaskError):
    code = "conflict"
    status = 409


def is_database_outage(exc: BaseException) -> bool:
    """A lost or refused database connection, as opposed to a bad statement."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
