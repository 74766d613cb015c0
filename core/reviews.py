"""Moderation: the review queue of flagged jobs, decisions with who and when, dashboard
sign-in, the health panel, and decisions exported as a labelled folder `unmask train` reads."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import and_, select
from sqlalchemy.orm import selectinload

from unmask.core.exceptions import InvalidInput, Unauthorized, storage_errors_mapped
from unmask.core.jobs import JobService
from unmask.core.keys import KeyService
from unmask.core.rows import utc
from unmask.core.schemas import JobRead
from unmask.storage.db import session_scope
from unmask.storage.models import DashboardSession, Job, Review, WebhookDelivery, WorkerSeen, utcnow

Decision = Literal["confirmed_fake", "real", "skip"]
DECISIONS = ("confirmed_fake", "real", "skip")
SESSION_HOURS = 12


@dataclass(frozen=True)
class SignedIn:
    tenant: str
    reviewer: str
    csrf_token: str


class Health(BaseModel):
    queue_depth: int | None
    workers: list[dict[str, Any]]
    recent_failures: list[dict[str, Any]]
    webhook_failures: list[dict[str, Any]]


class ReviewService:
    def __init__(self, *, jobs: JobService, keys: KeyService) -> None:
        self.jobs = jobs
        self.keys = keys
        self.sessions = jobs.sessions

    # -- signing in --------------------------------------------------------------------------------

    def sign_in(self, *, key: str) -> tuple[str, SignedIn]:
        """A server-side session for a valid API key; returns the cookie token and the session."""
        principal = self.keys.authenticate(f"Bearer {key.strip()}")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        reviewer = f"key {key.strip()[:11]}…"
        with session_scope(self.sessions) as session:
            session.add(
                DashboardSession(
                    token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                    tenant=principal.tenant,
                    reviewer=reviewer,
                    csrf_token=csrf,
                    expires_at=utcnow() + timedelta(hours=SESSION_HOURS),
                )
            )
        return token, SignedIn(principal.tenant, reviewer, csrf)

    def signed_in(self, token: str | None) -> SignedIn:
        if not token:
            raise Unauthorized("sign in with an API key")
        with session_scope(self.sessions) as session:
            row = session.get(DashboardSession, hashlib.sha256(token.encode()).hexdigest())
            if row is None or utc(row.expires_at) < utcnow():  # type: ignore[operator]
                raise Unauthorized("the session expired; sign in again")
            return SignedIn(row.tenant, row.reviewer, row.csrf_token)

    def sign_out(self, token: str) -> None:
        with session_scope(self.sessions) as session:
            row = session.get(DashboardSession, hashlib.sha256(token.encode()).hexdigest())
            if row is not None:
                session.delete(row)

    # -- reviewing ---------------------------------------------------------------------------------

    def record(self, *, owner: str, job_id: str, decision: str, note: str | None, reviewer: str) -> JobRead:
        if decision not in DECISIONS:
            raise InvalidInput(f"decision must be one of {', '.join(DECISIONS)}", code="invalid_decision")
        with session_scope(self.sessions) as session:
            job = self.jobs.owned(session, owner, job_id)
            review = job.review or Review(job_id=job.id, decision=decision, reviewer=reviewer)
            review.decision, review.note, review.reviewer = decision, (note or "")[:2000] or None, reviewer
            review.decided_at = utcnow()
            job.review = review
            session.flush()
            return self.jobs.read_row(job, self.jobs.settings.public_url)

    def queue(self, *, owner: str, limit: int = 50, base_url: str = "") -> list[JobRead]:
        """Flagged jobs (fake or uncertain) nobody has decided on, newest first."""
        with session_scope(self.sessions) as session:
            rows = session.scalars(
                select(Job)
                .options(selectinload(Job.faces))
                .outerjoin(Review, Review.job_id == Job.id)
                .where(Job.owner == owner, Job.verdict.in_(("fake", "uncertain")), Review.job_id.is_(None))
                .order_by(Job.created_at.desc())
                .limit(limit)
            ).all()
            return [self.jobs.read_row(j, base_url) for j in rows]

    def export_labelled(self, *, owner: str, out: Path) -> dict[str, int]:
        """Reviewed originals into out/real and out/fake, with manifest.jsonl: a folder
        `unmask train --data` reads. `skip` decisions are left out."""
        counts = {"real": 0, "fake": 0}
        with session_scope(self.sessions) as session:
            rows = session.execute(
                select(Job, Review)
                .join(Review, and_(Review.job_id == Job.id))
                .where(Job.owner == owner, Review.decision.in_(("confirmed_fake", "real")))
                .order_by(Review.decided_at)
            ).all()
            items = [
                (j.id, j.source, j.input_bucket, j.input_key, r.decision, r.reviewer, r.note) for j, r in rows
            ]
        for label in counts:
            (out / label).mkdir(parents=True, exist_ok=True)
        with (out / "manifest.jsonl").open("w") as manifest:
            for job_id, source, bucket, key, decision, reviewer, note in items:
                label = "fake" if decision == "confirmed_fake" else "real"
                with storage_errors_mapped():
                    data = self.jobs.store.get(key, bucket=None if source == "upload" else bucket)
                path = out / label / f"reviewed__{job_id}{Path(key).suffix or '.jpg'}"
                path.write_bytes(data)
                counts[label] += 1
                line = {
                    "file": str(path.relative_to(out)),
                    "label": label,
                    "job_id": str(job_id),
                    "reviewer": reviewer,
                }
                manifest.write(json.dumps({**line, "note": note}) + "\n")
        return counts

    # -- the health panel -------------------------------------------------------------------------

    def health(self, *, owner: str) -> Health:
        try:
            depth: int | None = self.jobs.queue.depth()
        except Exception:  # the panel shows the broker as unreachable
            depth = None
        since = utcnow() - timedelta(minutes=2)
        with session_scope(self.sessions) as session:
            workers = session.scalars(select(WorkerSeen).where(WorkerSeen.last_seen > since)).all()
            failed = session.scalars(
                select(Job)
                .where(Job.owner == owner, Job.status == "failed")
                .order_by(Job.finished_at.desc())
                .limit(5)
            ).all()
            hooks = session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.owner == owner, WebhookDelivery.status == "failed")
                .order_by(WebhookDelivery.finished_at.desc())
                .limit(5)
            ).all()
            return Health(
                queue_depth=depth,
                workers=[
                    {"name": w.name, "queue": w.queue, "device": w.device, "last_seen": utc(w.last_seen)}
                    for w in workers
                ],
                recent_failures=[
                    {"id": str(j.id), "code": j.error_code, "at": utc(j.finished_at)} for j in failed
                ],
                webhook_failures=[
                    {"url": d.url, "event": d.event_type, "at": utc(d.finished_at)} for d in hooks
                ],
            )


def report_worker(jobs: JobService, *, queue: str, device: str) -> None:
    """This process is alive: upsert its row in `workers`."""
    name = f"{socket.gethostname()}-{os.getpid()}"
    with session_scope(jobs.sessions) as session:
        row = session.get(WorkerSeen, name) or WorkerSeen(name=name, queue=queue, device=device)
        row.queue, row.device, row.last_seen = queue, device, utcnow()
        session.add(row)
