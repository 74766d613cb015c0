"""Predictor: owns device, model and the preprocess -> detect -> classify -> explain steps."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unmask.detector.config import ModelConfig
from unmask.detector.faces import DETECT_MAX_SIDE, Face, FaceDetector, Working, crop_face, crop_region
from unmask.detector.gradcam import GradCam
from unmask.detector.overlay import blend_heatmap, whole_image_overlay
from unmask.detector.registry import LoadedModel, load_model

VERDICT_ORDER = {"no_face": 0, "real": 1, "uncertain": 2, "fake": 3}


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is the GPU when one is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether the device multiplies bf16 in hardware: a CUDA card of compute capability 8.0 or
    later, or a CPU with AMX tiles (Intel Sapphire Rapids and later), where oneDNN runs the
    classifier's convolutions about twice as fast in bf16 as in fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return False


# Architectures whose scores bf16 keeps (measured against fp32 on 512 faces-v1 crops with the
# shipped weights, docs/detector.md): InceptionResnetV1 moved P(fake) by 0.012 at most and
# changed no verdict. EfficientNet-Lite0 moved it by up to 0.09 (99th percentile 0.07) and
# changed 6 verdicts in 512, so `auto` keeps it in fp32.
BF16_ARCHS = frozenset({"inception_resnet_v1"})


def pick_precision(name: str, device: torch.device, arch: str) -> str:
    """`auto` is bf16 where the device has native bf16 and the architecture keeps its scores in
    it, else fp32; `fp32` and `bf16` are taken as asked."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "auto":
        return "bf16" if native_bf16(device) and arch in BF16_ARCHS else "fp32"
    return name


def to_model_input(crops: Sequence[Image.Image | np.ndarray], config: ModelConfig) -> torch.Tensor:
    """Crops (H x W x 3, 0..255) -> normalised N x 3 x S x S tensor, as the model config says."""
    arrays = [np.asarray(c, dtype=np.uint8) for c in crops]
    return normalise(torch.from_numpy(np.stack(arrays)), config)


