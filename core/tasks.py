"""Names shared by whoever sends tasks and the worker that runs them, and the broker options
both need. Plain values: no Celery import, so the API enqueues by name without the worker."""

from __future__ import annotations

from typing import Any

from unmask.core.settings import Settings

DETECT_TASK = "unmask.detect"
RECONCILE_TASK = "unmask.reconcile"
EXPAND_TASK = "unmask.expand_batch"
EXPORT_TASK = "unmask.export_batch"
DELIVER_TASK = "unmask.deliver_webhook"
QUEUE = "unmask"
# Deliveries have their own queue and workers, so a slow receiver never delays detection.
WEBHOOK_QUEUE = "unmask-webhooks"


def broker_options(settings: Settings) -> dict[str, Any]:
    """Celery settings for producers and consumers alike."""
    url = settings.resolved_broker_url
    return {
        "broker_url": url,
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,  # Postgres holds the truth; the broker carries ids only
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        "broker_transport_options": transport_options(url),
    }


def transport_options(url: str) -> dict[str, Any]:
    """Redis redelivers unacknowledged tasks after the visibility timeout; it must outlast the
    longest job. The SQLAlchemy transport hands these options to create_engine, so none there."""
    if url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": 3600}
    return {}


class TaskQueue:
    """core's JobQueue over a Celery app, used by name only: this module imports no Celery, and
    the sender needs none of the worker's code."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def enqueue_detect(self, job_id: object) -> None:
        self.app.send_task(DETECT_TASK, args=[str(job_id)], queue=QUEUE)

    def enqueue_expand(self, batch_id: object) -> None:
        self.app.send_task(EXPAND_TASK, args=[str(batch_id)], queue=QUEUE)

    def enqueue_export(self, batch_id: object) -> None:
        self.app.send_task(EXPORT_TASK, args=[str(batch_id)], queue=QUEUE)

    def enqueue_delivery(self, delivery_id: object, countdown: float = 0) -> None:
        self.app.send_task(DELIVER_TASK, args=[str(delivery_id)], queue=WEBHOOK_QUEUE, countdown=countdown)

    def ping(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)

    def depth(self) -> int:
        """Messages waiting in the detect queue."""
        with self.app.connection_for_write() as conn:
            # Not passive: a broker that restarted empty has no queue yet, which means depth 0.
            return int(conn.default_channel.queue_declare(queue=QUEUE, durable=True).message_count)
