"""Real-world degradations for training crops; every draw comes from the caller's RNG."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def rescale(img: Image.Image, factor: float) -> Image.Image:
    """Down-sample then back up: the loss of detail a re-upload causes."""
    w, h = img.size
    small = img.resize((max(8, round(w * factor)), max(8, round(h * factor))), Image.Resampling.BILINEAR)
    return small.resize((w, h), Image.Resampling.BILINEAR)


def colour_jitter(img: Image.Image, rng: np.random.Generator, strength: float = 0.2) -> Image.Image:
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(float(rng.uniform(1 - strength, 1 + strength)))
    return img


def gaussian_noise(img: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip, colour jitter, rescale, blur, noise and JPEG recompression."""
    img = Image.fromarray(crop)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        img = colour_jitter(img, rng)
    if rng.random() < 0.3:
        img = rescale(img, float(rng.uniform(0.4, 0.9)))
    if rng.random() < 0.2:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    if rng.random() < 0.2:
        img = gaussian_noise(img, float(rng.uniform(1.0, 6.0)), rng)
    if rng.random() < 0.6:
        img = jpeg(img, int(rng.integers(40, 96)))
    return np.asarray(img, dtype=np.uint8)
