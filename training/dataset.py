"""Labelled image folders and the face-crop cache shared by training and evaluation."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from unmask.detector.errors import InvalidData, InvalidImage
from unmask.detector.faces import FaceDetector, crop_face, crop_region, decode_image

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
LABELS = {"real": 0, "fake": 1}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: int  # 0 real, 1 fake
    source: str


def source_of(path: Path) -> str:
    """The file-name prefix before `__`, or `unknown` when a name has none."""
    return path.name.split("__", 1)[0] if "__" in path.name else "unknown"


def scan_labelled(root: str | Path) -> list[LabelledImage]:
    """Every image under root/real and root/fake, at any depth, sorted for determinism."""
    root = Path(root)
    items = []
    for name, label in LABELS.items():
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                items.append(LabelledImage(path, label, source_of(path)))
    if not items:
        raise InvalidData(f"{root} holds no images under real/ or fake/")
    return items


@dataclass
class CropSet:
    """Face crops (N x S x S x 3 uint8) with labels, sources, landmarks in crop pixels."""

    crops: np.ndarray
    landmarks: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    paths: list[str]
    no_face: list[str]
    dense: np.ndarray | None = None  # 68-point landmarks in crop pixels, when known

    def subset(self, mask: np.ndarray) -> CropSet:
        idx = np.flatnonzero(mask)
        return CropSet(
            self.crops[idx],
            self.landmarks[idx],
            self.labels[idx],
            self.sources[idx],
            [self.paths[i] for i in idx],
            [],
            None if self.dense is None else self.dense[idx],
        )


def crop_landmarks(
    landmarks: list[tuple[float, float]],
    box: tuple[float, float, float, float],
    crop_size: int,
    margin: int,
    image_size: tuple[int, int],
) -> np.ndarray:
    """Map landmarks from image pixels to the crop's pixels (same geometry as crop_face)."""
    left, top, right, bottom = crop_region(box, crop_size, margin, image_size)
    pts = np.asarray(landmarks, dtype=np.float32)
    pts[:, 0] = (pts[:, 0] - left) * crop_size / (right - left)
    pts[:, 1] = (pts[:, 1] - top) * crop_size / (bottom - top)
    return pts


def largest_usable_face(image: Image.Image, detector: FaceDetector):
    faces = [f for f in detector.detect(image) if f.skipped is None]
    return max(faces, key=lambda f: f.size) if faces else None


def build_crops(
    items: list[LabelledImage], cache_dir: str | Path, detector: FaceDetector, crop_size: int, margin: int
) -> CropSet:
    """Detect and crop the main face of every image once; cached by file hash, resumable."""
    cache = Path(cache_dir) / f"crops-{crop_size}-m{margin}"
    cache.mkdir(parents=True, exist_ok=True)
    crops, marks, labels, sources, paths, no_face = [], [], [], [], [], []
    for item in tqdm(items, desc="face crops", unit="img", mininterval=2.0):
        entry = _cached_crop(item.path, cache, detector, crop_size, margin)
        if entry is None:
            no_face.append(str(item.path))
            continue
        crops.append(entry[0])
        marks.append(entry[1])
        labels.append(item.label)
        sources.append(item.source)
        paths.append(str(item.path))
    size = (0, crop_size, crop_size, 3)
    return CropSet(
        np.stack(crops) if crops else np.zeros(size, np.uint8),
        np.stack(marks) if marks else np.zeros((0, 5, 2), np.float32),
        np.asarray(labels, dtype=np.int64),
        np.asarray(sources),
        paths,
        no_face,
    )


def folder_crops(
    data_dir: Path, cache_dir: Path, crop_size: int, margin: int, device: str | torch.device
) -> CropSet:
    """Face crops of a labelled folder, through the crop cache that training and packing share
    (one detector setting, so both fill and read the same cache entries)."""
    detector = FaceDetector(device=device, pyramid_min_size=40)
    return build_crops(scan_labelled(data_dir), cache_dir, detector, crop_size, margin)


def _cached_crop(path: Path, cache: Path, detector: FaceDetector, crop_size: int, margin: int):
    data = path.read_bytes()
    key = hashlib.sha1(data).hexdigest()
    npz, miss = cache / key[:2] / f"{key}.npz", cache / key[:2] / f"{key}.none"
    if npz.exists():
        with np.load(npz) as cached:
            return cached["crop"], cached["landmarks"]
    if miss.exists():
        return None
    npz.parent.mkdir(exist_ok=True)
    try:
        image = decode_image(data)
    except InvalidImage as exc:
        log.warning("skipping %s: %s", path, exc.message)
        miss.write_text(json.dumps({"reason": exc.code}))
        return None
    face = largest_usable_face(image, detector)
    if face is None:
        miss.write_text(json.dumps({"reason": "no_face"}))
        return None
    crop = np.asarray(crop_face(image, face.box, crop_size, margin), dtype=np.uint8)
    pts = crop_landmarks(face.landmarks, face.box, crop_size, margin, image.size)
    np.savez(npz, crop=crop, landmarks=pts)
    return crop, pts
