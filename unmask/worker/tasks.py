"""Thin, named, idempotent tasks that take ids."""

from __future__ import annotations

import logging
import uuid

from celery import Celery, Task
from sqlalchemy.exc import OperationalError

from unmask.core.exceptions import StorageUnavailable
from unmask.worker.app import DETECT_TASK

log = logging.getLogger(__name__)

TRANSIENT = (StorageUnavailable, OperationalError)


def register_tasks(app: Celery) -> None:
    settings = app.unmask_settings  # type: ignore[attr-defined]

    @app.task(name=DETECT_TASK, bind=True, acks_late=True, max_retries=settings.task_max_retries)
    def detect(self: Task, job_id: str) -> None:
        """Detect, score and explain every face of one job's image."""
        from unmask.worker.runtime import get_runtime

        runtime = get_runtime(settings)
        try:
            runtime.detect_job(uuid.UUID(job_id))
        except TRANSIENT as exc:
            if self.request.retries >= self.max_retries:
                runtime.fail(
                    uuid.UUID(job_id),
                    "transient_error_exhausted",
                    f"gave up after {self.request.retries + 1} attempts: {exc}",
                )
                return
            log.warning("job %s: transient error, retrying: %s", job_id, exc)
            raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc
