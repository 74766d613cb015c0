"""Predictor: owns device, model and the preprocess -> detect -> classify -> explain steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unmask.detector.config import ModelConfig
from unmask.detector.faces import Face, FaceDetector, crop_face, crop_region
from unmask.detector.gradcam import GradCam
from unmask.detector.overlay import blend_heatmap, whole_image_overlay
from unmask.detector.registry import LoadedModel, load_model

VERDICT_ORDER = {"no_face": 0, "real": 1, "uncertain": 2, "fake": 3}


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is the GPU when one is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_model_input(crops: Sequence[Image.Image | np.ndarray], config: ModelConfig) -> torch.Tensor:
    """Crops (H x W x 3, 0..255) -> normalised N x 3 x S x S tensor, as the model config says."""
    arrays = [np.asarray(c, dtype=np.uint8) for c in crops]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    if batch.shape[-1] != config.input_size or batch.shape[-2] != config.input_size:
        batch = F.interpolate(
            batch, size=(config.input_size, config.input_size), mode="bilinear", align_corners=False
        )
    batch = batch / 255.0
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    return (batch - mean) / std


@dataclass
class FacePrediction:
    face: Face
    fake_probability: float | None = None
    verdict: str = "skipped"
    cam: np.ndarray | None = None
    region: tuple[int, int, int, int] = (0, 0, 0, 0)  # image pixels the crop was taken from
    overlay: Image.Image | None = None


@dataclass
class Prediction:
    verdict: str
    fake_probability: float | None
    faces: list[FacePrediction] = field(default_factory=list)
    overlay: Image.Image | None = None
    size: tuple[int, int] = (0, 0)


class Predictor:
    """Loaded once per process; turns an image into scored, explained faces."""

    def __init__(self, model: LoadedModel, detector: FaceDetector, *, batch_size: int = 16) -> None:
        self.model = model
        self.config = model.config
        self.detector = detector
        self.batch_size = batch_size
        self.device = next(model.module.parameters()).device
        self.cam = GradCam(model.module, self.config.target_layer)

    @classmethod
    def from_settings(
        cls,
        *,
        weights: str | Path | None,
        model_name: str | None,
        device: str = "auto",
        min_face_size: int = 20,
        min_face_probability: float = 0.9,
    ) -> Predictor:
        dev = pick_device(device)
        model = load_model(weights, model_name, dev)
        detector = FaceDetector(device=dev, min_face_size=min_face_size, min_probability=min_face_probability)
        return cls(model, detector)

    def provenance(self) -> dict[str, Any]:
        """What every result of this predictor must carry: model name, weights hash, thresholds."""
        cfg = self.config
        return {
            "name": cfg.name,
            "weights_sha256": self.model.weights_sha256,
            "thresholds": {"real": cfg.thresholds.real, "fake": cfg.thresholds.fake},
        }

    def score_crops(self, crops: Sequence[Image.Image], explain: bool) -> tuple[np.ndarray, list]:
        """Fake probabilities (and Grad-CAM maps when asked) for face crops, in batches."""
        probs: list[np.ndarray] = []
        cams: list[np.ndarray | None] = []
        for start in range(0, len(crops), self.batch_size):
            batch = to_model_input(crops[start : start + self.batch_size], self.config).to(self.device)
            if explain:
                scored = self.cam(batch)
                logits, maps = scored.logits, list(scored.cams.cpu().numpy())
            else:
                with torch.inference_mode():
                    logits = self.model.module(batch).reshape(-1)
                maps = [None] * len(batch)
            probs.append(self.config.probability(logits).cpu().numpy())
            cams.extend(maps)
        return (np.concatenate(probs) if probs else np.zeros(0)), cams

    def predict(self, image: Image.Image, *, explain: bool = True) -> Prediction:
        """Detect every face, score the usable ones, explain them, and sum up the image."""
        faces = [FacePrediction(face=f) for f in self.detector.detect(image)]
        usable = [fp for fp in faces if fp.face.skipped is None]
        cfg = self.config
        crops = [crop_face(image, fp.face.box, cfg.crop_size, cfg.margin) for fp in usable]
        probs, cams = self.score_crops(crops, explain)
        for fp, crop, prob, cam in zip(usable, crops, probs, cams):
            fp.fake_probability = round(float(prob), 6)
            fp.verdict = cfg.thresholds.verdict(float(prob))
            fp.cam = cam
            fp.region = crop_region(fp.face.box, cfg.crop_size, cfg.margin, image.size)
            if cam is not None:
                fp.overlay = blend_heatmap(crop, cam)
        return self._summarise(image, faces, explain)

    def _summarise(self, image: Image.Image, faces: list[FacePrediction], explain: bool) -> Prediction:
        scored = [fp for fp in faces if fp.fake_probability is not None]
        if not scored:
            verdict, top = "no_face", None
        else:
            verdict = max((fp.verdict for fp in scored), key=VERDICT_ORDER.__getitem__)
            top = max(fp.fake_probability for fp in scored)  # type: ignore[type-var]
        overlay = None
        if explain:
            overlay = whole_image_overlay(
                image,
                [fp.face.box for fp in faces],
                [(fp.region, fp.cam) if fp.cam is not None else None for fp in faces],
                [(fp.verdict, fp.fake_probability) for fp in faces],
            )
        return Prediction(verdict, top, faces, overlay, image.size)
