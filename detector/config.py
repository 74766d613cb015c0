"""Typed model configuration: everything preprocessing and verdicts derive from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Thresholds:
    """Three-way verdict bands: p <= real -> real, p >= fake -> fake, else uncertain."""

    real: float = 0.5
    fake: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.real <= self.fake <= 1.0:
            raise ValueError(f"thresholds need 0 <= real <= fake <= 1, got {self.real}, {self.fake}")

    def verdict(self, fake_probability: float) -> str:
        """Map a probability to `fake`, `real` or `uncertain`."""
        if fake_probability >= self.fake and fake_probability > self.real:
            return "fake"
        if fake_probability <= self.real:
            return "real"
        return "uncertain"


@dataclass(frozen=True)
class ModelConfig:
    """How a registered classifier is built, fed and read."""

    name: str
    arch: str = "inception_resnet_v1"
    crop_size: int = 160  # MTCNN crop edge in pixels, before resizing to input_size
    input_size: int = 256
    margin: int = 0  # pixels added around the MTCNN box before cropping
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # applied after scaling to [0, 1]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    target_layer: str = "block8.branch1.2"  # Grad-CAM layer, i.e. block8.branch1[-1]
    thresholds: Thresholds = field(default_factory=Thresholds)
    # Platt scaling fitted on validation data: P(fake) = sigmoid(a * logit + b).
    calibration: tuple[float, float] = (1.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        thresholds = Thresholds(**data.pop("thresholds", {}))
        for key in ("mean", "std", "calibration"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        known = {f for f in cls.__dataclass_fields__}
        return cls(thresholds=thresholds, **{k: v for k, v in data.items() if k in known})

    def probability(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated P(fake) from raw logits."""
        a, b = self.calibration
        return torch.sigmoid(logits.float() * a + b)
