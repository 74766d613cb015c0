"""Checks on what a client submits, before anything is stored: image bytes and metadata."""

from __future__ import annotations

import io
import json
import re
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


# S3's naming rules for general purpose buckets (docs.aws.amazon.com, "Bucket naming rules").
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
MAX_JSON_DEPTH = 32


def sniff_image(data: bytes, max_bytes: int, max_pixels: int) -> str:
    """Cheap checks before storing: size, a readable header and the pixel count it claims.
    Returns the extension. No pixel is decoded."""
    if not data:
        raise InvalidImage("the uploaded file is empty", code="empty_file")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file is larger than {max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format or "", img.size
    except Image.DecompressionBombError as exc:
        raise too_many_pixels(max_pixels) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(
            f"the file is not an image Unmask can read ({', '.join(sorted(set(IMAGE_FORMATS)))})",
            code="not_an_image",
        ) from exc
    if fmt not in IMAGE_FORMATS:
        raise InvalidImage(f"unsupported image format {fmt!r}", code="unsupported_format")
    if width * height > max_pixels:
        raise too_many_pixels(max_pixels, f"{width}x{height}")
    return IMAGE_FORMATS[fmt]


def too_many_pixels(limit: int, size: str = "") -> PayloadTooLarge:
    claimed = f" ({size})" if size else ""
    return PayloadTooLarge(f"the image has more than {limit} pixels{claimed}", code="image_too_large")


def check_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata must be a JSON object", code="invalid_metadata")
    if len(json.dumps(metadata)) > 16_384:
        raise InvalidInput("metadata is larger than 16 KiB", code="invalid_metadata")
    return metadata


def check_json_depth(raw: bytes | str, limit: int = MAX_JSON_DEPTH, code: str = "invalid_json") -> None:
    """Refuse JSON nested deeper than `limit` before parsing it (deep nesting exhausts the
    parser's recursion). Brackets inside strings do not count."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            escaped, in_string = (False, in_string) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise InvalidInput(f"JSON is nested deeper than {limit} levels", code=code)
        elif char in "]}":
            depth -= 1


def check_bucket_name(bucket: str) -> None:
    if not BUCKET_NAME.match(bucket) or ".." in bucket or IP_ADDRESS.match(bucket):
        raise InvalidInput(f"{bucket[:80]!r} is not a valid S3 bucket name", code="invalid_source")


def check_s3_source(bucket: str, key: str) -> None:
    """S3's rules for names: a valid bucket, a key of 1-1024 UTF-8 bytes without control characters."""
    check_bucket_name(bucket)
    if not key or len(key.encode("utf-8", "surrogatepass")) > 1024:
        raise InvalidInput("source.s3.key must be 1 to 1024 bytes", code="invalid_source")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise InvalidInput("source.s3.key holds control characters", code="invalid_source")
