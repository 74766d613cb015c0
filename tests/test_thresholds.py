"""Honest thresholds: chosen on out-of-source predictions, they keep their promises there."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from unmask.cli import main
from unmask.detector.config import ModelConfig, Thresholds
from unmask.detector.registry import file_sha256, load_model
from unmask.training.thresholds import (
    Predictions,
    decided_metrics,
    honest_thresholds,
    read_predictions,
    threshold_report,
)


def overlapping(n: int = 2000, shift: float = 0.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = rng.normal(0, 1, n) + shift * (2 * labels - 1)
    return labels, 1 / (1 + np.exp(-logits))


@pytest.mark.parametrize("shift", [0.1, 0.6, 2.0])
def test_the_promised_error_rates_hold_on_the_fitting_data(shift):
    labels, probs = overlapping(shift=shift)
    t = honest_thresholds(labels, probs, max_fpr=0.05, max_miss=0.05)
    m = decided_metrics(labels, probs, t)
    assert m["false_positive_rate"] <= 0.05
    assert m["miss_rate"] <= 0.05
    assert 0 <= t.real <= t.fake <= 1


def test_a_weak_model_gets_a_wide_band_and_a_strong_one_a_narrow_band():
    weak = decided_metrics(*overlapping(shift=0.1), honest_thresholds(*overlapping(shift=0.1), 0.05, 0.05))
    strong = decided_metrics(*overlapping(shift=2.0), honest_thresholds(*overlapping(shift=2.0), 0.05, 0.05))
    assert weak["coverage"] < 0.2 < strong["coverage"]
    assert strong["accuracy_on_decided"] > 0.9


def test_separable_scores_are_all_decided():
    labels = np.array([0] * 50 + [1] * 50)
    probs = np.concatenate([np.linspace(0.0, 0.3, 50), np.linspace(0.7, 1.0, 50)])
    t = honest_thresholds(labels, probs, 0.05, 0.05)
    m = decided_metrics(labels, probs, t)
    assert (m["coverage"], m["accuracy_on_decided"]) == (1.0, 1.0)


def test_the_report_recalibrates_and_checks_each_source_held_out():
    labels, probs = overlapping(shift=0.8)
    sources = np.array(["a", "b"] * (len(labels) // 2))
    data = Predictions(labels, probs, sources, None)
    config, report = threshold_report(data, ModelConfig(name="m"), max_fpr=0.05, max_miss=0.05)
    assert report["all"]["false_positive_rate"] <= 0.05 and report["all"]["miss_rate"] <= 0.05
    assert config.thresholds == Thresholds(**report["thresholds"])
    assert set(report["source_held_out_check"]) == {"a", "b"}
    assert config.calibration != (1.0, 0.0)


def test_a_ranking_near_chance_keeps_the_models_calibration():
    """Platt scaling on a near-chance ranking would give every face about the base rate; the
    model's own calibration stays, the report says why, and the error promises still hold."""
    labels, probs = overlapping(shift=0.05)  # pooled AUC about 0.53
    data = Predictions(labels, probs, np.array(["a"] * len(labels)), None)
    own = ModelConfig(name="m", calibration=(1.5, -0.2))
    config, report = threshold_report(data, own)
    assert config.calibration == own.calibration
    assert report["platt_scaling"].startswith("kept: the pooled out-of-source ranking (AUC 0.5")
    assert report["all"]["false_positive_rate"] <= 0.05 and report["all"]["miss_rate"] <= 0.05


def write_report(folder, rows, sha=None):
    folder.mkdir(parents=True)
    with (folder / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label", "probability", "verdict", "faces"])
        writer.writerows(rows)
    if sha:
        (folder / "metrics.json").write_text(json.dumps({"model": {"weights_sha256": sha}}))


def test_calibrate_writes_the_same_weights_with_honest_thresholds(tmp_path, test_weights, capsys):
    labels, probs = overlapping(n=400, shift=0.8)
    rows = [
        [f"{'fake' if y else 'real'}/src{i % 2}__{i}.jpg", "fake" if y else "real", f"{p:.6f}", "x", 1]
        for i, (y, p) in enumerate(zip(labels, probs))
    ]
    rows.append(["real/src0__noface.jpg", "real", "", "no_face", 0])  # no verdict to threshold
    write_report(tmp_path / "fold", rows, sha=file_sha256(test_weights))
    out = tmp_path / "out" / "calibrated.pt"
    assert main(["calibrate", str(tmp_path / "fold"), "--weights", str(test_weights), "--out", str(out)]) == 0
    assert "reals called fake" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "calibrated-thresholds.json").read_text())
    assert report["all"]["n"] == 400
    model = load_model(out)
    assert model.config.thresholds.fake == report["thresholds"]["fake"]
    original = load_model(test_weights, "reference-irv1")
    for a, b in zip(model.module.state_dict().values(), original.module.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())


def test_calibrate_refuses_reports_of_other_weights(tmp_path, test_weights, capsys):
    write_report(tmp_path / "fold", [["real/a__1.jpg", "real", "0.2", "real", 1]], sha="0" * 64)
    (tmp_path / "fold" / "predictions.csv").open("a").write("fake/a__2.jpg,fake,0.7,fake,1\n")
    out = tmp_path / "x.pt"
    assert main(["calibrate", str(tmp_path / "fold"), "--weights", str(test_weights), "--out", str(out)]) == 1
    assert "not" in capsys.readouterr().err and not out.exists()


def test_reading_needs_both_classes(tmp_path):
    write_report(tmp_path / "fold", [["real/a__1.jpg", "real", "0.2", "real", 1]])
    with pytest.raises(Exception, match="both real and fake"):
        read_predictions([tmp_path / "fold"])


def test_a_folds_raw_logits_calibrate_the_model_trained_on_every_source(tmp_path, test_weights, capsys):
    """Reports of other weights are accepted when they carry raw logits (a fold of the same
    recipe); Platt scaling is then fitted on those logits and the promises hold on them."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 600)
    logits = rng.normal(0, 4, 600) + 3.0 * (2 * labels - 1)
    folder = tmp_path / "fold"
    folder.mkdir()
    with (folder / "predictions.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label", "probability", "verdict", "faces", "logit"])
        for i, (y, z) in enumerate(zip(labels, logits)):
            name = "fake" if y else "real"
            p = 1 / (1 + np.exp(-z))
            writer.writerow([f"{name}/src{i % 3}__{i}.jpg", name, f"{p:.6f}", "x", 1, f"{z:.6f}"])
    (folder / "metrics.json").write_text(json.dumps({"model": {"weights_sha256": "f" * 64}}))
    out = tmp_path / "calibrated.pt"
    assert main(["calibrate", str(folder), "--weights", str(test_weights), "--out", str(out)]) == 0
    assert "a fold" in capsys.readouterr().out
    config = load_model(out).config
    a, b = config.calibration
    assert 0.1 < a < 1.0  # fitted to these logits' spread (std 4), not left at 1
    probs = 1 / (1 + np.exp(-(a * logits + b)))
    m = decided_metrics(labels, probs, config.thresholds)
    assert m["false_positive_rate"] <= 0.05 and m["miss_rate"] <= 0.05
    assert 0 < m["coverage"] < 1
