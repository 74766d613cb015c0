"""Who is asking: every route but the public ones needs `Authorization: Bearer <key>`; the key
names the tenant that every job belongs to. Rate limits count per key (Flask-Limiter)."""

from __future__ import annotations

from flask import Flask, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from unmask.core import logs
from unmask.core.keys import KeyService, Principal

# Endpoints anyone may call: probes, the API description, and signed object links (the
# signature is the credential).
PUBLIC = {"health.healthz", "health.readyz", "openapi", "objects.get_object", "metrics"}


def principal() -> Principal:
    return g.principal


def tenant() -> str:
    return principal().tenant


def rate_limit_key() -> str:
    found = g.get("principal")
    return f"key:{found.key_id}" if found else f"ip:{get_remote_address()}"


def install(app: Flask, keys: KeyService, *, rate_limit: str, storage_uri: str) -> Limiter:
    @app.before_request
    def _authenticate() -> None:
        logs.clear()
        if request.endpoint in PUBLIC or request.endpoint is None or request.blueprint == "dashboard":
            return  # the dashboard signs in with a key once and keeps a server-side session
        g.principal = keys.authenticate(request.headers.get("Authorization"))
        logs.bind(tenant=g.principal.tenant)

    limiter = Limiter(
        key_func=rate_limit_key,
        app=app,
        storage_uri=storage_uri,
        default_limits=[rate_limit],
        headers_enabled=True,
        # If Redis is unreachable, count in this process (and log it) rather than refuse service.
        in_memory_fallback_enabled=True,
        default_limits_exempt_when=lambda: request.endpoint in PUBLIC,
    )
    return limiter
