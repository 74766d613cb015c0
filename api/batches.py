"""Batch routes: create from many uploads or from S3, read, page through jobs, export, cancel."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator

from flask import Response, current_app, request, stream_with_context, url_for
from flask_openapi3 import APIBlueprint, Tag

from unmask.api import auth
from unmask.api.jobs import GUARDED, as_json, base_url
from unmask.api.schemas import (
    BatchJobsQuery,
    BatchListQuery,
    BatchPath,
    SubmitHeaders,
    parse_batch_json,
    parse_batch_uploads,
)
from unmask.core.batches import BatchJobPage, BatchPage, BatchRead, BatchService
from unmask.core.exceptions import InvalidInput
from unmask.core.schemas import ErrorBody, JobRead

bp = APIBlueprint(
    "batches",
    __name__,
    url_prefix="/v1/batches",
    abp_tags=[Tag(name="batches")],
    abp_security=[{"bearer": []}],
)


def batches() -> BatchService:
    return current_app.extensions["unmask"].batches


@bp.post(
    "",
    summary="Create a batch: many `image` parts, or S3 items, a prefix or a JSONL manifest as JSON",
    responses={
        202: BatchRead,
        400: ErrorBody,
        403: ErrorBody,
        409: ErrorBody,
        413: ErrorBody,
        422: ErrorBody,
        **GUARDED,
    },
)
def create_batch(header: SubmitHeaders) -> Response:
    owner = auth.tenant()
    if request.mimetype == "multipart/form-data":
        files, metadata = parse_batch_uploads(request)
        webhook_url = request.form.get("webhook_url")
        fingerprint = {
            "uploads": [hashlib.sha256(data).hexdigest() for data, _ in files],
            "names": [name for _, name in files],
            "metadata": metadata,
            "webhook_url": webhook_url,
        }

        def create() -> BatchRead:
            return batches().create_from_uploads(
                owner=owner, files=files, metadata=metadata, base_url=base_url(), webhook_url=webhook_url
            )

    elif request.is_json:
        body = parse_batch_json(request)
        fingerprint = body.model_dump(mode="json")

        def create() -> BatchRead:
            return batches().create_from_s3(
                owner=owner,
                source=body.source_spec(),
                metadata=body.metadata,
                output=body.output_spec(),
                webhook_url=body.webhook_url,
            )

    else:
        raise InvalidInput(
            "send multipart/form-data with `image` parts or application/json with `items` or `source`",
            code="unsupported_media_type",
        )
    batch = batches().create_once(
        owner=owner, idempotency_key=header.idempotency_key, request=fingerprint, create=create
    )
    response = as_json(batch, 202)
    response.headers["Location"] = url_for("batches.get_batch", batch_id=str(batch.id))
    return response


@bp.get("", summary="Batches, newest first", responses={200: BatchPage, 400: ErrorBody, **GUARDED})
def list_batches(query: BatchListQuery) -> Response:
    return as_json(batches().list(owner=auth.tenant(), limit=query.limit, cursor=query.cursor))


@bp.get(
    "/<batch_id>",
    summary="A batch: counts by status and verdict, progress, first errors",
    responses={200: BatchRead, 404: ErrorBody, **GUARDED},
)
def get_batch(path: BatchPath) -> Response:
    return as_json(batches().get(owner=auth.tenant(), batch_id=path.batch_id))


@bp.get(
    "/<batch_id>/jobs",
    summary="A batch's jobs in item order, optionally of one verdict",
    responses={200: BatchJobPage, 400: ErrorBody, 404: ErrorBody, **GUARDED},
)
def list_batch_jobs(path: BatchPath, query: BatchJobsQuery) -> Response:
    page = batches().list_jobs(
        owner=auth.tenant(),
        batch_id=path.batch_id,
        limit=query.limit,
        cursor=query.cursor,
        verdict=query.verdict,
        base_url=base_url(),
    )
    return as_json(page)


@bp.post(
    "/<batch_id>/cancel",
    summary="Cancel a batch: its queued items are not processed",
    responses={200: BatchRead, 404: ErrorBody, **GUARDED},
)
def cancel_batch(path: BatchPath) -> Response:
    return as_json(batches().cancel(owner=auth.tenant(), batch_id=path.batch_id))


@bp.get(
    "/<batch_id>/results.jsonl",
    summary="Every job of the batch, one JSON object a line, streamed",
    responses={200: None, 404: ErrorBody, **GUARDED},
)
def export_jsonl(path: BatchPath) -> Response:
    rows = batches().export(owner=auth.tenant(), batch_id=path.batch_id, base_url=base_url())
    first = next(rows, None)  # raises NotFound before the stream starts
    lines = (job.model_dump_json(exclude_unset=True) + "\n" for job in chain(first, rows))
    return Response(stream_with_context(lines), mimetype="application/x-ndjson")


CSV_COLUMNS = ["index", "job_id", "status", "source", "verdict", "fake_probability", "faces", "error_code"]


def csv_row(job: JobRead) -> list[object]:
    source = job.source.s3.key if job.source.s3 else job.source.filename
    result = job.result
    return [
        job.batch_index,
        job.id,
        job.status,
        source,
        result.verdict if result else "",
        result.fake_probability if result and result.fake_probability is not None else "",
        len(result.faces) if result else "",
        job.error.code if job.error else "",
    ]


@bp.get(
    "/<batch_id>/results.csv",
    summary="Every job of the batch as CSV, streamed",
    responses={200: None, 404: ErrorBody, **GUARDED},
)
def export_csv(path: BatchPath) -> Response:
    rows = batches().export(owner=auth.tenant(), batch_id=path.batch_id, base_url=base_url())
    first = next(rows, None)

    def lines() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for job in chain(first, rows):
            writer.writerow(csv_row(job))
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        yield buf.getvalue()

    return Response(stream_with_context(lines()), mimetype="text/csv")


def chain(first: JobRead | None, rest: Iterator[JobRead]) -> Iterator[JobRead]:
    if first is not None:
        yield first
        yield from rest
