"""The detector behind core's `Detector` port: decode, predict, and turn the Predictor's output
into the one result shape with JPEG overlays. `unmask scan` uses the same adapter."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import Image

from unmask import __version__
from unmask.core.exceptions import JobFailed
from unmask.core.results import Analysis, FaceResult, ImageResult, ImageSize, Overlays, Provenance
from unmask.detector.errors import DetectorError
from unmask.detector.faces import Working, decode_image
from unmask.detector.predictor import Prediction, Predictor, render_overlays
from unmask.worker.batching import Batcher

log = logging.getLogger(__name__)


def provenance(predictor: Predictor) -> Provenance:
    """Model name, weights hash, thresholds and code version of every result this predictor makes."""
    return Provenance(**predictor.provenance(), code_version=__version__)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# The whole-image overlay is evidence to look at, not a copy of the input: its longer side is
# capped, so a job never hands back a full-resolution copy of an object it was allowed to read.
OVERLAY_MAX_SIDE = 1280


def shrunk(image: Image.Image) -> Image.Image:
    if max(image.size) <= OVERLAY_MAX_SIDE:
        return image
    copy = image.copy()
    copy.thumbnail((OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE), Image.Resampling.LANCZOS)
    return copy


def to_analysis(prediction: Prediction, model: Provenance) -> Analysis:
    """The Predictor's output as the one result shape, overlays encoded as JPEG."""
    faces = [
        FaceResult(
            box=fp.face.box,
            detection_probability=fp.face.detection_probability,
            landmarks=list(fp.face.landmarks),
            fake_probability=fp.fake_probability,
            verdict=fp.verdict,  # type: ignore[arg-type]
            skip_reason=fp.face.skipped,
            verdict_reason=fp.reason,
            reencoded_probability=fp.reencoded_probability,
            explanation=fp.explanation,  # type: ignore[arg-type]
        )
        for fp in prediction.faces
    ]
    result = ImageResult(
        verdict=prediction.verdict,  # type: ignore[arg-type]
        fake_probability=prediction.fake_probability,
        image=ImageSize(width=prediction.size[0], height=prediction.size[1]),
        faces=faces,
        model=model,
    )
    overlays = Overlays(
        image=jpeg_bytes(shrunk(prediction.overlay)) if prediction.overlay is not None else None,
        faces=[jpeg_bytes(fp.overlay) if fp.overlay is not None else None for fp in prediction.faces],
    )
    return Analysis(result, overlays)


@dataclass(frozen=True)
class Decoded:
    image: Image.Image
    working: Working | None


class PredictorDetector:
    """Adapts a loaded Predictor to core's Detector port; detector errors become job failures.

    With batch_size > 1, `analyse` may be called from many threads at once: each decodes its own
    image, waits while a Batcher runs the images that arrived together through the model, then
    draws and encodes its own overlays."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_pixels: int,
        explain: bool = True,
        batch_size: int = 1,
        batch_wait_seconds: float = 0.02,
    ) -> None:
        self.predictor = predictor
        self.max_pixels = max_pixels
        self.explain = explain
        self.provenance = provenance(predictor)
        self.batcher: Batcher[Decoded, Prediction] | None = None
        if batch_size > 1:
            self.batcher = Batcher(self.predict_group, max_size=batch_size, max_wait=batch_wait_seconds)

    def decode(self, data: bytes) -> Decoded:
        """The image, and the shrunk copy face detection looks at (made here, in the caller's
        thread, so the thread that owns the model only runs the model)."""
        try:
            image = decode_image(data, max_pixels=self.max_pixels)
        except DetectorError as exc:
            raise JobFailed(exc.message, code=exc.code) from exc
        return Decoded(image, self.predictor.detector.working_image(image))

    def predict_group(self, decoded: list[Decoded]) -> list[Prediction]:
        """The model's part for several images: detection and scoring, no drawing."""
        return self.predictor.predict_many(
            [d.image for d in decoded],
            explain=self.explain,
            render=False,
            working=[d.working for d in decoded],
        )

    def finish(self, decoded: Decoded, prediction: Prediction) -> Analysis:
        """Draw and encode the overlays of a prediction, as the result shape."""
        if self.explain:
            render_overlays(decoded.image, prediction)
        return to_analysis(prediction, self.provenance)

    def analyse(self, data: bytes) -> Analysis:
        decoded = self.decode(data)
        if self.batcher is not None:
            prediction = self.batcher.submit(decoded)
        else:
            prediction = self.predict_group([decoded])[0]
        return self.finish(decoded, prediction)
