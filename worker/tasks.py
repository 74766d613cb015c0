"""Thin, named, idempotent tasks that take ids; the work is the job service's."""

from __future__ import annotations

import logging
import uuid

from celery import Celery, Task
from sqlalchemy.exc import OperationalError

from unmask.core.exceptions import StorageUnavailable
from unmask.core.reconcile import reconcile
from unmask.core.settings import Settings
from unmask.core.tasks import DELIVER_TASK, DETECT_TASK, EXPAND_TASK, EXPORT_TASK, RECONCILE_TASK

log = logging.getLogger(__name__)

# Outages worth waiting out; every other failure is recorded on the job at once.
TRANSIENT = (StorageUnavailable, OperationalError)


def retry_delay(retries: int) -> int:
    """Seconds before the next attempt: 1, 2, 4 ... capped at a minute."""
    return min(60, 2**retries)


def register_tasks(app: Celery, settings: Settings) -> None:
    @app.task(
        name=DETECT_TASK,
        bind=True,
        acks_late=True,
        max_retries=settings.task_max_retries,
        soft_time_limit=settings.task_soft_time_limit,
        time_limit=settings.task_time_limit,
    )
    def detect(self: Task, job_id: str) -> str:
        """Detect, score and explain every face of one job's image."""
        from unmask.worker.runtime import get_runtime

        runtime = get_runtime(settings, app)
        job = uuid.UUID(job_id)
        try:
            return runtime.jobs.detect(job_id=job, detector=runtime.detector)
        except TRANSIENT as exc:
            if self.request.retries >= self.max_retries:
                message = f"gave up after {self.request.retries + 1} attempts: {exc}"
                runtime.jobs.fail(job_id=job, code="transient_error_exhausted", message=message)
                return "failed"
            log.warning("job %s: transient error, retrying: %s", job_id, exc)
            runtime.jobs.release(job_id=job)  # queued again, so the retry may start it
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc

    @app.task(name=RECONCILE_TASK)
    def reconcile_jobs() -> dict[str, int]:
        """Re-send lost jobs, give up on jobs whose worker keeps dying (also run on a timer)."""
        from unmask.worker.runtime import get_services

        return reconcile(get_services(settings, app).jobs)

    @app.task(name=EXPAND_TASK, bind=True, acks_late=True, max_retries=settings.task_max_retries)
    def expand_batch(self: Task, batch_id: str) -> int:
        """List a batch's S3 items page by page and queue a job for each."""
        from unmask.worker.runtime import get_services

        try:
            return get_services(settings, app).batches.expand(batch_id=uuid.UUID(batch_id))
        except TRANSIENT as exc:
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc

    @app.task(name=EXPORT_TASK, bind=True, acks_late=True, max_retries=settings.task_max_retries)
    def export_batch(self: Task, batch_id: str) -> None:
        """Write a completed batch's results to its output location."""
        from unmask.worker.runtime import get_services

        try:
            get_services(settings, app).batches.write_output(batch_id=uuid.UUID(batch_id))
        except TRANSIENT as exc:
            raise self.retry(exc=exc, countdown=retry_delay(self.request.retries)) from exc

    @app.task(name=DELIVER_TASK, acks_late=True)
    def deliver_webhook(delivery_id: str) -> str:
        """One signed delivery attempt; the service schedules the next one if it must."""
        from unmask.worker.runtime import get_services

        return get_services(settings, app).jobs.webhooks.deliver(delivery_id=uuid.UUID(delivery_id))
