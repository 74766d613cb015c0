"""Job routes: parse -> one service call -> serialise."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from unmask.api.schemas import job_read, parse_create
from unmask.core import intake, jobs
from unmask.core.exceptions import InvalidInput
from unmask.storage.db import session_scope

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


def services():  # noqa: ANN201
    return current_app.extensions["unmask"]


def owner() -> str:
    # Tenancy arrives with API keys; until then every request acts for the default owner.
    return services().settings.default_owner


def render(job) -> dict:  # noqa: ANN001
    svc = services()
    base = svc.settings.public_url or request.host_url
    return job_read(job, svc.store, svc.settings.url_expiry_seconds, base)


@bp.post("")
def create_job():  # noqa: ANN201
    svc = services()
    body = parse_create(request)
    if body.data is not None:
        job = intake.submit_upload(
            svc.sessions,
            store=svc.store,
            queue=svc.queue,
            owner=owner(),
            data=body.data,
            filename=body.filename,
            max_bytes=svc.settings.max_upload_bytes,
            metadata=body.metadata,
        )
    else:
        job = intake.submit_s3(
            svc.sessions,
            store=svc.store,
            queue=svc.queue,
            owner=owner(),
            bucket=body.bucket,
            key=body.key,
            metadata=body.metadata,
        )
    response = jsonify(render(job))
    response.status_code = 202
    response.headers["Location"] = url_for("jobs.get_job", job_id=str(job.id))
    return response


@bp.get("/<job_id>")
def get_job(job_id: str):  # noqa: ANN201
    with session_scope(services().sessions) as session:
        job = jobs.get_job(session, owner=owner(), job_id=jobs.parse_job_id(job_id))
        return jsonify(render(job))


@bp.get("")
def list_jobs():  # noqa: ANN201
    unknown = set(request.args) - {"status", "limit", "cursor"}
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(sorted(unknown))}", code="unknown_field")
    try:
        limit = int(request.args.get("limit", 50))
    except ValueError as exc:
        raise InvalidInput("limit must be an integer", code="invalid_limit") from exc
    with session_scope(services().sessions) as session:
        page, cursor = jobs.list_jobs(
            session,
            owner=owner(),
            status=request.args.get("status"),
            limit=limit,
            cursor=request.args.get("cursor"),
        )
        return jsonify({"jobs": [render(job) for job in page], "next_cursor": cursor})
