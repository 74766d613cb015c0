"""Self-blended images (Shiohara & Yamasaki, CVPR 2022) from a real crop and its landmarks.

A slightly altered copy of the face (colour, sharpness, scale, shift) is blended back into the
same face through a soft mask. The fake shares person, background and resolution with its real
source, so only the blending traces tell the two apart. The paper builds the mask from 81
landmarks; MTCNN gives five (eyes, nose, mouth corners), so the mask here is an ellipse fitted to
them, deformed and blurred at random.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def face_mask(landmarks: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft ellipse (0..1, size x size) over the inner face, randomly shaped and blurred."""
    eyes, mouth = landmarks[:2], landmarks[3:5]
    centre = landmarks.mean(axis=0)
    eye_dist = float(np.linalg.norm(eyes[1] - eyes[0])) or size * 0.3
    eye_to_mouth = float(np.linalg.norm(mouth.mean(axis=0) - eyes.mean(axis=0))) or size * 0.3
    ax = eye_dist * rng.uniform(0.85, 1.25)
    ay = eye_to_mouth * rng.uniform(1.15, 1.6)
    angle = np.arctan2(*(eyes[1] - eyes[0])[::-1])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    # A few low-frequency wobbles so the boundary is not a perfect ellipse.
    theta = np.arctan2(v, u)
    wobble = 1 + sum(
        rng.uniform(-0.08, 0.08) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    inside = ((u / ax) ** 2 + (v / ay) ** 2) <= wobble**2
    mask = Image.fromarray((inside * 255).astype(np.uint8))
    mask = mask.filter(ImageFilter.GaussianBlur(float(rng.uniform(2.0, 8.0))))
    return np.asarray(mask, dtype=np.float32) / 255.0


def altered_copy(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The source face: colour, sharpness, scale and position slightly off the target."""
    img = Image.fromarray(crop)
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhancer(img).enhance(float(rng.uniform(0.9, 1.1)))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + rng.uniform(-8, 8, size=3).astype(np.float32)  # per-channel tint
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    else:
        img = ImageEnhance.Sharpness(img).enhance(float(rng.uniform(1.2, 2.5)))
    size = crop.shape[0]
    scale = float(rng.uniform(0.94, 1.06))
    dx, dy = (float(v) for v in rng.uniform(-0.03, 0.03, size=2) * size)
    # Affine about the centre: scale plus a small shift.
    c = size / 2
    coeffs = (1 / scale, 0, c - c / scale - dx, 0, 1 / scale, c - c / scale - dy)
    img = img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def self_blend(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fake made from one real crop: altered copy blended into the original."""
    mask = face_mask(landmarks, crop.shape[0], rng)
    mask *= float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0]))
    source = altered_copy(crop, rng)
    blended = mask[..., None] * source + (1 - mask[..., None]) * crop.astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
