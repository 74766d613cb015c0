"""Typed SQLAlchemy models: the single metadata source for Alembic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Job(Base):
    """One image to analyse, owned by a tenant; Postgres holds the truth about its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        Index("ix_jobs_owner_status_created", "owner", "status", "created_at"),
        Index("ix_jobs_status_enqueued", "status", "enqueued_at"),
        UniqueConstraint("batch_id", "batch_index", name="uq_jobs_batch_index"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Liveness for the reconciler: when the id was last handed to the broker, and when the
    # worker holding the job last said it was alive.
    enqueued_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    webhook_url: Mapped[str | None] = mapped_column(String(2048))  # per-request callback
    # The batch this job is an item of, and its position there.
    batch_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    batch_index: Mapped[int | None] = mapped_column(Integer)

    source: Mapped[str] = mapped_column(String(16))  # upload | s3
    input_bucket: Mapped[str] = mapped_column(String(255))
    input_key: Mapped[str] = mapped_column(String(1024))
    input_filename: Mapped[str | None] = mapped_column(String(255))
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    verdict: Mapped[str | None] = mapped_column(String(16))
    fake_probability: Mapped[float | None] = mapped_column(Float)
    image_width: Mapped[int | None]
    image_height: Mapped[int | None]
    overlay_key: Mapped[str | None] = mapped_column(String(1024))
    # Provenance of the result: which model, which weights, which thresholds, which code.
    model_name: Mapped[str | None] = mapped_column(String(64))
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    thresholds: Mapped[dict[str, Any] | None]
    code_version: Mapped[str | None] = mapped_column(String(32))

    faces: Mapped[list[Face]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        order_by="Face.index",
    )
    review: Mapped[Review | None] = relationship(cascade="all, delete-orphan", lazy="selectin")


class Batch(Base):
    """Many images as one unit of work; its items are jobs carrying its id."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_owner_created", "owner", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | running | completed | cancelled
    source: Mapped[dict[str, Any]]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    output: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    total: Mapped[int | None] = mapped_column(Integer)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class WebhookEndpoint(Base):
    """A tenant's registered receiver of events, with its own signing secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[Any]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(255))


class WebhookDelivery(Base):
    """The outbox: one event for one receiver, written in the transaction that caused it, and
    delivered (and retried) by its own task."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_owner_created", "owner", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id: the same on every retry
    owner: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)  # attempt, at, status, latency, error


class Review(Base):
    """A moderator's decision on a job the model flagged."""

    __tablename__ = "reviews"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))  # confirmed_fake | real | skip
    note: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class DashboardSession(Base):
    """A signed-in dashboard browser: the cookie holds a random token, this row its SHA-256."""

    __tablename__ = "dashboard_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    reviewer: Mapped[str] = mapped_column(String(128))
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]


class WorkerSeen(Base):
    """Each worker process says it is alive, and on what device, every reconciler tick."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    queue: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(64))
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class Face(Base):
    """One face found in a job's image, scored or skipped with a reason."""

    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("job_id", "index", name="uq_faces_job_index"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    detection_probability: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[list[Any] | None] = mapped_column(JSON)
    fake_probability: Mapped[float | None] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))  # fake | real | uncertain | skipped
    skip_reason: Mapped[str | None] = mapped_column(String(255))
    verdict_reason: Mapped[str | None] = mapped_column(String(255))
    reencoded_probability: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str | None] = mapped_column(String(16))  # gradcam | none
    overlay_key: Mapped[str | None] = mapped_column(String(1024))

    job: Mapped[Job] = relationship(back_populates="faces")

    @property
    def box(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


class ApiKey(Base):
    """A bearer key for one tenant; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists, enough to tell keys apart
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Tenant(Base):
    """Per-tenant configuration: which S3 locations its jobs may read."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    s3_sources: Mapped[list[Any]] = mapped_column(JSON, default=list)  # "bucket/prefix" strings
    # Signs deliveries to per-request `webhook_url`s (registered endpoints have their own).
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    max_batch_items: Mapped[int | None] = mapped_column(Integer)  # None: UNMASK_MAX_BATCH_ITEMS
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """The first answer to a request with an Idempotency-Key, replayed for 24 hours."""

    __tablename__ = "idempotency_keys"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
