"""Signed webhooks (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`,
made with the `standardwebhooks` library). Events are written to an outbox in the transaction
that causes them and delivered by their own task, with backoff and jitter inside a retry window;
every retry of one event carries the same `webhook-id`."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from unmask.core.exceptions import Conflict, InvalidInput, NotFound
from unmask.core.pagination import keyset_page
from unmask.core.ports import JobQueue
from unmask.core.rows import utc
from unmask.core.settings import Settings
from unmask.storage.db import session_scope
from unmask.storage.models import Tenant, WebhookDelivery, WebhookEndpoint, utcnow

log = logging.getLogger(__name__)

EventType = Literal["job.succeeded", "job.failed", "batch.completed"]
EVENTS: tuple[str, ...] = ("job.succeeded", "job.failed", "batch.completed")
MAX_RESPONSE_BYTES = 64 * 1024
METADATA_HOST = ipaddress.ip_address("169.254.169.254")


class EndpointCreate(BaseModel):
    url: str = Field(min_length=8, max_length=2048)
    events: list[EventType] = Field(default=["job.succeeded", "job.failed", "batch.completed"], min_length=1)


class EndpointRead(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    secret: str | None = Field(None, description="shown once, when created or rotated")


class DeliveryRead(BaseModel):
    id: uuid.UUID
    message_id: str
    event_type: str
    url: str
    endpoint_id: uuid.UUID | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = None
    finished_at: datetime | None = None
    log: list[dict[str, Any]] = Field(description="attempt, at, status_code, latency_ms, error")


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryRead]
    next_cursor: str | None = None


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str, allowed: Sequence[str]) -> None:
    """Refuse URLs that would reach loopback, link-local, private or metadata addresses,
    unless the allow-list names the host or a range holding the address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("a webhook URL is http(s)://host/…", code="invalid_webhook_url")
    host = parts.hostname
    if host in allowed:
        return
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"the webhook host {host!r} does not resolve", code="invalid_webhook_url") from exc
    networks = [ipaddress.ip_network(a, strict=False) for a in allowed if _is_network(a)]
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if any(address in net for net in networks):
            continue
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
            or address == METADATA_HOST
        ):
            raise InvalidInput(
                f"the webhook host {host!r} resolves to a non-public address ({address}); "
                "UNMASK_WEBHOOK_ALLOWED_HOSTS can allow it",
                code="webhook_url_not_allowed",
            )


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


