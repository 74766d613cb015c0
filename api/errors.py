"""Every error becomes `{"error": {"code", "message"}}`, mapped in one place."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from unmask.api.schemas import invalid_input
from unmask.core.exceptions import DatabaseUnavailable, UnmaskError, is_database_outage

log = logging.getLogger(__name__)

# How long a client should wait after a 503 (an outage of the database, broker or store).
RETRY_AFTER_SECONDS = 5


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def validation_error(exc: ValidationError) -> Response:
    """flask-openapi3 calls this when a query or path fails its schema."""
    error = invalid_input(exc)
    return error_response(error.status, error.code, error.message)


def register(app: Flask, max_upload_bytes: int) -> None:
    @app.errorhandler(UnmaskError)
    def _domain(exc: UnmaskError) -> Response:
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        response = error_response(exc.status, exc.code, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="unmask"'
        if exc.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Response:
        return error_response(
            413, "payload_too_large", f"the request is larger than {max_upload_bytes} bytes"
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        if exc.response is not None:  # an answer already made, e.g. by a schema check
            return exc.response  # type: ignore[return-value]
        code = (exc.name or "error").lower().replace(" ", "_")
        response = error_response(exc.code or 500, code, exc.description or exc.name)
        for name, value in exc.get_headers():
            if name != "Content-Type":  # keeps Allow on 405, Retry-After on 429/503
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if is_database_outage(exc):
            log.error("database unavailable: %s", exc)
            outage = DatabaseUnavailable("the database is unavailable; try again shortly")
            return _domain(outage)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
