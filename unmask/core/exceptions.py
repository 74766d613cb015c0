"""One hierarchy of domain errors, each with a stable code and a user-safe message."""


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


class WeightsError(ConfigurationError):
    """Classifier weights are missing, unreadable or do not fit the model."""

    code = "weights_error"


class QueueUnavailable(UnmaskError):
    """The broker refused the job id; the job is marked failed, nothing is lost silently."""

    code = "queue_unavailable"
    status = 503
