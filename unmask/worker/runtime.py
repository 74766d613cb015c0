"""Per-process worker state: sessions, object store and the Predictor, loaded after the fork."""

from __future__ import annotations

import io
import logging
import os
import uuid
from dataclasses import dataclass

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from unmask import __version__
from unmask.core import jobs
from unmask.core.exceptions import InvalidInput, StorageUnavailable, UnmaskError
from unmask.core.results import FaceResult, JobResult, ModelInfo
from unmask.core.settings import Settings
from unmask.detector.faces import decode_image
from unmask.detector.predictor import Prediction, Predictor
from unmask.storage.db import make_engine, make_session_factory, session_scope
from unmask.storage.factory import make_store
from unmask.storage.objects import ObjectStore, new_key

log = logging.getLogger(__name__)


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@dataclass
class Input:
    bucket: str | None
    key: str


class WorkerRuntime:
    """Everything a detect task needs, built once per worker process."""

    def __init__(self, settings: Settings, predictor: Predictor) -> None:
        self.settings = settings
        self.sessions: sessionmaker[Session] = make_session_factory(
            make_engine(settings.resolved_database_url)
        )
        self.store: ObjectStore = make_store(settings)
        self.predictor = predictor
        cfg = predictor.config
        self.model_info = ModelInfo(
            cfg.name,
            predictor.model.weights_sha256,
            {"real": cfg.thresholds.real, "fake": cfg.thresholds.fake},
        )

    def claim(self, job_id: uuid.UUID) -> Input | None:
        with session_scope(self.sessions) as session:
            job = jobs.start_job(session, job_id=job_id)
            if job is None:
                return None
            own = job.source == "upload"
            return Input(None if own else job.input_bucket, job.input_key)

    def fail(self, job_id: uuid.UUID, code: str, message: str) -> None:
        with session_scope(self.sessions) as session:
            jobs.fail_job(session, job_id=job_id, code=code, message=message)

    def detect_job(self, job_id: uuid.UUID) -> None:
        """queued -> running -> succeeded | failed; a finished job is left as it is."""
        source = self.claim(job_id)
        if source is None:
            log.info("job %s is unknown or finished; nothing to do", job_id)
            return
        # The session is closed here: no connection is held through the model's work.
        try:
            data = self.store.get(source.key, bucket=source.bucket, max_bytes=self.settings.max_upload_bytes)
            image = decode_image(data)
            if image.width * image.height > self.settings.max_pixels:
                raise InvalidInput(
                    f"image has more than {self.settings.max_pixels} pixels", code="image_too_large"
                )
            prediction = self.predictor.predict(image)
            result = self.store_overlays(job_id, prediction)
        except StorageUnavailable:
            raise  # transient: the task retries with backoff
        except UnmaskError as exc:
            log.info("job %s failed: %s", job_id, exc.code)
            self.fail(job_id, exc.code, exc.message)
            return
        except Exception as exc:
            log.exception("job %s: unexpected error", job_id)
            self.fail(job_id, "internal_error", f"unexpected error: {type(exc).__name__}")
            return
        with session_scope(self.sessions) as session:
            jobs.record_result(session, job_id=job_id, result=result)
        log.info("job %s succeeded: %s, %d faces", job_id, result.verdict, len(result.faces))

    def store_overlays(self, job_id: uuid.UUID, pred: Prediction) -> JobResult:
        faces = []
        for i, fp in enumerate(pred.faces):
            key = None
            if fp.overlay is not None:
                key = new_key("overlays", job_id, f"face-{i}.jpg")
                self.store.put(key, jpeg_bytes(fp.overlay), "image/jpeg")
            faces.append(
                FaceResult(
                    fp.face.box,
                    fp.face.detection_probability,
                    [list(p) for p in fp.face.landmarks],
                    fp.fake_probability,
                    fp.verdict,
                    fp.face.skipped,
                    key,
                )
            )
        overlay_key = None
        if pred.overlay is not None:
            overlay_key = new_key("overlays", job_id, "image.jpg")
            self.store.put(overlay_key, jpeg_bytes(pred.overlay), "image/jpeg")
        return JobResult(
            pred.verdict,
            pred.fake_probability,
            pred.size[0],
            pred.size[1],
            self.model_info,
            __version__,
            overlay_key,
            faces,
        )


_runtimes: dict[int, WorkerRuntime] = {}


def get_runtime(settings: Settings) -> WorkerRuntime:
    """The runtime of this process; built on first use, so always after any fork."""
    pid = os.getpid()
    if pid not in _runtimes:
        predictor = Predictor.from_settings(
            weights=settings.weights,
            model_name=settings.model,
            device=settings.device,
            min_face_size=settings.min_face_size,
            min_face_probability=settings.min_face_probability,
        )
        _runtimes[pid] = WorkerRuntime(settings, predictor)
    return _runtimes[pid]
