"""The detector behind core's `Detector` port: decode, predict, and turn the Predictor's output
into the one result shape with JPEG overlays. `unmask scan` uses the same adapter."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import torch
from PIL import Image

from unmask import __version__
from unmask.core.exceptions import JobFailed
from unmask.core.results import Analysis, FaceResult, ImageResult, ImageSize, Overlays, Provenance
from unmask.detector.errors import DetectorError
from unmask.detector.faces import Working, decode_image, decode_jpegs, device_decodable, read_header
from unmask.detector.predictor import Prediction, Predictor, Stopwatch, render_overlays
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
    """An image ready for the model: decoded here, or (data set, image None) left for the
    batcher's thread to decode on the device with the rest of its batch."""

    image: Image.Image | None
    working: Working | None
    data: bytes | None = None


@dataclass(frozen=True)
class Predicted:
    """The model's output for one image, with the image it was made from."""

    image: Image.Image
    prediction: Prediction


def job_failed(error: DetectorError) -> JobFailed:
    """A detector error as the failure of the job whose image it was."""
    return JobFailed(error.message, code=error.code)


DECODES = ("auto", "pillow", "device")


def pick_decode(name: str, device: torch.device) -> bool:
    """Whether JPEGs are decoded on the model's device: `auto` does so on a GPU (nvJPEG, a batch
    at a time, in the model's thread) and not on a CPU, where each job's own thread decoding its
    image with Pillow keeps the model's thread free."""
    if name not in DECODES:
        raise ValueError(f"decode must be one of {', '.join(DECODES)}, not {name!r}")
    return name == "device" or (name == "auto" and device.type == "cuda")


class PredictorDetector:
    """Adapts a loaded Predictor to core's Detector port; detector errors become job failures.

    With batch_size > 1, `analyse` may be called from many threads at once: each reads its own
    image, waits while a Batcher runs the images that arrived together through the model, then
    draws and encodes its own overlays. With `decode` on the device, the Batcher's thread also
    decodes the batch's JPEGs there (one nvJPEG call on a GPU) and shrinks them for detection
    without a copy to the host and back; other formats are decoded by Pillow as before."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_pixels: int,
        explain: bool = True,
        batch_size: int = 1,
        batch_wait_seconds: float = 0.02,
        decode: str = "auto",
    ) -> None:
        self.predictor = predictor
        self.max_pixels = max_pixels
        self.explain = explain
        self.provenance = provenance(predictor)
        self.decode_on_device = pick_decode(decode, predictor.device)
        self.timings: dict[str, float] | None = None  # seconds per stage, when a benchmark asks
        self.batcher: Batcher[Decoded, Predicted | JobFailed] | None = None
        if batch_size > 1:
            self.batcher = Batcher(self.predict_group, max_size=batch_size, max_wait=batch_wait_seconds)

    def decode(self, data: bytes) -> Decoded:
        """The image, and the shrunk copy face detection looks at (made here, in the caller's
        thread, so the thread that owns the model only runs the model); for a JPEG that the
        device decodes, only its header is read here."""
        try:
            if self.decode_on_device and device_decodable(read_header(data, self.max_pixels)):
                return Decoded(None, None, data)
            image = decode_image(data, max_pixels=self.max_pixels)
        except DetectorError as exc:
            raise job_failed(exc) from exc
        return Decoded(image, self.predictor.detector.working_image(image))

    def predict_group(self, decoded: list[Decoded]) -> list[Predicted | JobFailed]:
        """The model's part for several images: device decoding where asked, detection and
        scoring, no drawing. An image the device cannot decode fails alone."""
        ready = self._decode_on_device(decoded)
        good = [(i, d) for i, d in enumerate(ready) if isinstance(d, Decoded)]
        predictions = self.predictor.predict_many(
            [d.image for _, d in good],  # type: ignore[misc]
            explain=self.explain,
            render=False,
            working=[d.working for _, d in good],
            timings=self.timings,
        )
        out: list[Predicted | JobFailed] = list(ready)  # type: ignore[arg-type]
        for (i, d), prediction in zip(good, predictions):
            out[i] = Predicted(d.image, prediction)  # type: ignore[arg-type]
        return out

    def _decode_on_device(self, decoded: list[Decoded]) -> list[Decoded | JobFailed]:
        pending = [i for i, d in enumerate(decoded) if d.image is None]
        if not pending:
            return list(decoded)
        detector = self.predictor.detector
        with Stopwatch(self.timings)("device_decode"):
            pixels = decode_jpegs([decoded[i].data for i in pending], self.predictor.device)  # type: ignore[misc]
            ready: list[Decoded | JobFailed] = list(decoded)
            for i, got in zip(pending, pixels):
                # Crops, the re-encode check and the overlays work on the host copy.
                ready[i] = (
                    job_failed(got)
                    if isinstance(got, DetectorError)
                    else Decoded(Image.fromarray(got.cpu().numpy()), detector.working_pixels(got))
                )
        return ready

    def finish(self, predicted: Predicted) -> Analysis:
        """Draw and encode the overlays of a prediction, as the result shape."""
        if self.explain:
            render_overlays(predicted.image, predicted.prediction)
        return to_analysis(predicted.prediction, self.provenance)

    def analyse(self, data: bytes) -> Analysis:
        decoded = self.decode(data)
        predicted: Predicted | JobFailed
        if self.batcher is not None:
            predicted = self.batcher.submit(decoded)
        else:
            predicted = self.predict_group([decoded])[0]
        if isinstance(predicted, JobFailed):
            raise predicted
        return self.finish(predicted)
