"""Idempotency-Key: the first answer to a request is replayed for 24 hours to the same tenant
sending the same key with the same request; another request under that key is a conflict."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from unmask.core.exceptions import Conflict, InvalidInput
from unmask.storage.db import session_scope
from unmask.storage.models import IdempotencyKey, utcnow

KEEP_FOR = timedelta(hours=24)
IN_PROGRESS = 0


def check_key(key: str) -> str:
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 printable characters", code="invalid_idempotency_key"
        )
    return key


class Idempotency:
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def run(
        self, *, tenant: str, key: str, fingerprint: str, create: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """The stored answer for (tenant, key), or `create()`'s, stored for next time."""
        check_key(key)
        stored = self._claim(tenant, key, fingerprint)
        if stored is not None:
            return stored
        try:
            response = create()
        except BaseException:
            self._forget(tenant, key)  # nothing was created: let a retry under this key run
            raise
        with session_scope(self.sessions) as session:
            row = session.get(IdempotencyKey, (tenant, key))
            if row is not None:
                row.status_code, row.response = 202, response
        return response

    def _claim(self, tenant: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        """None when this request may go ahead (a placeholder now holds the key)."""
        try:
            with session_scope(self.sessions) as session:
                session.execute(
                    delete(IdempotencyKey).where(
                        IdempotencyKey.tenant == tenant,
                        IdempotencyKey.key == key,
                        IdempotencyKey.created_at < utcnow() - KEEP_FOR,
                    )
                )
                row = session.get(IdempotencyKey, (tenant, key))
                if row is None:
                    session.add(
                        IdempotencyKey(
                            tenant=tenant,
                            key=key,
                            request_sha256=fingerprint,
                            status_code=IN_PROGRESS,
                            response={},
                        )
                    )
                    return None
                return self._replay(row, fingerprint)
        except IntegrityError:  # a concurrent request took the key first
            with session_scope(self.sessions) as session:
                row = session.scalar(
                    select(IdempotencyKey).where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == key)
                )
                if row is None:
                    raise Conflict("retry the request", code="idempotency_key_in_use") from None
                return self._replay(row, fingerprint)

    @staticmethod
    def _replay(row: IdempotencyKey, fingerprint: str) -> dict[str, Any]:
        if row.request_sha256 != fingerprint:
            raise Conflict(
                "this Idempotency-Key was used for a different request", code="idempotency_key_reused"
            )
        if row.status_code == IN_PROGRESS:
            raise Conflict(
                "the first request with this Idempotency-Key is still being processed",
                code="idempotency_key_in_use",
            )
        return dict(row.response)

    def _forget(self, tenant: str, key: str) -> None:
        with session_scope(self.sessions) as session:
            session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.tenant == tenant,
                    IdempotencyKey.key == key,
                    IdempotencyKey.status_code == IN_PROGRESS,
                )
            )

    def purge(self) -> int:
        """Drop answers older than 24 hours; returns how many."""
        with session_scope(self.sessions) as session:
            result = session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEEP_FOR)
            )
            return result.rowcount or 0  # type: ignore[attr-defined]
