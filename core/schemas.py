"""The public shape of a job. The API serialises these and generates its OpenAPI document from
them; the job service builds them from rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from unmask.core.results import ImageResult

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class S3Location(BaseModel):
    bucket: str
    key: str


class JobSource(BaseModel):
    type: Literal["upload", "s3"]
    filename: str | None = None
    s3: S3Location | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable")
    message: str


class ReviewRead(BaseModel):
    decision: Literal["confirmed_fake", "real", "skip"]
    note: str | None = None
    reviewer: str
    decided_at: datetime


class JobRead(BaseModel):
    """One job; `result` appears once it succeeded, `error` once it failed. Serialise with
    `exclude_unset` so the fields that do not apply are left out rather than null."""

    id: uuid.UUID
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int
    source: JobSource
    metadata: dict[str, Any] | None = None
    result: ImageResult | None = None
    error: ErrorDetail | None = None
    urls_expire_in: int | None = Field(None, description="seconds the overlay URLs stay valid")
    batch_id: uuid.UUID | None = Field(None, description="the batch this job is an item of")
    batch_index: int | None = Field(None, description="its position in the batch")
    review: ReviewRead | None = Field(None, description="a moderator's decision, once made")


class JobPage(BaseModel):
    jobs: list[JobRead]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class ErrorBody(BaseModel):
    """Every error answer: `{"error": {"code", "message"}}`."""

    error: ErrorDetail
