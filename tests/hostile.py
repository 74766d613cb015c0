"""A corpus of hostile and odd image files, each with the outcome Unmask must give it: refused at
submit with a code, or accepted and then a job that fails with a code or succeeds. Never a 500,
never `internal_error`."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tests.conftest import LABELLED

FACE = LABELLED / "real" / "studio__128_03.jpg"


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    stage: str  # "submit": refused before storing; "job": what the worker makes of it
    outcome: str  # an error code, or for a job that succeeds its verdict class: "face" | "no_face"


def face() -> bytes:
    return FACE.read_bytes()


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def face_image(mode: str = "RGB") -> Image.Image:
    return Image.open(FACE).convert(mode)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def png_bomb() -> bytes:
    """30000 x 30000 grey pixels that compress to a few hundred kilobytes."""
    row = b"\0" + b"\0" * 30000
    raw = zlib.compressobj(9)
    body = b"".join(raw.compress(row) for _ in range(30000)) + raw.flush()
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real JPEG whose frame header is rewritten to claim another size."""
    data = bytearray(face())
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise AssertionError("no SOF marker")


def gif_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (4, 4)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def tiff_claiming(width: int, height: int) -> bytes:
    data = encode(Image.new("L", (4, 4)), "TIFF")
    for tag, value in ((256, width), (257, height)):  # ImageWidth, ImageLength: LONG, one value
        old = struct.pack("<HHII", tag, 4, 1, 4)
        assert old in data
        data = data.replace(old, struct.pack("<HHII", tag, 4, 1, value), 1)
    return data


