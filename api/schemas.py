"""Request schemas. The views validate with them and the OpenAPI document is generated from
them (and from core's response schemas), so the two cannot drift apart."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any, Literal

from flask import Request
from flask_openapi3 import FileStorage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unmask.core.exceptions import InvalidInput
from unmask.core.intake import check_json_depth

MAX_PAGE = 200


class JobUpload(BaseModel):
    """multipart/form-data: an image file and optional metadata."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    image: FileStorage
    metadata: str | None = Field(None, description="a JSON object, echoed back on the job")
    webhook_url: str | None = Field(None, max_length=2048, description="called when the job finishes")


class S3Ref(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=1, max_length=255)
    key: str = Field(min_length=1, max_length=1024)


class S3Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    s3: S3Ref


class JobFromS3(BaseModel):
    """application/json: an object already in S3, and optional metadata."""

    model_config = ConfigDict(extra="forbid")

    source: S3Source
    metadata: dict[str, Any] | None = None
    webhook_url: str | None = Field(None, max_length=2048, description="called when the job finishes")


@functools.cache
def _header_schema(
    model: type[BaseModel], args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]
) -> dict:
    return BaseModel.model_json_schema.__func__(model, *args, **dict(kwargs))  # type: ignore[attr-defined]


class SubmitHeaders(BaseModel):
    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """flask-openapi3 asks for a header model's schema on every request to find the header
        names; it is worked out once per set of arguments, and each caller gets its own copy."""
        return copy.deepcopy(_header_schema(cls, args, tuple(sorted(kwargs.items()))))

    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="the same key and request within 24 hours answer with the first job; "
        "the same key with another request is refused (409)",
    )


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["queued", "running", "succeeded", "failed"] | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class JobPath(BaseModel):
    job_id: str = Field(description="the job's id (a UUID)")


class ObjectPath(BaseModel):
    key: str


class SignedLink(BaseModel):
    expires: str = Field("", description="unix time the link expires")
    signature: str = ""


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]


class Liveness(BaseModel):
    status: Literal["ok"]


def parse_upload(request: Request) -> tuple[JobUpload, Any]:
    """The upload and its parsed metadata."""
    fields = {**request.form.to_dict(), **request.files.to_dict()}
    if "image" not in request.files:
        unknown_fields(set(fields), set(JobUpload.model_fields))
        raise InvalidInput("multipart field 'image' is required", code="missing_image")
    upload = validated(JobUpload, fields)
    return upload, form_metadata(upload.metadata)


def form_metadata(raw: str | None) -> Any:
    """The `metadata` form field, parsed: JSON, not nested too deep."""
    if raw is None:
        return None
    check_json_depth(raw, code="invalid_metadata")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput("metadata must be a JSON object", code="invalid_metadata") from exc


def json_body(request: Request, model: type[BaseModel]) -> Any:
    """A JSON object body, checked for depth before parsing, validated by `model`."""
    check_json_depth(request.get_data(cache=True))
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_json")
    return validated(model, body)


def parse_s3(request: Request) -> JobFromS3:
    return json_body(request, JobFromS3)


def validated(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc) from exc


def unknown_fields(fields: set[str], allowed: set[str]) -> None:
    extra = sorted(fields - allowed)
    if extra:
        raise InvalidInput(
            f"unknown field(s): {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}",
            code="unknown_field",
        )


def invalid_input(exc: ValidationError) -> InvalidInput:
    """One clear error for a failed validation: the first problem, with a code naming its field."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "extra_forbidden":
        return InvalidInput(f"unknown field: {where}", code="unknown_field")
    top = str(first["loc"][0]) if first["loc"] else "body"
    code = "invalid_source" if top in ("source", "items", "output") else f"invalid_{top}"
    return InvalidInput(f"{where}: {first['msg']}", code=code)


class BatchPath(BaseModel):
    batch_id: str = Field(description="the batch's id (a UUID)")


class BatchListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE)
    cursor: str | None = None


class BatchJobsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE)
    cursor: str | None = None
    verdict: Literal["fake", "real", "uncertain", "no_face"] | None = None


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=1, max_length=255)
    key: str = Field(min_length=1, max_length=1024)
    metadata: dict[str, Any] | None = None


class S3Prefix(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str = Field(min_length=1, max_length=255)
    prefix: str = Field("", max_length=1024)


class BatchSource(BaseModel):
    """Exactly one of: every object under an S3 prefix, or a JSONL manifest in S3."""

    model_config = ConfigDict(extra="forbid")

    s3: S3Prefix | None = None
    manifest: S3Ref | None = Field(None, description='one {"bucket", "key", "metadata"} a line')


class BatchCreate(BaseModel):
    """application/json: `items` (S3 objects), or a `source` (a prefix or a manifest)."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] | None = None
    source: BatchSource | None = None
    metadata: dict[str, Any] | None = None
    output: S3Ref | None = Field(None, description="where to write the results as JSONL when it completes")
    webhook_url: str | None = Field(None, max_length=2048, description="called when the batch completes")

    def source_spec(self) -> dict[str, Any]:
        chosen = [
            x for x in (self.items, self.source and self.source.s3, self.source and self.source.manifest) if x
        ]
        if len(chosen) != 1:
            raise InvalidInput(
                "give exactly one of items, source.s3 {bucket, prefix} or source.manifest {bucket, key}",
                code="invalid_source",
            )
        if self.items is not None:
            return {"kind": "items", "items": [i.model_dump(exclude_none=True) for i in self.items]}
        if self.source and self.source.s3:
            return {"kind": "prefix", **self.source.s3.model_dump()}
        assert self.source and self.source.manifest
        return {"kind": "manifest", **self.source.manifest.model_dump()}

    def output_spec(self) -> dict[str, str] | None:
        return self.output.model_dump() if self.output else None


def parse_batch_uploads(request: Request) -> tuple[list[tuple[bytes, str | None]], Any]:
    unknown_fields(set(request.form) | set(request.files), {"image", "metadata", "webhook_url"})
    files = [(f.read(), f.filename) for f in request.files.getlist("image")]
    return files, form_metadata(request.form.get("metadata"))


def parse_batch_json(request: Request) -> BatchCreate:
    return json_body(request, BatchCreate)
