"""Request parsing and response shapes for jobs (JobCreate in, JobRead out)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Request

from unmask.core.exceptions import InvalidInput
from unmask.storage.models import Job
from unmask.storage.objects import ObjectStore

FORM_FIELDS = {"image", "metadata"}
JSON_FIELDS = {"source", "metadata"}


@dataclass
class JobCreate:
    """A parsed submission: an uploaded file or an S3 reference, plus metadata."""

    data: bytes | None = None
    filename: str | None = None
    bucket: str | None = None
    key: str | None = None
    metadata: Any = None


def unknown(fields: set[str], allowed: set[str]) -> None:
    extra = sorted(fields - allowed)
    if extra:
        raise InvalidInput(
            f"unknown field(s): {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}",
            code="unknown_field",
        )


def parse_form(request: Request) -> JobCreate:
    unknown(set(request.files) | set(request.form), FORM_FIELDS)
    if "image" not in request.files:
        raise InvalidInput("multipart field 'image' is required", code="missing_image")
    upload = request.files["image"]
    metadata = None
    if "metadata" in request.form:
        try:
            metadata = json.loads(request.form["metadata"])
        except json.JSONDecodeError as exc:
            raise InvalidInput("metadata must be a JSON object", code="invalid_metadata") from exc
    return JobCreate(data=upload.read(), filename=upload.filename, metadata=metadata)


def parse_json(request: Request) -> JobCreate:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_json")
    unknown(set(body), JSON_FIELDS)
    source = body.get("source")
    if not isinstance(source, dict) or set(source) != {"s3"} or not isinstance(source["s3"], dict):
        raise InvalidInput('source must be {"s3": {"bucket": ..., "key": ...}}', code="invalid_source")
    s3 = source["s3"]
    unknown(set(s3), {"bucket", "key"})
    bucket, key = s3.get("bucket"), s3.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        raise InvalidInput(
            "source.s3.bucket and source.s3.key must be non-empty strings", code="invalid_source"
        )
    return JobCreate(bucket=bucket, key=key, metadata=body.get("metadata"))


def parse_create(request: Request) -> JobCreate:
    if request.mimetype == "multipart/form-data":
        return parse_form(request)
    if request.is_json:
        return parse_json(request)
    raise InvalidInput(
        "send multipart/form-data with an 'image' field or application/json with a 'source'",
        code="unsupported_media_type",
    )


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back naive datetimes that were written as UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def job_read(job: Job, store: ObjectStore, expires: int, base_url: str) -> dict[str, Any]:
    """The public shape of a job; result and error appear only when they exist."""
    body: dict[str, Any] = {
        "id": str(job.id),
        "status": job.status,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "attempts": job.attempts,
        "source": {"type": job.source, "filename": job.input_filename},
        "metadata": job.metadata_,
    }
    if job.source == "s3":
        body["source"]["s3"] = {"bucket": job.input_bucket, "key": job.input_key}
    if job.status == "failed":
        body["error"] = {"code": job.error_code, "message": job.error_message}
    if job.status == "succeeded":
        body["result"] = result_read(job, store, expires, base_url)
    return body


def result_read(job: Job, store: ObjectStore, expires: int, base_url: str) -> dict[str, Any]:
    def url(key: str | None) -> str | None:
        return store.url(key, expires, base_url) if key else None

    return {
        "verdict": job.verdict,
        "fake_probability": job.fake_probability,
        "image": {"width": job.image_width, "height": job.image_height},
        "faces": [
            {
                "box": face.box,
                "detection_probability": face.detection_probability,
                "landmarks": face.landmarks,
                "fake_probability": face.fake_probability,
                "verdict": face.verdict,
                "skip_reason": face.skip_reason,
                "overlay_url": url(face.overlay_key),
            }
            for face in job.faces
        ],
        "overlay_url": url(job.overlay_key),
        "urls_expire_in": expires,
        "model": {
            "name": job.model_name,
            "weights_sha256": job.weights_sha256,
            "thresholds": job.thresholds,
            "code_version": job.code_version,
        },
    }
