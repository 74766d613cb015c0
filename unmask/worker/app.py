"""Celery app factory: broker from settings, results in Postgres, never in the broker."""

from __future__ import annotations

from celery import Celery

from unmask.core.settings import Settings

DETECT_TASK = "unmask.detect"


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.resolved_broker_url,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,  # Postgres holds the truth; the broker carries ids only
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "unmask",
        "worker_hijack_root_logger": False,
        "broker_transport_options": transport_options(settings.resolved_broker_url),
    }


def transport_options(url: str) -> dict:
    """Redis redelivers unacknowledged tasks after the visibility timeout; it must outlast the
    longest job. The SQLAlchemy transport hands these options to create_engine, so none there."""
    if url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": 3600}
    return {}


def create_celery(settings: Settings) -> Celery:
    """A Celery app bound to these settings, with Unmask's tasks registered."""
    app = Celery("unmask", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.unmask_settings = settings  # type: ignore[attr-defined]
    from unmask.worker.tasks import register_tasks

    register_tasks(app)
    return app


class CeleryJobQueue:
    """core's JobQueue over Celery: sends the task by name, carrying only the id."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def enqueue_detect(self, job_id: object) -> None:
        self.app.send_task(DETECT_TASK, args=[str(job_id)])
