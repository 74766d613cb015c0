"""Signed downloads for the local object store (S3 serves presigned URLs itself)."""

from __future__ import annotations

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag

from unmask.api.schemas import ObjectPath, SignedLink
from unmask.core.objects import read_signed
from unmask.core.schemas import ErrorBody

bp = APIBlueprint("objects", __name__, url_prefix="/v1/objects", abp_tags=[Tag(name="objects")])


@bp.get(
    "/<path:key>",
    summary="Signed download of an overlay (local object store only)",
    responses={200: None, 400: ErrorBody, 404: ErrorBody},
)
def get_object(path: ObjectPath, query: SignedLink) -> Response:
    store = current_app.extensions["unmask"].store
    data, mime = read_signed(store, key=path.key, expires=query.expires, signature=query.signature)
    return Response(data, mimetype=mime, headers={"Cache-Control": "private, max-age=300"})
