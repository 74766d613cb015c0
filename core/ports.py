"""The small interfaces the job service reaches the outside through. Adapters live with the
technology they wrap: the Celery queue in `api`/`worker`, the detector in `worker`."""

from __future__ import annotations

import uuid
from typing import Protocol

from unmask.core.results import Analysis


class JobQueue(Protocol):
    def enqueue_detect(self, job_id: uuid.UUID) -> None:
        """Hand the job id to a worker; raise if the broker refuses it."""

    def enqueue_expand(self, batch_id: uuid.UUID) -> None:
        """Have a worker list a batch's items and queue them."""

    def enqueue_export(self, batch_id: uuid.UUID) -> None:
        """Have a worker write a completed batch's results to its output."""

    def enqueue_delivery(self, delivery_id: uuid.UUID, countdown: float = 0) -> None:
        """Have a webhook worker attempt a delivery, after `countdown` seconds."""

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""

    def depth(self) -> int:
        """How many job ids wait in the broker."""


class Detector(Protocol):
    def analyse(self, data: bytes) -> Analysis:
        """Find, score and explain every face of an encoded image.

        Raises `JobFailed` (with the reason's code) for input it cannot analyse."""
