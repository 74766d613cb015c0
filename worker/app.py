"""Celery app factory: broker from settings, results in Postgres, never in the broker."""

from __future__ import annotations

from celery import Celery

from unmask.core.settings import Settings
from unmask.core.tasks import broker_options
from unmask.worker.tasks import register_tasks


def create_celery(settings: Settings) -> Celery:
    """A Celery app bound to these settings, with Unmask's tasks registered."""
    app = Celery("unmask", set_as_current=False)
    app.conf.update(
        broker_options(settings),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )
    register_tasks(app, settings)
    return app
