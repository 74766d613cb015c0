"""Signed downloads for the local object store (S3 serves presigned URLs itself)."""

from __future__ import annotations

import mimetypes

from flask import Blueprint, Response, current_app, request

from unmask.core.exceptions import NotFound
from unmask.storage.objects import LocalStore

bp = Blueprint("objects", __name__, url_prefix="/v1/objects")


@bp.get("/<path:key>")
def get_object(key: str) -> Response:
    store = current_app.extensions["unmask"].store
    if not isinstance(store, LocalStore):
        raise NotFound("objects are served by the S3 store; use the presigned URL")
    try:
        expires = int(request.args.get("expires", "0"))
    except ValueError:
        expires = 0
    if not store.verify(key, expires, request.args.get("signature", "")):
        raise NotFound("link expired or invalid")
    data = store.get(key)
    mime = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(data, mimetype=mime, headers={"Cache-Control": "private, max-age=300"})
