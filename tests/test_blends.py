"""Training blends: self-blended images with dense-landmark masks, and Face X-ray blends of two
different real faces aligned by their landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import LABELLED
from unmask.detector.faces import FaceDetector, crop_face, decode_image
from unmask.training.dataset import CropSet
from unmask.training.landmarks import Dense68
from unmask.training.sbi import convex_hull, face_mask, self_blend, similarity, warp, xray_blend
from unmask.training.train import make_example


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    detector = FaceDetector()
    out = []
    for path in sorted((LABELLED / "real").glob("*.jpg")):
        image = decode_image(path.read_bytes())
        box = detector.detect(image)[0].box
        out.append(np.asarray(crop_face(image, box, 160, 16)))
    return np.stack(out)


@pytest.fixture(scope="module")
def dense(crops) -> np.ndarray:
    return Dense68(margin=16).many(crops)


def test_dense_landmarks_lie_on_the_face(dense):
    assert dense.shape == (3, 68, 2)
    inside = ((dense >= 0) & (dense < 160)).all(axis=2)
    assert inside.mean(axis=1).min() > 0.9  # the chin may reach past the crop's edge
    assert (dense > -30).all() and (dense < 190).all()
    for points in dense:
        eyes, mouth, jaw = points[36:48], points[48:68], points[0:17]
        assert eyes[:, 1].mean() < mouth[:, 1].mean()  # eyes above the mouth
        assert jaw[:, 0].min() < eyes[:, 0].min() and jaw[:, 0].max() > eyes[:, 0].max()


def test_convex_hull_keeps_only_the_corners():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 5], [2, 7], [5, 0]], dtype=np.float32)
    assert {tuple(p) for p in convex_hull(square).tolist()} == {(0, 0), (10, 0), (10, 10), (0, 10)}


def test_a_dense_mask_covers_the_face_and_not_the_corners(dense):
    mask = face_mask(dense[0], 160, np.random.default_rng(0))
    centre = dense[0][27:36].mean(axis=0).astype(int)  # the nose
    assert mask[centre[1], centre[0]] > 0.95
    assert mask[:6, :6].max() < 0.05 and mask[-6:, -6:].max() < 0.05
    other = face_mask(dense[0], 160, np.random.default_rng(1))
    assert np.abs(mask - other).max() > 0.2  # deformed at random


def test_a_self_blend_changes_the_face_and_keeps_the_background(crops, dense):
    fake = self_blend(crops[0], dense[0], np.random.default_rng(3))
    diff = np.abs(fake.astype(int) - crops[0].astype(int)).sum(axis=2)
    assert diff[:5, :5].max() <= 1
    assert diff[70:90, 70:90].mean() > 1


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 100, (20, 2))
    angle, scale, shift = 0.3, 1.2, np.array([5.0, -3.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity(pts, pts @ rot.T + shift)
    assert matrix[:, :2] == pytest.approx(rot, abs=1e-6) and matrix[:, 2] == pytest.approx(shift, abs=1e-6)


def test_warp_moves_pixels_where_the_transform_says():
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[10, 10] = 255
    moved = warp(image, np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 3.0]]))
    assert np.unravel_index(moved[..., 0].argmax(), moved.shape[:2]) == (13, 15)


def test_an_xray_blend_puts_another_face_into_the_target(crops, dense):
    fake = xray_blend(crops[0], dense[0], crops[1], dense[1], np.random.default_rng(0))
    diff = np.abs(fake.astype(int) - crops[0].astype(int)).sum(axis=2)
    nose = dense[0][30].astype(int)
    assert diff[nose[1] - 5 : nose[1] + 5, nose[0] - 5 : nose[0] + 5].mean() > 10
    assert diff[:5, :5].max() <= 1


def test_training_examples_become_xray_fakes(crops, dense):
    data = CropSet(crops, dense, np.zeros(3, dtype=np.int64), np.array(["a", "b", "c"]), ["x", "y", "z"], [])
    rng = np.random.default_rng(0)
    labels = [make_example(data, i % 3, rng, sbi_ratio=0.0, xray_ratio=1.0)[1] for i in range(6)]
    assert labels == [1] * 6
    labels = [make_example(data, i % 3, rng, sbi_ratio=0.0, xray_ratio=0.0)[1] for i in range(6)]
    assert labels == [0] * 6
