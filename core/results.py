"""The one shape of a result: per image and per face. The worker builds it from the detector's
output, the job service stores it, the API returns it, `unmask scan` writes it, and the OpenAPI
document is generated from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaceVerdict = Literal["fake", "real", "uncertain", "skipped"]
ImageVerdict = Literal["fake", "real", "uncertain", "no_face"]


class Provenance(BaseModel):
    """Which model, weights, thresholds and code produced a result."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str
    weights_sha256: str
    thresholds: dict[str, float]
    code_version: str
    precision: Literal["fp32", "bf16"] = "fp32"  # the classifier's arithmetic


class FaceResult(BaseModel):
    """One face found in the image, scored and explained, or skipped with a reason."""

    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in image pixels")
    detection_probability: float
    landmarks: list[tuple[float, float]] | None = Field(
        None, description="eyes, nose and mouth corners (x, y)"
    )
    fake_probability: float | None = Field(None, description="calibrated P(fake); null when skipped")
    verdict: FaceVerdict
    skip_reason: str | None = None
    verdict_reason: str | None = Field(
        None, description="why the verdict is `uncertain` although the score alone is past a threshold"
    )
    reencoded_probability: float | None = Field(
        None, description="P(fake) of the same face after re-encoding (0.75x, JPEG q75)"
    )
    explanation: Literal["gradcam", "none"] | None = Field(
        None,
        description="`gradcam`: the overlay shows where the score came from; `none`: the map was "
        "flat, so no heatmap is drawn",
    )
    overlay_url: str | None = Field(None, description="the face crop with its Grad-CAM heatmap")


class ImageSize(BaseModel):
    width: int
    height: int


class ImageResult(BaseModel):
    """Every face of one image, and the image's verdict: its worst face."""

    verdict: ImageVerdict
    fake_probability: float | None = Field(None, description="the highest face score")
    image: ImageSize
    faces: list[FaceResult] = Field(default_factory=list)
    overlay_url: str | None = Field(None, description="the whole image with boxes and heatmaps")
    model: Provenance

    def with_overlays(self, image: str | None, faces: list[str | None]) -> ImageResult:
        """A copy whose overlay fields point at the given locations."""
        placed = [face.model_copy(update={"overlay_url": url}) for face, url in zip(self.faces, faces)]
        return self.model_copy(update={"overlay_url": image, "faces": placed})


@dataclass(frozen=True)
class Overlays:
    """Overlay images as JPEG bytes: the whole image, and one per face (None when skipped)."""

    image: bytes | None = None
    faces: list[bytes | None] = field(default_factory=list)


@dataclass(frozen=True)
class Analysis:
    """What a detector returns for one image: the result, and the overlays still to be placed."""

    result: ImageResult
    overlays: Overlays


@dataclass(frozen=True)
class OverlayLocations:
    image: str | None
    faces: list[str | None]


def write_overlays(overlays: Overlays, put: Callable[[str, bytes], str]) -> OverlayLocations:
    """Hand each overlay to `put(name, jpeg)`, which stores it and returns where it went."""
    image = put("image.jpg", overlays.image) if overlays.image is not None else None
    faces = [
        put(f"face-{i}.jpg", data) if data is not None else None for i, data in enumerate(overlays.faces)
    ]
    return OverlayLocations(image, faces)
