"""The API's side of the broker: it sends tasks by name and loads none of the worker's code."""

from __future__ import annotations

from celery import Celery

from unmask.core.settings import Settings
from unmask.core.tasks import TaskQueue, broker_options


def celery_queue(settings: Settings) -> TaskQueue:
    app = Celery("unmask-api", set_as_current=False)
    app.conf.update(broker_options(settings))
    return TaskQueue(app)
