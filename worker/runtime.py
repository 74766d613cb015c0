"""Per-process worker state: the services and the Predictor, built after any fork."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from unmask.core.jobs import JobService
from unmask.core.settings import Settings
from unmask.core.tasks import TaskQueue
from unmask.core.wiring import build_services
from unmask.detector.predictor import Predictor
from unmask.worker.detection import PredictorDetector


@dataclass
class WorkerRuntime:
    jobs: JobService
    detector: PredictorDetector


_runtimes: dict[tuple[int, int], WorkerRuntime] = {}


def load_predictor(settings: Settings) -> Predictor:
    return Predictor.from_settings(
        weights=settings.weights,
        model_name=settings.model,
        device=settings.device,
        min_face_size=settings.min_face_size,
        min_face_probability=settings.min_face_probability,
    )


def get_runtime(settings: Settings, app: Any) -> WorkerRuntime:
    """The runtime of this process; built on first use, so always after any fork."""
    key = (os.getpid(), id(app))  # after a fork the pid differs: build anew
    if key not in _runtimes:
        services = build_services(settings, queue=TaskQueue(app))
        detector = PredictorDetector(load_predictor(settings), max_pixels=settings.max_pixels)
        _runtimes[key] = WorkerRuntime(services.jobs, detector)
    return _runtimes[key]