def animated(fmt: str) -> bytes:
    frames = [face_image(), face_image().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_bomb() -> bytes:
    """A JPEG whose EXIF block is as large as a segment allows, full of entries."""
    exif = Image.Exif()
    for tag in range(0x9000, 0x9000 + 4000):
        exif[tag] = 0
    return encode(face_image(), "JPEG", exif=exif.tobytes()[:65000])


def rotated_by_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 8
    return encode(face_image().rotate(-90, expand=True), "JPEG", exif=exif)


def bad_crc_png() -> bytes:
    data = bytearray(encode(face_image(), "PNG"))
    at = data.find(b"IDAT") + 8
    data[at] ^= 0xFF
    return bytes(data)


def sixteen_bit() -> bytes:
    pixels = (np.asarray(face_image("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return encode(Image.fromarray(pixels), "PNG")


XXE_SVG = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><text>&xxe;</text></svg>"""


CASES = [
    # Decompression bombs and lying headers: refused from the header, nothing decoded.
    Case("png-bomb-30000x30000", png_bomb, "submit", "image_too_large"),
    Case("png-header-65000x65000", lambda: png_claiming(65000, 65000), "submit", "image_too_large"),
    Case("png-header-20000x2500", lambda: png_claiming(20000, 2500), "submit", "image_too_large"),
    Case("jpeg-header-65000x65000", lambda: jpeg_claiming(65000, 65000), "submit", "image_too_large"),
    Case("jpeg-header-9000x9000", lambda: jpeg_claiming(9000, 9000), "submit", "image_too_large"),
    Case("gif-header-65535x65535", lambda: gif_claiming(65535, 65535), "submit", "image_too_large"),
    Case("bmp-header-50000x50000", lambda: bmp_claiming(50000, 50000), "submit", "image_too_large"),
    Case("tiff-header-60000x60000", lambda: tiff_claiming(60000, 60000), "submit", "image_too_large"),
    # Not images at all.
    Case("empty", lambda: b"", "submit", "empty_file"),
    Case("one-byte", lambda: b"\xff", "submit", "not_an_image"),
    Case("text", lambda: b"hello, this is not an image\n" * 10, "submit", "not_an_image"),
    Case(
        "html",
        lambda: b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
        "submit",
        "not_an_image",
    ),
    Case("svg-with-xxe", lambda: XXE_SVG, "submit", "not_an_image"),
    Case(
        "pdf",
        lambda: b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF",
        "submit",
        "not_an_image",
    ),
    Case("zip", lambda: b"PK\x03\x04" + b"\0" * 100, "submit", "not_an_image"),
    Case("elf", lambda: b"\x7fELF\x02\x01\x01" + b"\0" * 100, "submit", "not_an_image"),
    Case("jpeg-magic-only", lambda: b"\xff\xd8\xff\xe0" + b"\0" * 20, "submit", "not_an_image"),
    Case("png-magic-only", lambda: b"\x89PNG\r\n\x1a\n", "submit", "not_an_image"),
    Case("oversized-file", lambda: face() + b"\0" * 3_000_000, "submit", "payload_too_large"),
    # Formats Pillow reads that Unmask does not accept.
    Case("ico", lambda: encode(face_image().resize((64, 64)), "ICO"), "submit", "unsupported_format"),
    Case("tga", lambda: encode(face_image(), "TGA"), "submit", "unsupported_format"),
    Case("ppm", lambda: encode(face_image(), "PPM"), "submit", "unsupported_format"),
    Case("pcx", lambda: encode(face_image(), "PCX"), "submit", "unsupported_format"),
    Case("qoi", lambda: encode(face_image(), "QOI"), "submit", "unsupported_format"),
    # Headers that read, bodies that do not.
    Case("truncated-jpeg", lambda: face()[: len(face()) // 2], "job", "not_an_image"),
    Case("truncated-png", lambda: encode(face_image(), "PNG")[:2000], "job", "not_an_image"),
    Case("png-bad-crc", bad_crc_png, "job", "not_an_image"),
    Case("jpeg-garbage-after-header", lambda: face()[:600] + b"\x00\xff" * 4000, "job", "not_an_image"),
    # Polyglots and wrong extensions: the content decides.
    Case("jpeg-with-zip-appended", lambda: face() + b"PK\x03\x04" + b"\0" * 200, "job", "face"),
    Case("jpeg-with-html-appended", lambda: face() + b"<script>alert(1)</script>", "job", "face"),
    Case("png-named-jpg", lambda: encode(face_image(), "PNG"), "job", "face"),
    # Tiny and thin images: no face, not an error.
    Case("1x1", lambda: encode(Image.new("RGB", (1, 1)), "PNG"), "job", "no_face"),
    Case("1x4000", lambda: encode(Image.new("RGB", (1, 4000)), "PNG"), "job", "no_face"),
    Case("4000x1", lambda: encode(Image.new("RGB", (4000, 1)), "PNG"), "job", "no_face"),
    Case("11x11", lambda: encode(Image.new("RGB", (11, 11), (200, 150, 120)), "JPEG"), "job", "no_face"),
    Case("3x5000-gif", lambda: encode(Image.new("P", (3, 5000)), "GIF"), "job", "no_face"),
    # Odd but valid pixels.
    Case("cmyk-jpeg", lambda: encode(face_image("CMYK"), "JPEG"), "job", "face"),
    Case("grey-jpeg", lambda: encode(face_image("L"), "JPEG"), "job", "face"),
    Case("16-bit-png", sixteen_bit, "job", "face"),
    Case("palette-png", lambda: encode(face_image("P"), "PNG"), "job", "face"),
    Case("rgba-png", lambda: encode(face_image("RGBA"), "PNG"), "job", "face"),
    Case("la-png", lambda: encode(face_image("LA"), "PNG"), "job", "face"),
    Case("animated-gif", lambda: animated("GIF"), "job", "face"),
    Case("animated-webp", lambda: animated("WEBP"), "job", "face"),
    Case("multipage-tiff", lambda: animated("TIFF"), "job", "face"),
    Case("bmp", lambda: encode(face_image(), "BMP"), "job", "face"),
    Case("exif-bomb", exif_bomb, "job", "face"),
    Case("exif-rotated", rotated_by_exif, "job", "face"),
    Case("progressive-jpeg", lambda: encode(face_image(), "JPEG", progressive=True), "job", "face"),
]
