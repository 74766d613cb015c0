"""Liveness and readiness."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from flask_openapi3 import APIBlueprint, Tag

from unmask.api.schemas import Liveness, Readiness
from unmask.core.health import check_readiness

bp = APIBlueprint("health", __name__, abp_tags=[Tag(name="health")])


@bp.get("/healthz", summary="The process is up", responses={200: Liveness})
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get(
    "/readyz",
    summary="Database, broker and object store answer",
    responses={200: Readiness, 503: Readiness},
)
def readyz() -> Response:
    checks = check_readiness(current_app.extensions["unmask"])
    ready = all(v == "ok" for v in checks.values())
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    response.status_code = 200 if ready else 503
    return response
