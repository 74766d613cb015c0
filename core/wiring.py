"""Concrete parts built from settings: the database session factory and the object store.
Entry points (API, worker, CLI) call these once and pass the results to the services."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from unmask.core.batches import BatchService
from unmask.core.jobs import JobService
from unmask.core.keys import KeyService
from unmask.core.ports import JobQueue
from unmask.core.reviews import ReviewService
from unmask.core.settings import Settings
from unmask.storage.db import make_engine, make_session_factory
from unmask.storage.errors import StorageUnavailable
from unmask.storage.objects import LocalStore, ObjectStore, S3Store

log = logging.getLogger(__name__)


def local_secret(settings: Settings) -> bytes:
    """The URL-signing secret: from settings, else one kept in the data folder."""
    if settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.data_dir) / ".secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def make_store(settings: Settings) -> ObjectStore:
    if settings.store == "s3":
        return S3Store(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
            secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    return LocalStore(settings.objects_dir, local_secret(settings))


def ensure_bucket(store: ObjectStore) -> None:
    """Create the S3 bucket for uploads and overlays if it does not exist yet. A store that is
    down is not fatal at start-up: readiness reports it, and jobs retry until it is back."""
    if isinstance(store, S3Store):
        try:
            store.ensure_bucket()
        except StorageUnavailable as exc:
            log.warning("object store unavailable at start-up, bucket not checked: %s", exc)


def make_sessions(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.resolved_database_url))


@dataclass
class Services:
    """What an entry point needs, built once."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: ObjectStore
    queue: JobQueue
    jobs: JobService
    keys: KeyService
    batches: BatchService
    reviews: ReviewService


def build_services(settings: Settings, *, queue: JobQueue, store: ObjectStore | None = None) -> Services:
    sessions = make_sessions(settings)
    store = store or make_store(settings)
    jobs = JobService(sessions=sessions, store=store, queue=queue, settings=settings)
    keys = KeyService(sessions=sessions, cache_seconds=settings.api_key_cache_seconds)
    return Services(
        settings,
        sessions,
        store,
        queue,
        jobs,
        keys,
        BatchService(jobs=jobs),
        ReviewService(jobs=jobs, keys=keys),
    )
