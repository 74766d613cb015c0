"""Job service: the only code that changes job rows. Keyword-only, explicit session."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session, selectinload

from unmask.core.exceptions import InvalidInput, NotFound
from unmask.core.results import JobResult
from unmask.storage.models import Face, Job, utcnow

STATUSES = ("queued", "running", "succeeded", "failed")
FINISHED = ("succeeded", "failed")
MAX_PAGE = 200


def parse_job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound("job not found") from exc


def create_job(
    session: Session,
    *,
    owner: str,
    source: str,
    bucket: str,
    key: str,
    filename: str | None = None,
    sha256: str | None = None,
    metadata: dict[str, Any] | None = None,
    job_id: uuid.UUID | None = None,
) -> Job:
    """A queued job; the caller commits, then enqueues its id."""
    job = Job(
        id=job_id or uuid.uuid4(),
        owner=owner,
        status="queued",
        source=source,
        input_bucket=bucket,
        input_key=key,
        input_filename=filename,
        input_sha256=sha256,
        metadata_=metadata,
        attempts=0,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, *, owner: str, job_id: uuid.UUID) -> Job:
    job = session.scalar(
        select(Job).options(selectinload(Job.faces)).where(Job.id == job_id, Job.owner == owner)
    )
    if job is None:
        raise NotFound("job not found")
    return job


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|")
        return datetime.fromisoformat(stamp), uuid.UUID(job_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("invalid cursor", code="invalid_cursor") from exc


def list_jobs(
    session: Session, *, owner: str, status: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[Sequence[Job], str | None]:
    """Newest first; returns a page and the cursor of the next one (None at the end)."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", code="invalid_status")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", code="invalid_limit")
    query = select(Job).options(selectinload(Job.faces)).where(Job.owner == owner)
    if status:
        query = query.where(Job.status == status)
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        query = query.where(or_(Job.created_at < stamp, and_(Job.created_at == stamp, Job.id < last_id)))
    rows = session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)).all()
    page = rows[:limit]
    return page, (encode_cursor(page[-1]) if len(rows) > limit else None)


def start_job(session: Session, *, job_id: uuid.UUID) -> Job | None:
    """Mark a job running and count the attempt; None when it is unknown or already finished."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.status in FINISHED:
        return None
    job.status = "running"
    job.attempts += 1
    job.started_at = utcnow()
    job.error_code = job.error_message = None
    session.flush()
    return job


def record_result(session: Session, *, job_id: uuid.UUID, result: JobResult) -> Job:
    """Store the result and faces, replacing any from an earlier delivery of the same job."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound("job not found")
    session.execute(delete(Face).where(Face.job_id == job_id))
    for index, face in enumerate(result.faces):
        x1, y1, x2, y2 = face.box
        session.add(
            Face(
                job_id=job_id,
                index=index,
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                detection_probability=face.detection_probability,
                landmarks=face.landmarks,
                fake_probability=face.fake_probability,
                verdict=face.verdict,
                skip_reason=face.skip_reason,
                overlay_key=face.overlay_key,
            )
        )
    job.status, job.finished_at = "succeeded", utcnow()
    job.verdict, job.fake_probability = result.verdict, result.fake_probability
    job.image_width, job.image_height = result.width, result.height
    job.overlay_key = result.overlay_key
    job.model_name, job.weights_sha256 = result.model.name, result.model.weights_sha256
    job.thresholds, job.code_version = result.model.thresholds, result.code_version
    session.flush()
    return job


def fail_job(session: Session, *, job_id: uuid.UUID, code: str, message: str) -> Job | None:
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        return None
    job.status, job.finished_at = "failed", utcnow()
    job.error_code, job.error_message = code, message[:2000]
    session.flush()
    return job
