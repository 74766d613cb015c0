"""Liveness and readiness."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # noqa: ANN201
    return jsonify({"status": "ok"})


def check_database(svc) -> None:  # noqa: ANN001
    with svc.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def check_broker(svc) -> None:  # noqa: ANN001
    if svc.celery is None:
        return
    with svc.celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)


def check_store(svc) -> None:  # noqa: ANN001
    svc.store.ping()


@bp.get("/readyz")
def readyz():  # noqa: ANN201
    svc = current_app.extensions["unmask"]
    checks = {}
    for name, check in (("database", check_database), ("broker", check_broker), ("store", check_store)):
        try:
            check(svc)
            checks[name] = "ok"
        except Exception as exc:  # readiness reports every failure instead of raising
            checks[name] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
    ready = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    response.status_code = 200 if ready else 503
    return response