def normalise(batch: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """N x H x W x 3 uint8 (on any device) -> the model's N x 3 x S x S float input."""
    out = batch.permute(0, 3, 1, 2).float()
    if out.shape[-1] != config.input_size or out.shape[-2] != config.input_size:
        out = F.interpolate(
            out, size=(config.input_size, config.input_size), mode="bilinear", align_corners=False
        )
    out = out / 255.0
    mean = torch.tensor(config.mean, device=out.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=out.device).view(1, 3, 1, 1)
    return (out - mean) / std


# The re-encoding a face's verdict must survive to be stated with confidence: the crop's region
# at 0.75x its size, saved as JPEG quality 75 (what a re-upload to a social network does).
REENCODE_SCALE = 0.75
REENCODE_QUALITY = 75


def reencoded(image: Image.Image, region: tuple[int, int, int, int], crop_size: int) -> Image.Image:
    """The face region shrunk to 0.75x, through JPEG q75, resized to the model's crop size."""
    patch = image.crop(region)
    small = (max(1, round(patch.width * REENCODE_SCALE)), max(1, round(patch.height * REENCODE_SCALE)))
    buf = io.BytesIO()
    patch.resize(small, Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=REENCODE_QUALITY)
    buf.seek(0)
    with Image.open(buf) as degraded:
        return degraded.convert("RGB").resize((crop_size, crop_size), Image.Resampling.BILINEAR)


class Stopwatch:
    """Adds the seconds each `with clock(stage):` block takes to a dict (or to nothing)."""

    def __init__(self, into: dict[str, float] | None) -> None:
        self.into = into

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.into is not None:
                self.into[stage] = self.into.get(stage, 0.0) + time.perf_counter() - start


@dataclass
class FacePrediction:
    face: Face
    fake_probability: float | None = None
    verdict: str = "skipped"
    cam: np.ndarray | None = None
    region: tuple[int, int, int, int] = (0, 0, 0, 0)  # image pixels the crop was taken from
    overlay: Image.Image | None = None
    crop: Image.Image | None = None
    # "gradcam" when a heatmap explains the score, "none" when the map was flat (nothing drawn),
    # None when no explanation was asked for.
    explanation: str | None = None
    reencoded_probability: float | None = None
    reason: str | None = None  # why the verdict is `uncertain` when the score alone would not be


@dataclass
class Prediction:
    verdict: str
    fake_probability: float | None
    faces: list[FacePrediction] = field(default_factory=list)
    overlay: Image.Image | None = None
    size: tuple[int, int] = (0, 0)


@dataclass
class Scores:
    """What the model said about a list of crops."""

    probabilities: np.ndarray
    cams: list[np.ndarray | None]  # None: not explained, or a flat map


class Predictor:
    """Loaded once per process; turns images into scored, explained faces. `predict_many` runs
    every image's faces through the model together; `predict` is the same for one image."""

    def __init__(
        self,
        model: LoadedModel,
        detector: FaceDetector,
        *,
        batch_size: int = 32,
        stability_check: bool = True,
        precision: str = "fp32",
    ) -> None:
        self.model = model
        self.config = model.config
        self.detector = detector
        self.batch_size = batch_size
        self.stability_check = stability_check
        self.device = next(model.module.parameters()).device
        # The classifier runs channels-last (oneDNN's fast layout; the same arithmetic), and
        # under bf16 autocast where pick_precision says so. Detection is always fp32.
        self.precision = pick_precision(precision, self.device, self.config.arch)
        model.module.to(memory_format=torch.channels_last)
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
        detect_max_side: int = DETECT_MAX_SIDE,
        stability_check: bool = True,
        precision: str = "auto",
    ) -> Predictor:
        dev = pick_device(device)
        model = load_model(weights, model_name, dev)
        detector = FaceDetector(
            device=dev,
            min_face_size=min_face_size,
            min_probability=min_face_probability,
            max_side=detect_max_side,
        )
        return cls(model, detector, stability_check=stability_check, precision=precision)

    def provenance(self) -> dict[str, Any]:
        """What every result of this predictor must carry: model name, weights hash, thresholds."""
        cfg = self.config
        return {
            "name": cfg.name,
            "weights_sha256": self.model.weights_sha256,
            "thresholds": {"real": cfg.thresholds.real, "fake": cfg.thresholds.fake},
            "precision": self.precision,
        }

    def score_crops(self, crops: Sequence[Image.Image], explain: bool) -> Scores:
        """Fake probabilities, and Grad-CAM maps when asked (None for flat maps), in batches."""
        probs: list[np.ndarray] = []
        cams: list[np.ndarray | None] = []
        bf16 = self.precision == "bf16"
        for start in range(0, len(crops), self.batch_size):
            batch = to_model_input(crops[start : start + self.batch_size], self.config).to(self.device)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                if explain:
                    scored = self.cam(batch)
                    logits = scored.logits
                    maps = scored.cams.cpu().numpy()
                    cams.extend(None if flat else m for m, flat in zip(maps, scored.flat.tolist()))
                else:
                    with torch.inference_mode():
                        logits = self.model.module(batch).reshape(-1)
                    cams.extend([None] * len(batch))
            probs.append(self.config.probability(logits).cpu().numpy())
        return Scores(np.concatenate(probs) if probs else np.zeros(0), cams)

    def predict(self, image: Image.Image, *, explain: bool = True) -> Prediction:
        """Detect every face, score the usable ones, explain them, and sum up the image."""
        return self.predict_many([image], explain=explain)[0]

    def predict_many(
        self,
        images: Sequence[Image.Image],
        *,
        explain: bool = True,
        render: bool = True,
        timings: dict[str, float] | None = None,
        working: Sequence[Working | None] | None = None,
    ) -> list[Prediction]:
        """predict() for many images at once: one batched face detection, then every face of
        every image through the model in batches. render=False leaves the overlays to `render_overlays`,
        so a caller can draw them outside the thread that owns the model. Seconds spent per stage
        are added to `timings` when one is given; `working` are the detector's working images,
        when the caller made them already."""
        cfg = self.config
        clock = Stopwatch(timings)
        with clock("detect"):
            found = self.detector.detect_many(images, working)
        per_image = [[FacePrediction(face=f) for f in faces] for faces in found]
        usable = [
            (image, fp) for image, faces in zip(images, per_image) for fp in faces if fp.face.skipped is None
        ]
        for image, fp in usable:
            fp.region = crop_region(fp.face.box, cfg.crop_size, cfg.margin, image.size)
            fp.crop = crop_face(image, fp.face.box, cfg.crop_size, cfg.margin)
        with clock("classify_explain"):
            scores = self.score_crops([fp.crop for _, fp in usable], explain)  # type: ignore[misc]
        for (_, fp), prob, cam in zip(usable, scores.probabilities, scores.cams):
            fp.fake_probability = round(float(prob), 6)
            fp.verdict = cfg.thresholds.verdict(float(prob))
            fp.cam = cam
            if explain:
                fp.explanation = "gradcam" if cam is not None else "none"
        if self.stability_check:
            # Only a decided verdict can flip; `uncertain` already says what the check would.
            decided = [(image, fp) for image, fp in usable if fp.verdict != "uncertain"]
            with clock("reencode_check"):
                again = self._rescored(decided)
            for (_, fp), prob in zip(decided, again):
                self._check(fp, prob)
        predictions = [self._summarise(image, faces) for image, faces in zip(images, per_image)]
        if explain and render:
            with clock("render"):
                for image, prediction in zip(images, predictions):
                    render_overlays(image, prediction)
        return predictions

    def _rescored(self, usable: Sequence[tuple[Image.Image, FacePrediction]]) -> list[float]:
        """Scores of the same faces after a mild re-encode (one more forward pass, no gradients)."""
        if not usable:
            return []
        crops = [reencoded(image, fp.region, self.config.crop_size) for image, fp in usable]
        return [float(p) for p in self.score_crops(crops, explain=False).probabilities]

    def _check(self, fp: FacePrediction, reencoded_prob: float) -> None:
        """Make a verdict that the re-encoded face does not share `uncertain`, with the reason."""
        fp.reencoded_probability = round(reencoded_prob, 6)
        other = self.config.thresholds.verdict(reencoded_prob)
        if other != fp.verdict:
            fp.reason = (
                f"unstable: {fp.verdict} at {fp.fake_probability:.3f} but {other} at "
                f"{reencoded_prob:.3f} after re-encoding at {REENCODE_SCALE}x, JPEG q{REENCODE_QUALITY}"
            )
            fp.verdict = "uncertain"

    @staticmethod
    def _summarise(image: Image.Image, faces: list[FacePrediction]) -> Prediction:
        scored = [fp for fp in faces if fp.fake_probability is not None]
        if not scored:
            verdict, top = "no_face", None
        else:
            verdict = max((fp.verdict for fp in scored), key=VERDICT_ORDER.__getitem__)
            top = max(fp.fake_probability for fp in scored)  # type: ignore[type-var]
        return Prediction(verdict, top, faces, None, image.size)


def render_overlays(image: Image.Image, prediction: Prediction) -> None:
    """Draw a prediction's overlays: each explained face's crop under its heatmap, and the whole
    image with every box, label and heatmap. Faces with flat maps get a box and no colour."""
    for fp in prediction.faces:
        if fp.cam is not None and fp.crop is not None:
            fp.overlay = blend_heatmap(fp.crop, fp.cam)
    faces = prediction.faces
    prediction.overlay = whole_image_overlay(
        image,
        [fp.face.box for fp in faces],
        [(fp.region, fp.cam) if fp.cam is not None else None for fp in faces],
        [(fp.verdict, fp.fake_probability) for fp in faces],
    )
