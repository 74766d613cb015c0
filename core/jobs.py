"""The job service: the job lifecycle from submission to stored result, and the only code that
changes job rows. It reaches the database, the object store, the queue and the detector through
what it is given, so it runs the same under the API, the worker and the tests."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from unmask.core import rows
from unmask.core.exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    QueueUnavailable,
    StorageUnavailable,
    UnmaskError,
    storage_errors_mapped,
)
from unmask.core.idempotency import Idempotency
from unmask.core.intake import check_metadata, check_s3_source, sniff_image
from unmask.core.keys import TenantService
from unmask.core.logs import log_context
from unmask.core.metrics import JOB_OUTCOMES, STAGE_SECONDS
from unmask.core.pagination import keyset_page
from unmask.core.ports import Detector, JobQueue
from unmask.core.results import ImageResult, OverlayLocations, write_overlays
from unmask.core.schemas import JobPage, JobRead
from unmask.core.settings import Settings
from unmask.core.webhooks import WebhookService
from unmask.storage.db import session_scope
from unmask.storage.models import Batch, Face, Job, utcnow
from unmask.storage.objects import ObjectStore, new_key

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")

BatchItem = tuple[uuid.UUID, int]  # a batch id and the position in it
MAX_PAGE = 200


@dataclass(frozen=True)
class JobInput:
    """A claimed job: its tenant, and where its image is (bucket None: the store's own)."""

    owner: str
    bucket: str | None
    key: str


def parse_job_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound("job not found") from exc


# A finished job's id, result and the object keys of its overlays, as record_results takes them.
Recorded = tuple[uuid.UUID, ImageResult, OverlayLocations]
# What record_results says of each: None when recorded, NotFound when the job is gone.
Outcomes = list[NotFound | None]


class JobService:
    """Submit, start, record, fail, get and list jobs; run one job's detection."""

    def __init__(
        self, *, sessions: sessionmaker[Session], store: ObjectStore, queue: JobQueue, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.queue = queue
        self.settings = settings
        self.tenants = TenantService(sessions=sessions)
        self.idempotency = Idempotency(sessions=sessions)
        self.webhooks = WebhookService(sessions=sessions, queue=queue, settings=settings)
        # Set by the batch service: the public shape of a batch, for batch.completed events.
        self.batch_reader: Callable[[Session, Batch], BaseModel] | None = None
        # Set by a batch-path worker: hands a finished job's result to a group commit (a
        # Batcher over record_results) and returns its outcome; None: one transaction per job.
        self.recorder: Callable[[Recorded], NotFound | None] | None = None

    # -- submission (API) ---------------------------------------------------------------------

    def submit_upload(
        self,
        *,
        owner: str,
        data: bytes,
        filename: str | None,
        metadata: Any = None,
        base_url: str = "",
        idempotency_key: str | None = None,
        batch: BatchItem | None = None,
        webhook_url: str | None = None,
    ) -> JobRead:
        """Store the uploaded bytes, record a queued job, enqueue its id."""
        ext = sniff_image(data, self.settings.max_upload_bytes, self.settings.max_pixels)
        meta = check_metadata(metadata)
        sha256 = hashlib.sha256(data).hexdigest()
        name = (filename or "")[:255] or None
        callback = self.webhooks.check_callback(owner=owner, url=webhook_url)

        def create() -> JobRead:
            job_id = uuid.uuid4()
            key = new_key(f"uploads/{owner}", job_id, f"original.{ext}")
            with storage_errors_mapped():
                self.store.put(key, data, f"image/{'jpeg' if ext == 'jpg' else ext}")
            job = Job(
                id=job_id,
                owner=owner,
                source="upload",
                input_bucket=self.store.bucket,
                input_key=key,
                input_filename=name,
                input_sha256=sha256,
                metadata_=meta,
                webhook_url=callback,
            )
            return self._create_and_enqueue(job, base_url, batch)

        request = {"upload": sha256, "filename": name, "metadata": meta, "webhook_url": callback}
        return self._once(owner, idempotency_key, request, create)

    def submit_s3(
        self,
        *,
        owner: str,
        bucket: str,
        key: str,
        metadata: Any = None,
        base_url: str = "",
        idempotency_key: str | None = None,
        batch: BatchItem | None = None,
        webhook_url: str | None = None,
    ) -> JobRead:
        """Record a job for an object already in S3; the worker reads it from there. Names are
        checked by S3's rules and against what the tenant may read, before any request to S3."""
        if not self.store.reads_other_buckets:
            raise InvalidInput(
                "S3 sources need the S3 object store (UNMASK_STORE=s3)", code="s3_not_configured"
            )
        check_s3_source(bucket, key)
        self.tenants.check_source(tenant=owner, bucket=bucket, key=key, own_bucket=self.store.bucket)
        meta = check_metadata(metadata)
        callback = self.webhooks.check_callback(owner=owner, url=webhook_url)

        def create() -> JobRead:
            job = Job(
                owner=owner,
                source="s3",
                input_bucket=bucket,
                input_key=key,
                input_filename=key.rsplit("/", 1)[-1][:255],
                metadata_=meta,
                webhook_url=callback,
            )
            return self._create_and_enqueue(job, base_url, batch)

        request = {"s3": [bucket, key], "metadata": meta, "webhook_url": callback}
        return self._once(owner, idempotency_key, request, create)

    def _once(
        self, owner: str, idempotency_key: str | None, request: dict[str, Any], create: Callable[[], JobRead]
    ) -> JobRead:
        """Run `create`, or replay its first answer for a repeated Idempotency-Key."""
        if idempotency_key is None:
            return create()
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        answer = self.idempotency.run(
            tenant=owner,
            key=idempotency_key,
            fingerprint=fingerprint,
            create=lambda: create().model_dump(mode="json", exclude_unset=True),
        )
        return JobRead.model_validate(answer)

    def _create_and_enqueue(self, job: Job, base_url: str, batch: BatchItem | None = None) -> JobRead:
        job.status, job.attempts, job.enqueued_at = "queued", 0, utcnow()
        if batch is not None:
            job.batch_id, job.batch_index = batch
        with session_scope(self.sessions) as session:
            session.add(job)
            session.flush()
            body = self.read_row(job, base_url)
        try:
            self.queue.enqueue_detect(job.id)
        except Exception as exc:
            log.exception("could not enqueue job %s", job.id)
            self.fail(
                job_id=job.id, code="queue_unavailable", message="the job queue was unreachable; submit again"
            )
            if batch is not None:  # the reconciler sends it once the broker is back
                return body
            raise QueueUnavailable("the job queue is unreachable; try again shortly") from exc
        return body

    # -- reading (API) --------------------------------------------------------------------------

    def read_row(self, job: Job, base_url: str) -> JobRead:
        """The public shape of a job row, with signed overlay URLs."""
        expires = self.settings.url_expiry_seconds

        def url_for(key: str | None) -> str | None:
            return self.store.url(key, expires, base_url) if key else None

        return rows.job_read(job, url_for, expires)

    @staticmethod
    def owned(session: Session, owner: str, job_id: str, *, lock: bool = False) -> Job:
        """The tenant's job; another tenant's id is as unknown as a made-up one."""
        query = (
            select(Job)
            .options(selectinload(Job.faces))
            .where(Job.id == parse_job_id(job_id), Job.owner == owner)
        )
        job = session.scalar(query.with_for_update() if lock else query)
        if job is None:
            raise NotFound("job not found")
        return job

    def get(self, *, owner: str, job_id: str, base_url: str = "") -> JobRead:
        with session_scope(self.sessions) as session:
            return self.read_row(self.owned(session, owner, job_id), base_url)

    def list(
        self,
        *,
        owner: str,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        base_url: str = "",
    ) -> JobPage:
        """Newest first, with the cursor of the next page (None at the end)."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", code="invalid_status")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", code="invalid_limit")
        query = select(Job).options(selectinload(Job.faces)).where(Job.owner == owner)
        if status:
            query = query.where(Job.status == status)
        with session_scope(self.sessions) as session:
            page, next_cursor = keyset_page(session, query, Job, limit=limit, cursor=cursor)
            return JobPage(jobs=[self.read_row(job, base_url) for job in page], next_cursor=next_cursor)

    def delete(self, *, owner: str, job_id: str) -> None:
        """Remove a finished or queued job: its row, its faces, its upload and its overlays."""
        with session_scope(self.sessions) as session:
            job = self.owned(session, owner, job_id)
            if job.status == "running":
                raise Conflict("the job is running; delete it once it has finished", code="job_running")
            self._delete_objects(job)
            session.delete(job)

    def purge_older_than(self, *, days: float, limit: int = 500) -> int:
        """Delete finished jobs that finished more than `days` ago (retention); returns how many."""
        cutoff = utcnow() - timedelta(days=days)
        with session_scope(self.sessions) as session:
            old = session.scalars(
                select(Job)
                .options(selectinload(Job.faces))
                .where(Job.status.in_(FINISHED), Job.finished_at < cutoff)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for job in old:
                self._delete_objects(job)
                session.delete(job)
            return len(old)

    def _delete_objects(self, job: Job) -> None:
        keys = [job.overlay_key, *(face.overlay_key for face in job.faces)]
        if job.source == "upload":
            keys.append(job.input_key)
        with storage_errors_mapped():
            for key in filter(None, keys):
                self.store.delete(key)

    def search(
        self,
        *,
        owner: str,
        status: str | None = None,
        verdict: str | None = None,
        batch_id: str | None = None,
        since: date | None = None,
        text: str | None = None,
        limit: int = 100,
        base_url: str = "",
    ) -> Sequence[JobRead]:
        """Jobs for the dashboard, newest first: filters, and `text` matching an id or metadata."""
        query = select(Job).options(selectinload(Job.faces)).where(Job.owner == owner)
        if status:
            query = query.where(Job.status == status)
        if verdict:
            query = query.where(Job.verdict == verdict)
        if batch_id:
            try:
                query = query.where(Job.batch_id == uuid.UUID(batch_id))
            except ValueError as exc:
                raise InvalidInput("batch must be a batch id", code="invalid_batch") from exc
        if since:
            query = query.where(Job.created_at >= datetime(since.year, since.month, since.day, tzinfo=UTC))
        if text:
            term = f"%{text.strip()}%"
            query = query.where(
                or_(cast(Job.id, String).ilike(term), cast(Job.metadata_, String).ilike(term))
            )
        with session_scope(self.sessions) as session:
            rows = session.scalars(query.order_by(Job.created_at.desc()).limit(limit)).all()
            return [self.read_row(job, base_url) for job in rows]

    def original_url(self, *, owner: str, job_id: str, base_url: str = "") -> str | None:
        """A signed link to the submitted image, when it is in the service's own store."""
        with session_scope(self.sessions) as session:
            job = self.owned(session, owner, job_id)
            if job.source != "upload":
                return None
            return self.store.url(job.input_key, self.settings.url_expiry_seconds, base_url)

    # -- the lifecycle (worker) -----------------------------------------------------------------

    def start(self, *, job_id: uuid.UUID) -> JobInput | None:
        """Mark a queued job running and count the attempt. None when it is unknown, finished,
        or running elsewhere: a repeated delivery never runs a job twice at once."""
        with session_scope(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status != "queued":
                return None
            job.status, job.started_at = "running", utcnow()
            job.heartbeat_at = job.started_at
            job.attempts += 1
            job.error_code = job.error_message = None
            return JobInput(job.owner, None if job.source == "upload" else job.input_bucket, job.input_key)

    def release(self, *, job_id: uuid.UUID) -> None:
        """Hand a running job back to the queue (a retry after an outage, a worker stopping)."""
        with session_scope(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is not None and job.status == "running":
                job.status, job.enqueued_at = "queued", utcnow()

    def heartbeat(self, *, job_id: uuid.UUID) -> None:
        """The worker holding the job is alive."""
        with session_scope(self.sessions) as session:
            session.execute(
                update(Job).where(Job.id == job_id, Job.status == "running").values(heartbeat_at=utcnow())
            )

    def record_result(self, *, job_id: uuid.UUID, result: ImageResult, overlays: OverlayLocations) -> None:
        """Store the result and faces, replacing any from an earlier delivery of the same job."""
        failure = self.record_results([(job_id, result, overlays)])[0]
        if failure is not None:
            raise failure

    def record_results(self, items: Sequence[Recorded]) -> Outcomes:
        """record_result for several jobs in one transaction (a batch-path worker's jobs that
        finish together): one commit for all of them, their faces and their events. A job
        deleted meanwhile gets NotFound and the others are recorded; any other error rolls the
        whole transaction back and is raised, so each job's task retries or is taken back. Rows
        are locked in job-id order, so two workers' groups cannot deadlock."""
        outcomes: Outcomes = [None] * len(items)
        settled: list[tuple[Sequence[uuid.UUID], uuid.UUID | None]] = []
        with session_scope(self.sessions) as session:
            for index in sorted(range(len(items)), key=lambda i: items[i][0]):
                job_id, result, overlays = items[index]
                job = session.get(Job, job_id, with_for_update=True)
                if job is None:
                    outcomes[index] = NotFound("job not found")
                    continue
                session.execute(delete(Face).where(Face.job_id == job_id))
                for face in rows.face_rows(result, overlays):
                    face.job_id = job_id
                    session.add(face)
                rows.apply_result(job, result, overlays)
                job.status, job.finished_at = "succeeded", utcnow()
                settled.append((self._announce(session, job, "job.succeeded"), job.batch_id))
        for deliveries, batch_id in settled:
            self.webhooks.dispatch(deliveries)
            self.settle_batch(batch_id)
        return outcomes

    def _record(self, item: Recorded) -> None:
        """Record a finished job through the group commit when there is one, else on its own."""
        failure = self.recorder(item) if self.recorder is not None else self.record_results([item])[0]
        if failure is not None:
            raise failure

    def fail(self, *, job_id: uuid.UUID, code: str, message: str) -> None:
        with session_scope(self.sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return
            job.status, job.finished_at = "failed", utcnow()
            job.error_code, job.error_message = code, message[:2000]
            batch_id = job.batch_id
            deliveries = self._announce(session, job, "job.failed")
        self.webhooks.dispatch(deliveries)
        self.settle_batch(batch_id)

    def _announce(self, session: Session, job: Job, event_type: str) -> Sequence[uuid.UUID]:
        """The job's event, in the transaction that finished it (the outbox)."""
        session.flush()
        session.expire(job, ["faces"])
        body = self.read_row(job, self.settings.public_url)
        return self.webhooks.emit(
            session, owner=job.owner, event_type=event_type, data=body, url=job.webhook_url
        )

    def cancel(self, *, owner: str, job_id: str, base_url: str = "") -> JobRead:
        """A queued job will not be processed; a running or finished one cannot be cancelled."""
        with session_scope(self.sessions) as session:
            job = self.owned(session, owner, job_id, lock=True)
            if job.status != "queued":
                raise Conflict(
                    f"the job is {job.status}; only queued jobs can be cancelled", code="not_cancellable"
                )
            job.status, job.finished_at = "cancelled", utcnow()
            body, batch_id = self.read_row(job, base_url), job.batch_id
        self.settle_batch(batch_id)
        return body

    def record_refused(
        self, *, owner: str, batch: BatchItem, bucket: str, key: str, error: UnmaskError
    ) -> None:
        """A batch item refused before it was queued (a location the tenant may not read, bad
        metadata): recorded as a failed job, so the batch accounts for every item."""
        with session_scope(self.sessions) as session:
            session.add(
                Job(
                    owner=owner,
                    status="failed",
                    source="s3",
                    input_bucket=bucket[:255],
                    input_key=key[:1024],
                    attempts=0,
                    batch_id=batch[0],
                    batch_index=batch[1],
                    error_code=error.code,
                    error_message=error.message[:2000],
                    finished_at=utcnow(),
                )
            )

    def finish_batch_if_done(self, session: Session, batch: Batch) -> bool:
        """Complete a running batch once none of its jobs is queued or running."""
        if batch.status != "running":
            return False
        open_jobs = session.scalar(
            select(func.count()).where(Job.batch_id == batch.id, Job.status.in_(("queued", "running")))
        )
        if open_jobs:
            return False
        batch.status, batch.finished_at = "completed", utcnow()
        log.info("batch %s completed", batch.id)
        return True

    def settle_batch(self, batch_id: uuid.UUID | None) -> None:
        """Complete the batch if its last job just finished: event, and output when asked."""
        if batch_id is None:
            return
        deliveries: Sequence[uuid.UUID] = ()
        with session_scope(self.sessions) as session:
            batch = session.get(Batch, batch_id, with_for_update=True)  # one finisher at a time
            completed = batch is not None and self.finish_batch_if_done(session, batch)
            wants_output = completed and batch is not None and bool(batch.output)
            if completed and batch is not None and self.batch_reader is not None:
                deliveries = self.webhooks.emit(
                    session,
                    owner=batch.owner,
                    event_type="batch.completed",
                    data=self.batch_reader(session, batch),
                    url=batch.webhook_url,
                )
        self.webhooks.dispatch(deliveries)
        if wants_output:
            self.queue.enqueue_export(batch_id)

    def detect(self, *, job_id: uuid.UUID, detector: Detector) -> str:
        """queued -> running -> succeeded | failed, returning the status it left the job in
        (`skipped` when it was unknown or finished). Store outages propagate for a retry."""
        source = self.start(job_id=job_id)
        if source is None:
            log.info("job %s is unknown or finished; nothing to do", job_id)
            return "skipped"
        # No session is open from here on: no connection is held through the model's work.
        with self._beating(job_id), log_context(job_id=str(job_id), tenant=source.owner):
            return self._run(job_id, source, detector)

    @contextmanager
    def _beating(self, job_id: uuid.UUID) -> Iterator[None]:
        """Heartbeats for the job while the block runs, so the reconciler can tell a slow job
        from a worker that died."""
        stop = threading.Event()
        # A job still running past the hard time limit is hung: stop vouching for it, so the
        # reconciler takes it back (under the solo pool Celery cannot enforce time limits).
        give_up = time.monotonic() + self.settings.task_time_limit

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_seconds) and time.monotonic() < give_up:
                try:
                    self.heartbeat(job_id=job_id)
                except Exception:  # a missed beat is retried on the next tick
                    log.warning("heartbeat for job %s failed", job_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"heartbeat-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _run(self, job_id: uuid.UUID, source: JobInput, detector: Detector) -> str:
        try:
            with STAGE_SECONDS.labels("fetch").time(), storage_errors_mapped():
                data = self.store.get(
                    source.key, bucket=source.bucket, max_bytes=self.settings.max_upload_bytes
                )
            with STAGE_SECONDS.labels("analyse").time():
                analysis = detector.analyse(data)
            with STAGE_SECONDS.labels("store").time(), storage_errors_mapped():
                placed = write_overlays(
                    analysis.overlays, lambda name, jpeg: self._put_overlay(source.owner, job_id, name, jpeg)
                )
        except StorageUnavailable:
            raise
        except UnmaskError as exc:
            return self._failed(job_id, exc.code, exc.message)
        except Exception as exc:
            log.exception("job %s: unexpected error", job_id)
            return self._failed(job_id, "internal_error", f"unexpected error: {type(exc).__name__}")
        with STAGE_SECONDS.labels("record").time():
            self._record((job_id, analysis.result, placed))
        JOB_OUTCOMES.labels("succeeded", "").inc()
        log.info(
            "job %s succeeded: %s, %d faces", job_id, analysis.result.verdict, len(analysis.result.faces)
        )
        return "succeeded"

    def _failed(self, job_id: uuid.UUID, code: str, message: str) -> str:
        log.info("job %s failed: %s", job_id, code)
        self.fail(job_id=job_id, code=code, message=message)
        JOB_OUTCOMES.labels("failed", code).inc()
        return "failed"

    def _put_overlay(self, owner: str, job_id: uuid.UUID, name: str, jpeg: bytes) -> str:
        # One key per job and overlay: a re-run after a crash overwrites what the dead attempt
        # wrote, so nothing is orphaned. The job id is random; URLs are signed.
        key = f"overlays/{owner}/{job_id}/{name}"
        self.store.put(key, jpeg, "image/jpeg")
        return key
