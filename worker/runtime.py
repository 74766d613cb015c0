"""Per-process worker state: the services and the Predictor, built after any fork, and the
timer that runs the reconciler."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from unmask.core.jobs import JobService
from unmask.core.reconcile import reconcile
from unmask.core.reviews import report_worker
from unmask.core.settings import Settings
from unmask.core.tasks import TaskQueue
from unmask.core.wiring import Services, build_services
from unmask.detector.predictor import Predictor
from unmask.worker.batching import Batcher
from unmask.worker.detection import PredictorDetector

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    jobs: JobService
    detector: PredictorDetector


_services: dict[tuple[int, int], Services] = {}
_runtimes: dict[tuple[int, int], WorkerRuntime] = {}


def load_predictor(settings: Settings) -> Predictor:
    return Predictor.from_settings(
        weights=settings.weights,
        model_name=settings.model,
        device=settings.device,
        min_face_size=settings.min_face_size,
        min_face_probability=settings.min_face_probability,
        detect_max_side=settings.detect_max_side,
        stability_check=settings.stability_check,
        precision=settings.precision,
    )


def get_services(settings: Settings, app: Any) -> Services:
    key = (os.getpid(), id(app))  # after a fork the pid differs: build anew
    if key not in _services:
        _services[key] = build_services(settings, queue=TaskQueue(app))
    return _services[key]


def get_runtime(settings: Settings, app: Any) -> WorkerRuntime:
    """The runtime of this process; built on first use, so always after any fork."""
    key = (os.getpid(), id(app))
    if key not in _runtimes:
        detector = PredictorDetector(
            load_predictor(settings),
            max_pixels=settings.max_pixels,
            batch_size=settings.worker_batch_size,
            batch_wait_seconds=settings.batch_wait_ms / 1000,
            decode=settings.decode,
        )
        jobs = get_services(settings, app).jobs
        if settings.worker_batch_size > 1:
            # The jobs of one model batch finish within moments of each other: their results,
            # faces and events go to the database in one transaction.
            jobs.recorder = Batcher(
                jobs.record_results,
                max_size=settings.worker_batch_size,
                max_wait=settings.batch_wait_ms / 1000,
                name="result-recorder",
            ).submit
        _runtimes[key] = WorkerRuntime(jobs, detector)
    return _runtimes[key]


class ReconcileTimer:
    """Runs the reconciler every `reconcile_every_seconds` in a thread of the worker process.
    Several workers may run it at once: rows are claimed with SKIP LOCKED."""

    def __init__(self, settings: Settings, app: Any, *, queue: str = "detect", device: str = "none") -> None:
        self.settings, self.app = settings, app
        self.queue, self.device = queue, device
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _loop(self) -> None:
        while True:  # a first pass at start-up, then one a tick
            try:
                jobs = get_services(self.settings, self.app).jobs
                report_worker(jobs, queue=self.queue, device=self.device)
                reconcile(jobs)
            except Exception:  # the database may be down; the next tick tries again
                log.warning("reconciler pass failed", exc_info=True)
            if self.stopped.wait(self.settings.reconcile_every_seconds):
                return
