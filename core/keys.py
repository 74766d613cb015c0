"""API keys and tenants: who is asking, and which S3 locations their jobs may read."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from unmask.core.exceptions import InvalidInput, NotFound, SourceNotAllowed, Unauthorized
from unmask.core.intake import check_bucket_name
from unmask.storage.db import session_scope
from unmask.storage.models import ApiKey, Tenant, utcnow

TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KEY_PREFIX = "um_"


@dataclass(frozen=True)
class Principal:
    """The tenant a request acts for, and the key it used (rate limits count per key)."""

    tenant: str
    key_id: uuid.UUID


class KeyRead(BaseModel):
    id: uuid.UUID
    tenant: str
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_tenant_name(name: str) -> str:
    if not TENANT_NAME.match(name):
        raise InvalidInput(
            "a tenant name is 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit",
            code="invalid_tenant",
        )
    return name


def own_upload_prefix(tenant: str) -> str:
    """Where a tenant's uploads live in the service's bucket; always readable by its jobs."""
    return f"uploads/{tenant}/"


class KeyService:
    """Keys, stored as SHA-256 digests. `authenticate` remembers a known key for
    `cache_seconds` (per process), so a busy API does not look every request's key up: a key
    revoked by another process stops working within that time; one revoked here, at once."""

    CACHE_LIMIT = 10_000  # keys remembered at most; the cache starts over when full

    def __init__(self, *, sessions: sessionmaker[Session], cache_seconds: float = 0.0) -> None:
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self.known: dict[str, tuple[Principal, float]] = {}

    def create(self, *, tenant: str, name: str | None = None) -> tuple[KeyRead, str]:
        """A new key; the secret is returned once and stored only as its SHA-256."""
        check_tenant_name(tenant)
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with session_scope(self.sessions) as session:
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(name=tenant, s3_sources=[]))
            row = ApiKey(tenant=tenant, name=name, prefix=secret[:11], secret_sha256=digest(secret))
            session.add(row)
            session.flush()
            return KeyRead.model_validate(row, from_attributes=True), secret

    def revoke(self, *, key: str) -> KeyRead:
        """Revoke by id or by the prefix shown in `list`."""
        with session_scope(self.sessions) as session:
            query = select(ApiKey).where(ApiKey.prefix == key)
            with contextlib.suppress(ValueError):  # an id as well as a prefix
                query = select(ApiKey).where(or_(ApiKey.prefix == key, ApiKey.id == uuid.UUID(key)))
            rows = session.scalars(query).all()
            if len(rows) != 1:
                raise NotFound(f"no single key matches {key!r}")
            rows[0].revoked_at = rows[0].revoked_at or utcnow()
            self.known.pop(rows[0].secret_sha256, None)
            return KeyRead.model_validate(rows[0], from_attributes=True)

    def list(self, *, tenant: str | None = None) -> list[KeyRead]:
        query = select(ApiKey).order_by(ApiKey.tenant, ApiKey.created_at)
        if tenant:
            query = query.where(ApiKey.tenant == tenant)
        with session_scope(self.sessions) as session:
            return [KeyRead.model_validate(row, from_attributes=True) for row in session.scalars(query)]

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization: Bearer …` header."""
        scheme, _, secret = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("send an API key as `Authorization: Bearer <key>`")
        hashed = digest(secret.strip())
        remembered = self.known.get(hashed)
        if remembered is not None and remembered[1] > time.monotonic():
            return remembered[0]
        with session_scope(self.sessions) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.secret_sha256 == hashed))
            if row is None or row.revoked_at is not None:
                self.known.pop(hashed, None)
                raise Unauthorized("the API key is unknown or revoked")
            found = Principal(row.tenant, row.id)
        if self.cache_seconds > 0:
            if len(self.known) >= self.CACHE_LIMIT:
                self.known.clear()
            self.known[hashed] = (found, time.monotonic() + self.cache_seconds)
        return found


class TenantService:
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def allow_s3(self, *, tenant: str, location: str) -> list[str]:
        """Let the tenant's jobs read `bucket` or `bucket/prefix`; returns all it may read."""
        check_tenant_name(tenant)
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        check_bucket_name(bucket)
        entry = f"{bucket}/{prefix}"
        with session_scope(self.sessions) as session:
            row = session.get(Tenant, tenant) or Tenant(name=tenant, s3_sources=[])
            session.add(row)
            if entry not in row.s3_sources:
                row.s3_sources = [*row.s3_sources, entry]
            return list(row.s3_sources)

    def set_max_batch_items(self, *, tenant: str, limit: int | None) -> None:
        check_tenant_name(tenant)
        with session_scope(self.sessions) as session:
            row = session.get(Tenant, tenant) or Tenant(name=tenant, s3_sources=[])
            session.add(row)
            row.max_batch_items = limit

    def max_batch_items(self, *, tenant: str, default: int) -> int:
        with session_scope(self.sessions) as session:
            row = session.get(Tenant, tenant)
            return row.max_batch_items if row is not None and row.max_batch_items else default

    def check_source(self, *, tenant: str, bucket: str, key: str, own_bucket: str) -> None:
        """Refuse, before any request to S3, a location the tenant may not read."""
        if bucket == own_bucket and key.startswith(own_upload_prefix(tenant)):
            return
        with session_scope(self.sessions) as session:
            row = session.get(Tenant, tenant)
            allowed = list(row.s3_sources) if row else []
        for entry in allowed:
            allowed_bucket, _, prefix = entry.partition("/")
            if bucket == allowed_bucket and key.startswith(prefix):
                return
        raise SourceNotAllowed(f"this key may not read s3://{bucket}/…; ask an operator to allow it")
