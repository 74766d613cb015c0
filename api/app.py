"""The app factory: settings in, a WSGI app out; nothing is built at import time."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import Info, OpenAPI

from unmask import __version__
from unmask.api import auth, errors
from unmask.api.batches import bp as batches_bp
from unmask.api.dashboard import bp as dashboard_bp
from unmask.api.health import bp as health_bp
from unmask.api.jobs import bp as jobs_bp
from unmask.api.metrics import install_metrics
from unmask.api.objects import bp as objects_bp
from unmask.api.openapi import openapi_document
from unmask.api.queue import celery_queue
from unmask.api.webhooks import bp as webhooks_bp
from unmask.core.ports import JobQueue
from unmask.core.schemas import ErrorBody
from unmask.core.settings import Settings
from unmask.core.wiring import ObjectStore, build_services

DESCRIPTION = "Find AI-generated and manipulated faces in images, and show why."


def create_app(
    settings: Settings, *, queue: JobQueue | None = None, store: ObjectStore | None = None
) -> OpenAPI:
    """Build the API. Without a queue, jobs go to the configured broker by task name."""
    app = OpenAPI(
        "unmask",
        info=Info(title="Unmask", version=__version__, description=DESCRIPTION),
        doc_ui=False,
        validation_error_status=400,
        validation_error_model=ErrorBody,
        validation_error_callback=errors.validation_error,
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "description": "an Unmask API key"}},
    )
    # A batch upload may carry many files; each file is held to max_upload_bytes on its own.
    app.config["MAX_CONTENT_LENGTH"] = max(
        settings.max_batch_upload_bytes, settings.max_upload_bytes + 64 * 1024
    )
    services = build_services(settings, queue=queue or celery_queue(settings), store=store)
    app.extensions["unmask"] = services
    errors.register(app, app.config["MAX_CONTENT_LENGTH"])
    auth.install(
        app, services.keys, rate_limit=settings.rate_limit, storage_uri=settings.rate_limit_storage_url
    )
    for bp in (jobs_bp, batches_bp, webhooks_bp, objects_bp, health_bp):
        app.register_api(bp)

    @app.get("/openapi.json", summary="This document (OpenAPI 3.1)")
    def openapi() -> Response:
        return jsonify(openapi_document(app))

    install_metrics(app, services)
    app.register_blueprint(dashboard_bp)  # HTML for people: not part of the OpenAPI document

    return app
