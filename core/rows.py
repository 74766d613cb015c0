"""Between rows and results: the only code that knows how a result is laid out in the tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from unmask.core.results import FaceResult, ImageResult, ImageSize, OverlayLocations, Provenance
from unmask.core.schemas import ErrorDetail, JobRead, JobSource, ReviewRead, S3Location
from unmask.storage.models import Face, Job

UrlFor = Callable[[str | None], str | None]


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes that were written as UTC."""
    if value is None or value.tzinfo:
        return value
    return value.replace(tzinfo=UTC)


def face_rows(result: ImageResult, overlays: OverlayLocations) -> list[Face]:
    return [
        Face(
            index=index,
            x1=face.box[0],
            y1=face.box[1],
            x2=face.box[2],
            y2=face.box[3],
            detection_probability=face.detection_probability,
            landmarks=[list(p) for p in face.landmarks] if face.landmarks is not None else None,
            fake_probability=face.fake_probability,
            verdict=face.verdict,
            skip_reason=face.skip_reason,
            verdict_reason=face.verdict_reason,
            reencoded_probability=face.reencoded_probability,
            explanation=face.explanation,
            overlay_key=key,
        )
        for index, (face, key) in enumerate(zip(result.faces, overlays.faces))
    ]


def apply_result(job: Job, result: ImageResult, overlays: OverlayLocations) -> None:
    """Copy a result's image-level fields and provenance onto its job row."""
    job.verdict, job.fake_probability = result.verdict, result.fake_probability
    job.image_width, job.image_height = result.image.width, result.image.height
    job.overlay_key = overlays.image
    job.model_name, job.weights_sha256 = result.model.name, result.model.weights_sha256
    job.thresholds, job.code_version = result.model.thresholds, result.model.code_version


def result_of(job: Job, url_for: UrlFor) -> ImageResult:
    faces = [
        FaceResult(
            box=(face.x1, face.y1, face.x2, face.y2),
            detection_probability=face.detection_probability,
            landmarks=face.landmarks,
            fake_probability=face.fake_probability,
            verdict=face.verdict,  # type: ignore[arg-type]
            skip_reason=face.skip_reason,
            verdict_reason=face.verdict_reason,
            reencoded_probability=face.reencoded_probability,
            explanation=face.explanation,  # type: ignore[arg-type]
            overlay_url=url_for(face.overlay_key),
        )
        for face in job.faces
    ]
    return ImageResult(
        verdict=job.verdict,  # type: ignore[arg-type]
        fake_probability=job.fake_probability,
        image=ImageSize(width=job.image_width or 0, height=job.image_height or 0),
        faces=faces,
        overlay_url=url_for(job.overlay_key),
        model=Provenance(
            name=job.model_name or "",
            weights_sha256=job.weights_sha256 or "",
            thresholds=job.thresholds or {},
            code_version=job.code_version or "",
        ),
    )


def job_read(job: Job, url_for: UrlFor, expires: int) -> JobRead:
    """The public shape of a job row."""
    source = JobSource(type=job.source, filename=job.input_filename)  # type: ignore[arg-type]
    if job.source == "s3":
        source.s3 = S3Location(bucket=job.input_bucket, key=job.input_key)
    extra: dict[str, object] = {}
    if job.status == "succeeded":
        extra = {"result": result_of(job, url_for), "urls_expire_in": expires}
    elif job.status == "failed":
        extra = {"error": ErrorDetail(code=job.error_code or "", message=job.error_message or "")}
    if job.batch_id is not None:
        extra |= {"batch_id": job.batch_id, "batch_index": job.batch_index}
    if job.review is not None:
        review = job.review
        extra["review"] = ReviewRead(
            decision=review.decision,  # type: ignore[arg-type]
            note=review.note,
            reviewer=review.reviewer,
            decided_at=utc(review.decided_at),  # type: ignore[arg-type]
        )
    return JobRead(
        id=job.id,
        status=job.status,  # type: ignore[arg-type]
        created_at=utc(job.created_at),  # type: ignore[arg-type]
        updated_at=utc(job.updated_at),  # type: ignore[arg-type]
        started_at=utc(job.started_at),
        finished_at=utc(job.finished_at),
        attempts=job.attempts,
        source=source,
        metadata=job.metadata_,
        **extra,  # type: ignore[arg-type]
    )
