"""Packed crops: a small file that trains where the images are not, and LOSO folds' raw
out-of-source scores that thresholds are chosen on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_training import random_crops
from unmask.detector.config import ModelConfig
from unmask.detector.errors import InvalidData
from unmask.training.fit import load_crops, source_names
from unmask.training.metrics import fit_platt
from unmask.training.pack import load_packed, pack
from unmask.training.thresholds import Predictions, threshold_report


def smooth_crops(n: int):
    data = random_crops(n)
    # JPEG is lossy on noise; smooth gradients show whether pixels survive packing.
    ramp = np.linspace(0, 255, 160, dtype=np.float32)
    data.crops[:] = np.stack([np.add.outer(ramp, ramp) / 2] * 3, axis=-1).astype(np.uint8)
    data.dense = np.tile(np.linspace(10, 150, 136, dtype=np.float32).reshape(68, 2), (n, 1, 1))
    return data


def test_a_pack_round_trips_labels_sources_landmarks_and_pixels(tmp_path):
    data = smooth_crops(6)
    info = pack(data, tmp_path / "crops.npz")
    assert info["crops"] == 6 and info["dense"] and info["bytes"] < 6 * 8000
    back = load_packed(tmp_path / "crops.npz", 160)
    assert back.crops.shape == data.crops.shape
    assert np.abs(back.crops.astype(int) - data.crops.astype(int)).mean() < 3
    assert np.array_equal(back.labels, data.labels) and list(back.sources) == list(data.sources)
    assert back.landmarks == pytest.approx(data.landmarks, abs=0.2)
    assert back.dense == pytest.approx(data.dense, abs=0.2)
    assert back.paths == data.paths
    # training reads a packed file where it would read a folder
    again = load_crops(
        tmp_path / "crops.npz", tmp_path, ModelConfig(name="m", crop_size=160), torch.device("cpu")
    )
    assert again.crops.shape == data.crops.shape
    assert source_names(tmp_path / "crops.npz") == ["a", "b"]


def test_a_file_that_is_not_a_pack_is_refused(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidData):
        load_packed(tmp_path / "x.npz", 160)


def test_fold_logits_set_the_calibration_directly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 600)
    logits = rng.normal(0, 2, 600) + 1.5 * (2 * labels - 1)
    data = Predictions(labels, 1 / (1 + np.exp(-logits)), np.array(["x"] * 600), None, logits)
    config, report = threshold_report(data, ModelConfig(name="m", calibration=(3.0, 1.0)))
    a, b = fit_platt(logits, labels)
    assert config.calibration == pytest.approx((a, b), abs=1e-6)
    assert report["all"]["false_positive_rate"] <= 0.05 and report["all"]["miss_rate"] <= 0.05
