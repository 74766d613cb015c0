"""The app factory: settings in, a WSGI app out; nothing is built at import time."""

from __future__ import annotations

from flask import Flask

from unmask.api import errors
from unmask.api.health import bp as health_bp
from unmask.api.jobs import bp as jobs_bp
from unmask.api.objects import bp as objects_bp
from unmask.api.openapi import bp as openapi_bp
from unmask.core.intake import JobQueue
from unmask.core.settings import Settings
from unmask.storage.db import make_engine, make_session_factory
from unmask.storage.factory import make_store
from unmask.storage.objects import ObjectStore


class Services:
    """What the views need, built once per app."""

    def __init__(self, settings: Settings, store: ObjectStore, queue: JobQueue, celery=None) -> None:  # noqa: ANN001
        self.settings = settings
        self.engine = make_engine(settings.resolved_database_url)
        self.sessions = make_session_factory(self.engine)
        self.store = store
        self.queue = queue
        self.celery = celery


def create_app(
    settings: Settings, *, queue: JobQueue | None = None, store: ObjectStore | None = None
) -> Flask:
    """Build the API. Without a queue, jobs go to Celery on the configured broker."""
    celery = None
    if queue is None:
        from unmask.worker.app import CeleryJobQueue, create_celery

        celery = create_celery(settings)
        queue = CeleryJobQueue(celery)
    app = Flask("unmask")
    # Room for the multipart envelope around the largest accepted file.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 64 * 1024
    app.extensions["unmask"] = Services(settings, store or make_store(settings), queue, celery)
    errors.register(app)
    for bp in (jobs_bp, objects_bp, health_bp, openapi_bp):
        app.register_blueprint(bp)
    return app
