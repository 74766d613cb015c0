"""The detector's own errors. Each carries a stable code that callers (the worker, the CLI) turn
into a job error code or an exit message; the detector knows nothing of jobs or HTTP."""

from __future__ import annotations


class DetectorError(Exception):
    """Base of every error the detector raises on purpose."""

    code = "detector_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidImage(DetectorError):
    """The bytes are empty, corrupt, too large or not an image format we read."""

    code = "not_an_image"


class WeightsError(DetectorError):
    """Classifier weights are missing, unreadable or do not fit the model."""

    code = "weights_error"


class InvalidData(DetectorError):
    """A training or evaluation folder, option or run does not hold what the command needs."""

    code = "invalid_data"
