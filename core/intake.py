"""Checks on what a client submits, before anything is stored: image bytes and metadata."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, UnidentifiedImageError

from unmask.core.exceptions import InvalidImage, InvalidInput, PayloadTooLarge

IMAGE_FORMATS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "GIF": "gif",
    "TIFF": "tif",
    "MPO": "jpg",
}


def sniff_image(data: bytes, max_bytes: int) -> str:
    """Cheap checks before storing: size and a readable image header. Returns the extension."""
    if not data:
        raise InvalidImage("the uploaded file is empty", code="empty_file")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidImage(
            f"the file is not an image Unmask can read ({', '.join(sorted(set(IMAGE_FORMATS)))})",
            code="not_an_image",
        ) from exc
    if fmt not in IMAGE_FORMATS:
        raise InvalidImage(f"unsupported image format {fmt!r}", code="unsupported_format")
    return IMAGE_FORMATS[fmt]


def check_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object", code="invalid_metadata")
    if len(repr(metadata)) > 16_384:
        raise InvalidInput("metadata is larger than 16 KiB", code="invalid_metadata")
    return metadata


def check_s3_source(bucket: str, key: str) -> None:
    if not bucket or not key or len(key) > 1024 or len(bucket) > 255:
        raise InvalidInput("source.s3 needs a bucket and a key", code="invalid_source")
