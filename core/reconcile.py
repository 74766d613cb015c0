"""The reconciler: Postgres is the truth about every job, the broker only a delivery channel.
Jobs the broker lost (queued too long) and jobs whose worker died (running, no heartbeat) are
sent again; a job that has started `max_attempts` times fails `worker_lost`."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from unmask.core.jobs import JobService
from unmask.core.metrics import RECONCILER_ACTIONS
from unmask.storage.db import session_scope
from unmask.storage.models import Job, utcnow

log = logging.getLogger(__name__)

BATCH = 500


def lost_ids(jobs: JobService, session: Session) -> int:
    """How many queued jobs the broker no longer holds: queued rows beyond the broker's depth.
    A long backlog is not a loss; re-sending it would only multiply the queue."""
    try:
        depth = jobs.queue.depth()
    except Exception:  # the broker is down: nothing can be sent now anyway
        return 0
    queued = session.scalar(select(func.count()).where(Job.status == "queued")) or 0
    return max(0, queued - depth)


def reconcile(jobs: JobService) -> dict[str, int]:
    """One pass; returns how many jobs were re-sent, given up, and idempotency answers purged."""
    settings = jobs.settings
    now = utcnow()
    silent_since = now - timedelta(seconds=settings.heartbeat_deadline_seconds)
    queued_since = now - timedelta(seconds=settings.queued_deadline_seconds)
    resend: list[uuid.UUID] = []
    lost = 0
    with session_scope(jobs.sessions) as session:
        dead = session.scalars(
            select(Job)
            .where(Job.status == "running", func.coalesce(Job.heartbeat_at, Job.started_at) < silent_since)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for job in dead:
            if job.attempts >= settings.max_attempts:
                job.status, job.finished_at = "failed", now
                job.error_code = "worker_lost"
                job.error_message = f"the worker stopped during each of {job.attempts} attempts"
                lost += 1
            else:
                job.status = "queued"
                resend.append(job.id)
        stuck = session.scalars(
            select(Job)
            .where(Job.status == "queued", func.coalesce(Job.enqueued_at, Job.created_at) < queued_since)
            .order_by(Job.created_at)
            .limit(min(BATCH, lost_ids(jobs, session)))
            .with_for_update(skip_locked=True)
        ).all()
        resend.extend(job.id for job in stuck)
        for job in [*dead, *stuck]:
            if job.status == "queued":
                job.enqueued_at = now
    sent = 0
    for job_id in resend:
        try:
            jobs.queue.enqueue_detect(job_id)
            sent += 1
        except Exception:  # the broker is down: the next pass sends them again
            log.warning("reconciler could not enqueue job %s; will retry", job_id, exc_info=True)
            break
    with session_scope(jobs.sessions) as session:
        overdue = jobs.webhooks.overdue(session)
    jobs.webhooks.dispatch(overdue)
    purged = jobs.idempotency.purge()
    expired = jobs.purge_older_than(days=settings.retention_days) if settings.retention_days else 0
    counts = {
        "resent": sent,
        "worker_lost": lost,
        "idempotency_purged": purged,
        "expired": expired,
        "webhooks_resent": len(overdue),
    }
    for action, count in counts.items():
        RECONCILER_ACTIONS.labels(action).inc(count)
    if sent or lost:
        log.info("reconciler: %s", counts)
    return counts
