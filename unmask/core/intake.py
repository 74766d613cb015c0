"""Accepting work: validate input, store the original, write the job row, enqueue its id."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from typing import Any, Protocol

from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session, sessionmaker

from unmask.core import jobs
from unmask.core.exceptions import InvalidImage, InvalidInput, PayloadTooLarge, QueueUnavailable
from unmask.storage.db import session_scope
from unmask.storage.models import Job
from unmask.storage.objects import ObjectStore, new_key

log = logging.getLogger(__name__)

IMAGE_FORMATS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "GIF": "gif",
    "TIFF": "tif",
    "MPO": "jpg",
}


class JobQueue(Protocol):
    def enqueue_detect(self, job_id: uuid.UUID) -> None: ...


def sniff_image(data: bytes, max_bytes: int) -> str:
    """Cheap checks before storing: size and a readable image header. Returns the extension."""
    if not data:
        raise InvalidImage("the uploaded file is empty", code="empty_file")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidImage(
            f"the file is not an image Unmask can read ({', '.join(sorted(set(IMAGE_FORMATS)))})",
            code="not_an_image",
        ) from exc
    if fmt not in IMAGE_FORMATS:
        raise InvalidImage(f"unsupported image format {fmt!r}", code="unsupported_format")
    return IMAGE_FORMATS[fmt]


def check_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object", code="invalid_metadata")
    if len(repr(metadata)) > 16_384:
        raise InvalidInput("metadata is larger than 16 KiB", code="invalid_metadata")
    return metadata


def _enqueue(factory: sessionmaker[Session], queue: JobQueue, job: Job) -> Job:
    try:
        queue.enqueue_detect(job.id)
    except Exception as exc:
        log.exception("could not enqueue job %s", job.id)
        with session_scope(factory) as session:
            jobs.fail_job(
                session,
                job_id=job.id,
                code="queue_unavailable",
                message="the job queue was unreachable; submit again",
            )
        raise QueueUnavailable("the job queue is unreachable; try again shortly") from exc
    return job


def submit_upload(
    factory: sessionmaker[Session],
    *,
    store: ObjectStore,
    queue: JobQueue,
    owner: str,
    data: bytes,
    filename: str | None,
    max_bytes: int,
    metadata: Any = None,
) -> Job:
    """Store the uploaded bytes, record a queued job, enqueue its id."""
    ext = sniff_image(data, max_bytes)
    meta = check_metadata(metadata)
    job_id = uuid.uuid4()
    key = new_key("uploads", job_id, f"original.{ext}")
    store.put(key, data, f"image/{'jpeg' if ext == 'jpg' else ext}")
    with session_scope(factory) as session:
        job = jobs.create_job(
            session,
            owner=owner,
            source="upload",
            bucket=store.bucket,
            key=key,
            filename=(filename or "")[:255] or None,
            sha256=hashlib.sha256(data).hexdigest(),
            metadata=meta,
            job_id=job_id,
        )
    return _enqueue(factory, queue, job)


def submit_s3(
    factory: sessionmaker[Session],
    *,
    store: ObjectStore,
    queue: JobQueue,
    owner: str,
    bucket: str,
    key: str,
    metadata: Any = None,
) -> Job:
    """Record a job for an object already in S3; the worker reads it from there."""
    if not store.reads_other_buckets:
        raise InvalidInput("S3 sources need the S3 object store (UNMASK_STORE=s3)", code="s3_not_configured")
    if not bucket or not key or len(key) > 1024:
        raise InvalidInput("source.s3 needs a bucket and a key", code="invalid_source")
    meta = check_metadata(metadata)
    with session_scope(factory) as session:
        job = jobs.create_job(
            session,
            owner=owner,
            source="s3",
            bucket=bucket,
            key=key,
            filename=key.rsplit("/", 1)[-1][:255],
            metadata=meta,
        )
    return _enqueue(factory, queue, job)
