"""Batches: many images as one unit of work. A batch from uploads holds its jobs at once; a batch
from S3 (a list, a prefix, a JSONL manifest) is expanded by a worker task, page by page, so the
request answers at once whatever the size. A batch moves pending -> running -> completed, or
cancelled; its jobs are ordinary jobs that carry the batch id."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from unmask.core.exceptions import InvalidInput, NotFound, UnmaskError, storage_errors_mapped
from unmask.core.intake import check_metadata, check_s3_source
from unmask.core.jobs import JobService
from unmask.core.pagination import keyset_page
from unmask.core.rows import utc
from unmask.core.schemas import JobRead
from unmask.storage.db import session_scope
from unmask.storage.models import Batch, Job, utcnow

log = logging.getLogger(__name__)

BatchStatus = Literal["pending", "running", "completed", "cancelled"]
CHUNK = 500  # jobs created and enqueued per transaction while expanding
MAX_PAGE = 200


class S3Item(BaseModel):
    bucket: str
    key: str
    metadata: dict[str, Any] | None = None


class BatchCounts(BaseModel):
    total: int | None = Field(None, description="items in the batch; null until a worker has listed them")
    by_status: dict[str, int]
    by_verdict: dict[str, int]
    progress: float = Field(description="finished items / total, 0..1")


class BatchRead(BaseModel):
    id: uuid.UUID
    status: BatchStatus
    source: dict[str, Any]
    metadata: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    counts: BatchCounts
    first_errors: list[dict[str, Any]] = Field(default_factory=list)


class BatchPage(BaseModel):
    batches: list[BatchRead]
    next_cursor: str | None = None


class BatchJobPage(BaseModel):
    jobs: list[JobRead]
    next_cursor: str | None = None


class BatchService:
    def __init__(self, *, jobs: JobService) -> None:
        self.jobs = jobs
        self.sessions = jobs.sessions
        self.settings = jobs.settings
        jobs.batch_reader = self._read

    # -- creating -----------------------------------------------------------------------------

    def create_from_uploads(
        self,
        *,
        owner: str,
        files: list[tuple[bytes, str | None]],
        metadata: Any = None,
        base_url: str = "",
        webhook_url: str | None = None,
    ) -> BatchRead:
        """A batch of uploaded images: each is checked, stored and queued as one of its jobs."""
        self._check_size(owner, len(files))
        if not files:
            raise InvalidInput("send at least one `image` part", code="missing_image")
        callback = self.jobs.webhooks.check_callback(owner=owner, url=webhook_url)
        batch = self._new_batch(
            owner, {"kind": "uploads", "count": len(files)}, metadata, total=len(files), webhook_url=callback
        )
        for index, (data, filename) in enumerate(files):
            self.jobs.submit_upload(
                owner=owner, data=data, filename=filename, batch=(batch, index), base_url=base_url
            )
        self._mark_running(batch)
        return self.get(owner=owner, batch_id=str(batch))

    def create_from_s3(
        self,
        *,
        owner: str,
        source: dict[str, Any],
        metadata: Any = None,
        output: dict[str, str] | None = None,
        webhook_url: str | None = None,
    ) -> BatchRead:
        """A pending batch whose items a worker lists: `items`, `prefix` or `manifest`."""
        kind = source["kind"]
        if kind == "items":
            self._check_size(owner, len(source["items"]))
            for item in source["items"]:
                self._check_location(owner, item["bucket"], item["key"])
        elif kind == "prefix":
            check_s3_source(source["bucket"], source["prefix"] or "-")
            self.jobs.tenants.check_source(
                tenant=owner, bucket=source["bucket"], key=source["prefix"], own_bucket=self.jobs.store.bucket
            )
        else:
            self._check_location(owner, source["bucket"], source["key"])
        if output:
            self._check_location(owner, output["bucket"], output["key"])
        callback = self.jobs.webhooks.check_callback(owner=owner, url=webhook_url)
        batch = self._new_batch(owner, source, metadata, output=output, webhook_url=callback)
        self.jobs.queue.enqueue_expand(batch)
        return self.get(owner=owner, batch_id=str(batch))

    def create_once(
        self, *, owner: str, idempotency_key: str | None, request: dict[str, Any], create: Any
    ) -> BatchRead:
        """`create()`, or the first answer to the same request under the same Idempotency-Key."""
        if idempotency_key is None:
            return create()
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
        answer = self.jobs.idempotency.run(
            tenant=owner,
            key=f"batch:{idempotency_key}",
            fingerprint=fingerprint,
            create=lambda: create().model_dump(mode="json"),
        )
        return BatchRead.model_validate(answer)

    def _check_size(self, owner: str, n: int) -> int:
        """Refuse more items than the tenant's batch limit; returns the limit."""
        limit = self.jobs.tenants.max_batch_items(tenant=owner, default=self.settings.max_batch_items)
        if n > limit:
            raise InvalidInput(f"a batch of this tenant holds at most {limit} items", code="batch_too_large")
        return limit

    def _check_location(self, owner: str, bucket: str, key: str) -> None:
        check_s3_source(bucket, key)
        self.jobs.tenants.check_source(
            tenant=owner, bucket=bucket, key=key, own_bucket=self.jobs.store.bucket
        )

    def _new_batch(
        self,
        owner: str,
        source: dict[str, Any],
        metadata: Any,
        *,
        total: int | None = None,
        output: dict[str, str] | None = None,
        webhook_url: str | None = None,
    ) -> uuid.UUID:
        with session_scope(self.sessions) as session:
            batch = Batch(
                owner=owner,
                status="pending",
                source=source,
                metadata_=check_metadata(metadata),
                output=output,
                total=total,
                webhook_url=webhook_url,
            )
            session.add(batch)
            session.flush()
            return batch.id

    def _mark_running(self, batch_id: uuid.UUID) -> None:
        with session_scope(self.sessions) as session:
            batch = session.get(Batch, batch_id, with_for_update=True)
            if batch is not None and batch.status == "pending":
                batch.status, batch.started_at = "running", utcnow()
        self.jobs.settle_batch(batch_id)

    # -- expanding (worker) ---------------------------------------------------------------------

    def expand(self, *, batch_id: uuid.UUID) -> int:
        """List a pending batch's items and queue a job for each; safe to run again after a
        crash (items already made are skipped). Returns how many jobs it made."""
        with session_scope(self.sessions) as session:
            batch = session.get(Batch, batch_id)
            if batch is None or batch.status != "pending":
                return 0
            owner, source = batch.owner, dict(batch.source)
            done = set(session.scalars(select(Job.batch_index).where(Job.batch_id == batch_id)))
        made, total, chunk = 0, 0, []
        limit = self._check_size(owner, 0)
        try:
            for index, item in enumerate(self._items(owner, source)):
                if index >= limit:
                    raise InvalidInput(
                        f"the source lists more than {limit} items; the first {limit} were queued",
                        code="batch_too_large",
                    )
                total = index + 1
                if index in done:
                    continue
                chunk.append((index, item))
                if len(chunk) >= CHUNK:
                    made += self._make_jobs(owner, batch_id, chunk)
                    chunk = []
            made += self._make_jobs(owner, batch_id, chunk)
        except UnmaskError as exc:
            made += self._make_jobs(owner, batch_id, chunk)  # the items listed before it stopped
            self._record_expand_error(batch_id, exc)
            return made
        with session_scope(self.sessions) as session:
            batch = session.get(Batch, batch_id, with_for_update=True)
            if batch is not None and batch.status == "pending":
                batch.total, batch.status, batch.started_at = total, "running", utcnow()
        self.jobs.settle_batch(batch_id)  # every item may already have finished
        log.info("batch %s expanded: %d items, %d new jobs", batch_id, total, made)
        return made

    def _items(self, owner: str, source: dict[str, Any]) -> Iterator[S3Item]:
        kind = source["kind"]
        if kind == "items":
            yield from (S3Item.model_validate(i) for i in source["items"])
        elif kind == "prefix":
            with storage_errors_mapped():
                for key in self.jobs.store.list_keys(bucket=source["bucket"], prefix=source["prefix"]):
                    yield S3Item(bucket=source["bucket"], key=key)
        else:
            with storage_errors_mapped():
                lines = self.jobs.store.read_lines(
                    bucket=source["bucket"], key=source["key"], max_bytes=self.settings.max_manifest_bytes
                )
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        yield self._manifest_item(line, number)

    @staticmethod
    def _manifest_item(line: str, number: int) -> S3Item:
        try:
            return S3Item.model_validate(json.loads(line))
        except ValueError as exc:
            raise InvalidInput(
                f"manifest line {number} is not {{'bucket', 'key', 'metadata'}}", code="invalid_manifest"
            ) from exc

    def _make_jobs(self, owner: str, batch_id: uuid.UUID, chunk: list[tuple[int, S3Item]]) -> int:
        made = 0
        for index, item in chunk:
            try:
                self._check_location(owner, item.bucket, item.key)
                check_metadata(item.metadata)
            except UnmaskError as exc:  # one bad item fails as its own job, not the batch
                self.jobs.record_refused(
                    owner=owner, batch=(batch_id, index), bucket=item.bucket, key=item.key, error=exc
                )
                made += 1
                continue
            self.jobs.submit_s3(
                owner=owner, bucket=item.bucket, key=item.key, metadata=item.metadata, batch=(batch_id, index)
            )
            made += 1
        return made

    def _record_expand_error(self, batch_id: uuid.UUID, exc: UnmaskError) -> None:
        """The batch keeps the jobs made so far and says why it stopped listing."""
        with session_scope(self.sessions) as session:
            batch = session.get(Batch, batch_id, with_for_update=True)
            if batch is not None and batch.status == "pending":
                made = session.scalar(select(func.count()).where(Job.batch_id == batch_id))
                batch.error = {"code": exc.code, "message": exc.message}
                batch.total, batch.status, batch.started_at = made, "running", utcnow()
        self.jobs.settle_batch(batch_id)

    # -- reading ----------------------------------------------------------------------------------

    def get(self, *, owner: str, batch_id: str) -> BatchRead:
        with session_scope(self.sessions) as session:
            return self._read(session, self._load(session, owner, batch_id))

    def _load(self, session: Session, owner: str, batch_id: str) -> Batch:
        try:
            key = uuid.UUID(batch_id)
        except ValueError as exc:
            raise NotFound("batch not found") from exc
        batch = session.scalar(select(Batch).where(Batch.id == key, Batch.owner == owner))
        if batch is None:
            raise NotFound("batch not found")
        return batch

    def _read(self, session: Session, batch: Batch) -> BatchRead:
        by_status = dict(
            session.execute(
                select(Job.status, func.count()).where(Job.batch_id == batch.id).group_by(Job.status)
            ).all()
        )
        by_verdict = dict(
            session.execute(
                select(Job.verdict, func.count())
                .where(Job.batch_id == batch.id, Job.verdict.is_not(None))
                .group_by(Job.verdict)
            ).all()
        )
        finished = sum(by_status.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
        errors = session.execute(
            select(Job.batch_index, Job.input_key, Job.error_code, Job.error_message)
            .where(Job.batch_id == batch.id, Job.status == "failed")
            .order_by(Job.batch_index)
            .limit(10)
        ).all()
        first_errors = [{"index": i, "key": k, "code": c, "message": m} for i, k, c, m in errors]
        if batch.error:
            first_errors.insert(0, {"index": None, **batch.error})
        total = batch.total
        return BatchRead(
            id=batch.id,
            status=batch.status,  # type: ignore[arg-type]
            source=batch.source,
            metadata=batch.metadata_,
            output=batch.output,
            created_at=utc(batch.created_at),  # type: ignore[arg-type]
            started_at=utc(batch.started_at),
            finished_at=utc(batch.finished_at),
            counts=BatchCounts(
                total=total,
                by_status=by_status,
                by_verdict=by_verdict,
                progress=round(finished / total, 4)
                if total
                else (1.0 if batch.status == "completed" else 0.0),
            ),
            first_errors=first_errors,
        )

    def list(self, *, owner: str, limit: int = 50, cursor: str | None = None) -> BatchPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", code="invalid_limit")
        query = select(Batch).where(Batch.owner == owner)
        with session_scope(self.sessions) as session:
            page, next_cursor = keyset_page(session, query, Batch, limit=limit, cursor=cursor)
            return BatchPage(batches=[self._read(session, b) for b in page], next_cursor=next_cursor)

    def list_jobs(
        self,
        *,
        owner: str,
        batch_id: str,
        limit: int = 50,
        cursor: str | None = None,
        verdict: str | None = None,
        base_url: str = "",
    ) -> BatchJobPage:
        """The batch's jobs in item order, optionally of one verdict."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", code="invalid_limit")
        with session_scope(self.sessions) as session:
            batch = self._load(session, owner, batch_id)
            query = select(Job).where(Job.batch_id == batch.id)
            if verdict:
                query = query.where(Job.verdict == verdict)
            if cursor:
                query = query.where(Job.batch_index > decode_index(cursor))
            found = session.scalars(query.order_by(Job.batch_index).limit(limit + 1)).all()
            page = found[:limit]
            next_cursor = encode_index(page[-1].batch_index) if len(found) > limit else None
            return BatchJobPage(jobs=[self.jobs.read_row(j, base_url) for j in page], next_cursor=next_cursor)

    def export(self, *, owner: str, batch_id: str, base_url: str = "") -> Iterator[JobRead]:
        """Every job of the batch in item order, read in pages: constant memory at any size."""
        with session_scope(self.sessions) as session:
            batch_key = self._load(session, owner, batch_id).id
        last = -1
        while True:
            with session_scope(self.sessions) as session:
                rows = session.scalars(
                    select(Job)
                    .where(Job.batch_id == batch_key, Job.batch_index > last)
                    .order_by(Job.batch_index)
                    .limit(CHUNK)
                ).all()
                reads = [self.jobs.read_row(job, base_url) for job in rows]
            if not reads:
                return
            yield from reads
            last = rows[-1].batch_index  # type: ignore[assignment]

    def write_output(self, *, batch_id: uuid.UUID) -> None:
        """Write a completed batch's results as JSONL to its `output` location, via a spooled
        file so memory stays flat whatever the batch size."""
        with session_scope(self.sessions) as session:
            batch = session.get(Batch, batch_id)
            if batch is None or not batch.output:
                return
            owner, output = batch.owner, dict(batch.output)
        with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
            for job in self.export(owner=owner, batch_id=str(batch_id)):
                spool.write(job.model_dump_json(exclude_unset=True).encode() + b"\n")
            spool.seek(0)
            with storage_errors_mapped():
                self.jobs.store.upload(
                    bucket=output["bucket"],
                    key=output["key"],
                    fileobj=spool,
                    content_type="application/x-ndjson",
                )
        log.info("batch %s results written to s3://%s/%s", batch_id, output["bucket"], output["key"])

    # -- cancelling ------------------------------------------------------------------------------

    def cancel(self, *, owner: str, batch_id: str) -> BatchRead:
        """Queued items will not be processed; finished and running ones keep their result."""
        with session_scope(self.sessions) as session:
            batch = self._load(session, owner, batch_id)
            if batch.status in ("pending", "running"):
                session.execute(
                    update(Job)
                    .where(Job.batch_id == batch.id, Job.status == "queued")
                    .values(status="cancelled", finished_at=utcnow())
                )
                batch.status, batch.finished_at = "cancelled", utcnow()
            return self._read(session, batch)


def encode_index(index: int | None) -> str:
    return str(index)


def decode_index(cursor: str) -> int:
    try:
        return int(cursor)
    except ValueError as exc:
        raise InvalidInput("invalid cursor", code="invalid_cursor") from exc
