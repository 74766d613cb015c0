"""Heatmap overlays: one per face crop, one for the whole image with boxes and labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VERDICT_COLOURS = {
    "fake": (230, 40, 40),
    "uncertain": (245, 180, 20),
    "real": (40, 180, 80),
    "skipped": (150, 150, 150),
}


def jet(values: np.ndarray) -> np.ndarray:
    """Map 0..1 floats to RGB uint8 with the classic jet ramp."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    channels = np.concatenate([v - 0.75, v - 0.5, v - 0.25], axis=-1)  # r, g, b centres
    rgb = np.clip(1.5 - np.abs(4.0 * channels), 0.0, 1.0)
    return (rgb * 255).astype(np.uint8)


# jet() of every 8-bit heat level: colouring a map is then one table lookup per pixel.
JET_TABLE = jet(np.arange(256, dtype=np.float32) / 255.0)


def blend_heatmap(image: Image.Image, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Resize a 0..1 map to the image and blend its jet colours over it."""
    heat = Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8)).resize(
        image.size, Image.Resampling.BILINEAR
    )
    colours = Image.fromarray(JET_TABLE[np.asarray(heat)])
    return Image.blend(image.convert("RGB"), colours, alpha)


def face_label(verdict: str, probability: float | None) -> str:
    return verdict if probability is None else f"{verdict} {probability:.2f}"


def whole_image_overlay(
    image: Image.Image,
    boxes: Sequence[tuple[float, float, float, float]],
    cams: Sequence[tuple[tuple[int, int, int, int], np.ndarray] | None],
    labels: Sequence[tuple[str, float | None]],
) -> Image.Image:
    """Paste each face's heatmap back over the region its crop came from, then draw the
    boxes and score labels."""
    canvas = image.convert("RGB") if image.mode != "RGB" else image.copy()
    for placed in cams:
        if placed is None:
            continue
        region, cam = placed
        canvas.paste(blend_heatmap(canvas.crop(region), cam), region[:2])
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    width = max(2, round(max(canvas.size) / 300))
    for box, (verdict, prob) in zip(boxes, labels):
        colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["skipped"])
        draw.rectangle(box, outline=colour, width=width)
        text = face_label(verdict, prob)
        left, top = box[0], max(box[1] - 12, 0)
        tb = draw.textbbox((left, top), text, font=font)
        draw.rectangle(tb, fill=colour)
        draw.text((left, top), text, fill=(255, 255, 255), font=font)
    return canvas
