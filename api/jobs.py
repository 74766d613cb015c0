"""Job routes: validate -> one service call -> serialise."""

from __future__ import annotations

from flask import Response, current_app, request, url_for
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel

from unmask.api import auth
from unmask.api.schemas import JobListQuery, JobPath, SubmitHeaders, parse_s3, parse_upload
from unmask.core.exceptions import InvalidInput, PayloadTooLarge
from unmask.core.schemas import ErrorBody, JobPage, JobRead
from unmask.core.wiring import Services

bp = APIBlueprint(
    "jobs", __name__, url_prefix="/v1/jobs", abp_tags=[Tag(name="jobs")], abp_security=[{"bearer": []}]
)

GUARDED = {401: ErrorBody, 429: ErrorBody}


def services() -> Services:
    return current_app.extensions["unmask"]


def owner() -> str:
    return auth.tenant()


def base_url() -> str:
    return services().settings.public_url or request.host_url


def as_json(model: BaseModel, status: int = 200) -> Response:
    response = current_app.response_class(
        model.model_dump_json(exclude_unset=True), mimetype="application/json"
    )
    response.status_code = status
    return response


@bp.post(
    "",
    summary="Submit an image: a multipart upload, or an S3 reference as JSON",
    responses={
        202: JobRead,
        400: ErrorBody,
        403: ErrorBody,
        409: ErrorBody,
        413: ErrorBody,
        415: ErrorBody,
        422: ErrorBody,
        503: ErrorBody,
        **GUARDED,
    },
)
def create_job(header: SubmitHeaders) -> Response:
    jobs = services().jobs
    limit = services().settings.max_upload_bytes
    if (request.content_length or 0) > limit + 64 * 1024:  # room for the multipart envelope
        raise PayloadTooLarge(f"the request is larger than {limit} bytes")
    once = header.idempotency_key
    if request.mimetype == "multipart/form-data":
        upload, metadata = parse_upload(request)
        job = jobs.submit_upload(
            owner=owner(),
            data=upload.image.read(),
            filename=upload.image.filename,
            metadata=metadata,
            base_url=base_url(),
            idempotency_key=once,
            webhook_url=upload.webhook_url,
        )
    elif request.is_json:
        body = parse_s3(request)
        ref = body.source.s3
        job = jobs.submit_s3(
            owner=owner(),
            bucket=ref.bucket,
            key=ref.key,
            metadata=body.metadata,
            base_url=base_url(),
            idempotency_key=once,
            webhook_url=body.webhook_url,
        )
    else:
        raise InvalidInput(
            "send multipart/form-data with an 'image' field or application/json with a 'source'",
            code="unsupported_media_type",
        )
    response = as_json(job, 202)
    response.headers["Location"] = url_for("jobs.get_job", job_id=str(job.id))
    return response


@bp.get(
    "/<job_id>",
    summary="One job, with its result or error",
    responses={200: JobRead, 400: ErrorBody, 404: ErrorBody, **GUARDED},
)
def get_job(path: JobPath) -> Response:
    return as_json(services().jobs.get(owner=owner(), job_id=path.job_id, base_url=base_url()))


@bp.get(
    "", summary="Jobs, newest first, a page at a time", responses={200: JobPage, 400: ErrorBody, **GUARDED}
)
def list_jobs(query: JobListQuery) -> Response:
    page = services().jobs.list(
        owner=owner(), status=query.status, limit=query.limit, cursor=query.cursor, base_url=base_url()
    )
    return as_json(page)


@bp.delete(
    "/<job_id>",
    summary="Delete a job with its result, upload and overlays",
    responses={204: None, 400: ErrorBody, 404: ErrorBody, 409: ErrorBody, **GUARDED},
)
def delete_job(path: JobPath) -> Response:
    services().jobs.delete(owner=owner(), job_id=path.job_id)
    return Response(status=204)


@bp.post(
    "/<job_id>/cancel",
    summary="Cancel a queued job: it will not be processed",
    responses={200: JobRead, 404: ErrorBody, 409: ErrorBody, **GUARDED},
)
def cancel_job(path: JobPath) -> Response:
    return as_json(services().jobs.cancel(owner=owner(), job_id=path.job_id, base_url=base_url()))
