"""Every error becomes `{"error": {"code", "message"}}`, mapped in one place."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from unmask.core.exceptions import UnmaskError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str):  # noqa: ANN201
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(UnmaskError)
    def _domain(exc: UnmaskError):  # noqa: ANN202
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):  # noqa: ANN202
        limit = app.extensions["unmask"].settings.max_upload_bytes
        return error_response(413, "payload_too_large", f"the request is larger than {limit} bytes")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # noqa: ANN202
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # noqa: ANN202
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
