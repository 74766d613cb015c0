"""Self-blended images (Shiohara & Yamasaki, CVPR 2022) from a real crop and its landmarks.

A slightly altered copy of the face (colour, sharpness, scale, shift) is blended back into the
same face through a soft mask. The fake shares person, background and resolution with its real
source, so only the blending traces tell the two apart. The paper builds the mask from the convex
hull of 81 landmarks; with dense (68-point, `training.landmarks`) landmarks the mask here is their
convex hull, deformed, eroded or dilated and blurred at random. With MTCNN's five points only
(eyes, nose, mouth corners) it is an ellipse fitted to them.

Face X-ray blends (Li et al., CVPR 2020) put a *different* real face into the target: the
partner is the nearest of a few random real faces by landmark layout, aligned to the target by a
similarity transform on the landmarks, colour-matched inside the mask and blended through it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

DENSE = 68  # landmarks at least this many: convex-hull masks


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The hull's corners in order (Andrew's monotone chain)."""
    pts = sorted(map(tuple, points.tolist()))
    if len(pts) < 3:
        return np.array(pts, dtype=np.float32)

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.float32)


def hull_mask(points: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A soft mask (0..1) from the convex hull of dense landmarks: scaled about its centre,
    its corners jittered, then eroded or dilated and blurred, all by random amounts."""
    centre = points.mean(axis=0)
    moved = centre + (points - centre) * rng.uniform(0.9, 1.1, size=2)
    moved = moved + rng.normal(0.0, size * 0.008, size=moved.shape)
    hull = convex_hull(moved)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in hull.tolist()], fill=255)
    k = int(rng.choice([3, 5, 7, 9]))
    mask = mask.filter(ImageFilter.MaxFilter(k) if rng.random() < 0.5 else ImageFilter.MinFilter(k))
    mask = mask.filter(ImageFilter.GaussianBlur(float(rng.uniform(2.0, 8.0))))
    return np.asarray(mask, dtype=np.float32) / 255.0


def face_mask(landmarks: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The blending mask: a deformed convex hull for dense landmarks, else a soft ellipse
    (0..1, size x size) over the inner face, randomly shaped and blurred."""
    if len(landmarks) >= DENSE:
        return hull_mask(landmarks, size, rng)
    eyes, mouth = landmarks[:2], landmarks[3:5]  # MTCNN order: eyes, nose, mouth corners
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
    img = frequency_shift(img, rng)
    size = crop.shape[0]
    scale = float(rng.uniform(0.94, 1.06))
    dx, dy = (float(v) for v in rng.uniform(-0.03, 0.03, size=2) * size)
    # Affine about the centre: scale plus a small shift.
    c = size / 2
    coeffs = (1 / scale, 0, c - c / scale - dx, 0, 1 / scale, c - c / scale - dy)
    img = img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def frequency_shift(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Sometimes change the source's spectrum: resample it, or pass it through JPEG."""
    roll = rng.random()
    if roll < 0.25:
        small = max(8, round(img.width * float(rng.uniform(0.5, 0.9))))
        return img.resize((small, small), Image.Resampling.BILINEAR).resize(
            img.size, Image.Resampling.BILINEAR
        )
    if roll < 0.5:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(60, 96)))
        buf.seek(0)
        return Image.open(buf).convert("RGB")
    return img


def self_blend(crop: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fake made from one real crop: altered copy blended into the original."""
    mask = face_mask(landmarks, crop.shape[0], rng)
    mask *= float(rng.choice([0.5, 0.75, 1.0, 1.0, 1.0]))
    source = altered_copy(crop, rng)
    blended = mask[..., None] * source + (1 - mask[..., None]) * crop.astype(np.float32)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2 x 3 scale-rotation-translation that best maps source points onto target points
    (least squares, Umeyama 1991)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s / len(s))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d) / max(float((s**2).sum() / len(s)), 1e-9))
    linear = scale * rotation
    return np.hstack([linear, (mu_t - linear @ mu_s)[:, None]])


def warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2 x 3 forward map to an image (PIL wants the inverse: output -> input pixels)."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    inverse = np.linalg.inv(full)[:2].ravel()
    img = Image.fromarray(image).transform(
        (image.shape[1], image.shape[0]),
        Image.Transform.AFFINE,
        tuple(inverse),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(img, dtype=np.float32)


def match_colour(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift and scale each channel of source so that, inside the mask, its mean and spread are
    the target's."""
    weight = mask[..., None]
    total = float(weight.sum()) or 1.0

    def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = (x * weight).sum(axis=(0, 1)) / total
        std = np.sqrt(((x - mean) ** 2 * weight).sum(axis=(0, 1)) / total) + 1e-3
        return mean, std

    (ms, ss), (mt, st) = moments(source), moments(target)
    return (source - ms) / ss * st + mt


def nearest_partner(
    index: int, landmarks: np.ndarray, candidates: np.ndarray, rng: np.random.Generator, tries: int = 16
) -> int:
    """Among a few random candidates, the face whose landmark layout (centred, scaled) is
    closest to this one's; never the face itself."""
    pool = candidates[candidates != index]
    picks = rng.choice(pool, size=min(tries, len(pool)), replace=False)

    def shape(i: int) -> np.ndarray:
        pts = landmarks[i] - landmarks[i].mean(axis=0)
        return pts / (np.linalg.norm(pts) or 1.0)

    mine = shape(index)
    return int(min(picks, key=lambda j: float(np.linalg.norm(shape(int(j)) - mine))))


def xray_blend(
    target: np.ndarray,
    target_points: np.ndarray,
    source: np.ndarray,
    source_points: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """A fake made from two real faces: source aligned onto target, colour-matched, blended."""
    mask = face_mask(target_points, target.shape[0], rng)
    mask *= float(rng.choice([0.75, 1.0, 1.0]))
    aligned = warp(source, similarity(source_points, target_points))
    base = target.astype(np.float32)
    aligned = match_colour(aligned, base, mask)
    blended = mask[..., None] * aligned + (1 - mask[..., None]) * base
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
