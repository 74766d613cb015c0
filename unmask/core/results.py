"""Plain data passed from the detector side to the job service; no torch, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    name: str
    weights_sha256: str
    thresholds: dict[str, float]


@dataclass(frozen=True)
class FaceResult:
    box: tuple[float, float, float, float]
    detection_probability: float
    landmarks: list[Any]
    fake_probability: float | None
    verdict: str  # fake | real | uncertain | skipped
    skip_reason: str | None = None
    overlay_key: str | None = None


@dataclass(frozen=True)
class JobResult:
    verdict: str  # fake | real | uncertain | no_face
    fake_probability: float | None
    width: int
    height: int
    model: ModelInfo
    code_version: str
    overlay_key: str | None = None
    faces: list[FaceResult] = field(default_factory=list)