class WebhookService:
    def __init__(self, *, sessions: sessionmaker[Session], queue: JobQueue, settings: Settings) -> None:
        self.sessions = sessions
        self.queue = queue
        self.settings = settings

    @property
    def allowed(self) -> list[str]:
        return [h.strip() for h in self.settings.webhook_allowed_hosts.split(",") if h.strip()]

    # -- endpoints -------------------------------------------------------------------------------

    def create_endpoint(self, *, owner: str, url: str, events: list[str]) -> EndpointRead:
        check_url(url, self.allowed)
        with session_scope(self.sessions) as session:
            row = WebhookEndpoint(
                owner=owner, url=url, events=list(dict.fromkeys(events)), secret=new_secret()
            )
            session.add(row)
            session.flush()
            return self._endpoint(row, with_secret=True)

    def list_endpoints(self, *, owner: str) -> list[EndpointRead]:
        with session_scope(self.sessions) as session:
            rows = session.scalars(
                select(WebhookEndpoint)
                .where(WebhookEndpoint.owner == owner)
                .order_by(WebhookEndpoint.created_at)
            )
            return [self._endpoint(r) for r in rows]

    def delete_endpoint(self, *, owner: str, endpoint_id: str) -> None:
        with session_scope(self.sessions) as session:
            session.delete(self._load_endpoint(session, owner, endpoint_id))

    def rotate_secret(self, *, owner: str, endpoint_id: str) -> EndpointRead:
        with session_scope(self.sessions) as session:
            row = self._load_endpoint(session, owner, endpoint_id)
            row.secret = new_secret()
            return self._endpoint(row, with_secret=True)

    def rotate_default_secret(self, *, owner: str) -> str:
        """The tenant's secret for per-request `webhook_url`s; shown once."""
        with session_scope(self.sessions) as session:
            tenant = session.get(Tenant, owner) or Tenant(name=owner, s3_sources=[])
            session.add(tenant)
            tenant.webhook_secret = new_secret()
            return tenant.webhook_secret

    def check_callback(self, *, owner: str, url: str | None) -> str | None:
        """A per-request `webhook_url`, checked: reachable by policy, and a secret to sign with."""
        if url is None:
            return None
        check_url(url, self.allowed)
        with session_scope(self.sessions) as session:
            tenant = session.get(Tenant, owner)
            if tenant is None or not tenant.webhook_secret:
                raise InvalidInput(
                    "a webhook_url needs a signing secret: POST /v1/webhooks/secret first",
                    code="webhook_secret_missing",
                )
        return url

    def _load_endpoint(self, session: Session, owner: str, endpoint_id: str) -> WebhookEndpoint:
        try:
            key = uuid.UUID(endpoint_id)
        except ValueError as exc:
            raise NotFound("webhook endpoint not found") from exc
        row = session.scalar(
            select(WebhookEndpoint).where(WebhookEndpoint.id == key, WebhookEndpoint.owner == owner)
        )
        if row is None:
            raise NotFound("webhook endpoint not found")
        return row

    @staticmethod
    def _endpoint(row: WebhookEndpoint, with_secret: bool = False) -> EndpointRead:
        return EndpointRead(
            id=row.id,
            url=row.url,
            events=list(row.events),
            created_at=utc(row.created_at),  # type: ignore[arg-type]
            disabled_at=utc(row.disabled_at),
            disabled_reason=row.disabled_reason,
            secret=row.secret if with_secret else None,
        )

    # -- the outbox ------------------------------------------------------------------------------

    def emit(
        self, session: Session, *, owner: str, event_type: str, data: BaseModel, url: str | None = None
    ) -> list[uuid.UUID]:
        """Write one delivery per receiver into the caller's transaction; send them with
        `dispatch` once it has committed."""
        payload = {
            "type": event_type,
            "timestamp": utcnow().isoformat(),
            "data": data.model_dump(mode="json", exclude_unset=True),
        }
        message_id = f"msg_{uuid.uuid4().hex}"
        endpoints = session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.owner == owner, WebhookEndpoint.disabled_at.is_(None)
            )
        ).all()
        targets: list[tuple[uuid.UUID | None, str]] = [
            (e.id, e.url) for e in endpoints if event_type in e.events
        ]
        if url:
            targets.append((None, url))
        ids = []
        for endpoint_id, target in targets:
            row = WebhookDelivery(
                message_id=message_id,
                owner=owner,
                event_type=event_type,
                payload=payload,
                endpoint_id=endpoint_id,
                url=target,
                status="pending",
                attempts=0,
                next_attempt_at=utcnow(),
                log=[],
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
        return ids

    def dispatch(self, delivery_ids: Sequence[uuid.UUID]) -> None:
        for delivery_id in delivery_ids:
            try:
                self.queue.enqueue_delivery(delivery_id)
            except Exception:  # the reconciler sends pending deliveries again
                log.warning("could not queue webhook delivery %s", delivery_id, exc_info=True)

    # -- delivering (worker) ---------------------------------------------------------------------

    def deliver(self, *, delivery_id: uuid.UUID) -> str:
        """One attempt; returns the delivery's status afterwards."""
        with session_scope(self.sessions) as session:
            row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if row is None or row.status != "pending":
                return row.status if row else "missing"
            secret = self._secret(session, row)
            if secret is None:
                self._finish(row, "failed", {"error": "the endpoint was disabled or its secret removed"})
                return "failed"
            row.attempts += 1
            attempt, url, message_id = row.attempts, row.url, row.message_id
            body = json.dumps(row.payload, separators=(",", ":"))
            created = utc(row.created_at)
        entry = self._post(url, message_id, secret, body)
        entry["attempt"] = attempt
        return self._record(delivery_id, entry, created)  # type: ignore[arg-type]

    def _secret(self, session: Session, row: WebhookDelivery) -> str | None:
        if row.endpoint_id is not None:
            endpoint = session.get(WebhookEndpoint, row.endpoint_id)
            return endpoint.secret if endpoint is not None and endpoint.disabled_at is None else None
        tenant = session.get(Tenant, row.owner)
        return tenant.webhook_secret if tenant is not None else None

    def _post(self, url: str, message_id: str, secret: str, body: str) -> dict[str, Any]:
        started, now = time.perf_counter(), utcnow()
        entry: dict[str, Any] = {
            "at": now.isoformat(),
            "status_code": None,
            "latency_ms": None,
            "error": None,
        }
        try:
            check_url(url, self.allowed)  # again: DNS may have changed since registration
            signature = Webhook(secret).sign(message_id, now, body)
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
                "user-agent": "Unmask-Webhooks/1",
            }
            with requests.post(
                url,
                data=body.encode(),
                headers=headers,
                timeout=self.settings.webhook_timeout_seconds,
                allow_redirects=False,
                stream=True,
            ) as response:
                response.raw.read(MAX_RESPONSE_BYTES)  # never more than this of the receiver's body
                entry["status_code"] = response.status_code
        except InvalidInput as exc:
            entry["error"] = exc.message
            entry["refused"] = True
        except requests.RequestException as exc:
            entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return entry

    def _record(self, delivery_id: uuid.UUID, entry: dict[str, Any], created: datetime) -> str:
        code = entry["status_code"]
        delay = None
        with session_scope(self.sessions) as session:
            row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if row is None:
                return "missing"
            if code is not None and 200 <= code < 300:
                self._finish(row, "delivered", entry)
            elif code == 410 or entry.get("refused"):
                self._finish(row, "failed", entry)
                if code == 410 and row.endpoint_id is not None:
                    endpoint = session.get(WebhookEndpoint, row.endpoint_id)
                    if endpoint is not None:
                        endpoint.disabled_at, endpoint.disabled_reason = (
                            utcnow(),
                            "the receiver answered 410 Gone",
                        )
            else:
                delay = self.backoff(row.attempts)
                window_ends = created + timedelta(seconds=self.settings.webhook_retry_window_seconds)
                if utcnow() + timedelta(seconds=delay) > window_ends:
                    self._finish(
                        row,
                        "failed",
                        {**entry, "error": (entry["error"] or f"HTTP {code}") + "; retry window over"},
                    )
                    delay = None
                else:
                    row.log = [*row.log, entry]
                    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
            status = row.status
        if delay is not None:
            self.queue.enqueue_delivery(delivery_id, countdown=delay)
        return status

    def backoff(self, attempts: int) -> float:
        """Exponential, capped at an hour, with ±20 % jitter so retries do not arrive in step."""
        base = min(self.settings.webhook_backoff_seconds * 2 ** (attempts - 1), 3600.0)
        return base * random.uniform(0.8, 1.2)

    @staticmethod
    def _finish(row: WebhookDelivery, status: str, entry: dict[str, Any]) -> None:
        row.status, row.finished_at, row.next_attempt_at = status, utcnow(), None
        row.log = [*row.log, entry]

    # -- the log ---------------------------------------------------------------------------------

    def list_deliveries(self, *, owner: str, limit: int = 50, cursor: str | None = None) -> DeliveryPage:
        if not 1 <= limit <= 200:
            raise InvalidInput("limit must be between 1 and 200", code="invalid_limit")
        query = select(WebhookDelivery).where(WebhookDelivery.owner == owner)
        with session_scope(self.sessions) as session:
            page, next_cursor = keyset_page(session, query, WebhookDelivery, limit=limit, cursor=cursor)
            return DeliveryPage(deliveries=[self._delivery(r) for r in page], next_cursor=next_cursor)

    def redeliver(self, *, owner: str, delivery_id: str) -> DeliveryRead:
        """Send a delivered or failed event again, under the same webhook-id."""
        try:
            key = uuid.UUID(delivery_id)
        except ValueError as exc:
            raise NotFound("delivery not found") from exc
        with session_scope(self.sessions) as session:
            row = session.scalar(
                select(WebhookDelivery).where(WebhookDelivery.id == key, WebhookDelivery.owner == owner)
            )
            if row is None:
                raise NotFound("delivery not found")
            if row.status == "pending":
                raise Conflict("the delivery is still being attempted", code="delivery_pending")
            row.status, row.finished_at, row.next_attempt_at = "pending", None, utcnow()
            row.created_at = utcnow()  # a new retry window
            read = self._delivery(row)
        self.queue.enqueue_delivery(key)
        return read

    @staticmethod
    def _delivery(row: WebhookDelivery) -> DeliveryRead:
        return DeliveryRead(
            id=row.id,
            message_id=row.message_id,
            event_type=row.event_type,
            url=row.url,
            endpoint_id=row.endpoint_id,
            status=row.status,  # type: ignore[arg-type]
            attempts=row.attempts,
            created_at=utc(row.created_at),  # type: ignore[arg-type]
            next_attempt_at=utc(row.next_attempt_at),
            finished_at=utc(row.finished_at),
            log=list(row.log),
        )

    def overdue(self, session: Session, *, grace_seconds: float = 60) -> list[uuid.UUID]:
        """Pending deliveries whose attempt is long overdue (their task was lost)."""
        due = utcnow() - timedelta(seconds=grace_seconds)
        rows = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at < due)
            .limit(500)
            .with_for_update(skip_locked=True)
        ).all()
        for row in rows:
            row.next_attempt_at = utcnow()
        return [r.id for r in rows]
