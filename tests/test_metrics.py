"""Metrics against hand-computed cases; threshold and Platt calibration."""

from __future__ import annotations

import numpy as np
import pytest

from unmask.detector.config import Thresholds
from unmask.training.metrics import auc, eer, fit_platt, fit_thresholds, roc_curve, summary, tpr_at_fpr

LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]


def test_roc_points_by_hand():
    fpr, tpr, thr = roc_curve(LABELS, SCORES)
    # Descending thresholds 0.8 (1 tp), 0.4 (1 fp), 0.35 (2 tp), 0.1 (2 fp).
    assert fpr.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert thr[1:].tolist() == [0.8, 0.4, 0.35, 0.1]


def test_auc_by_hand():
    # Pairs (fake, real) ranked correctly: (0.35>0.1), (0.8>0.1), (0.8>0.4); wrong: (0.35<0.4).
    assert auc(LABELS, SCORES) == pytest.approx(0.75)
    assert auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([1, 1], [0.2, 0.3]) is None


def test_eer_and_tpr_at_fpr_by_hand():
    assert eer(LABELS, SCORES) == pytest.approx(0.5)
    assert eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert tpr_at_fpr(LABELS, SCORES, 0.01) == 0.5
    assert tpr_at_fpr(LABELS, SCORES, 0.5) == 1.0


def test_summary_counts_uncertain_as_wrong():
    bands = Thresholds(real=0.3, fake=0.7)
    out = summary([0, 0, 1, 1], [0.1, 0.5, 0.9, 0.2], bands)
    # verdicts: real (right), uncertain (wrong), fake (right), real (wrong)
    assert out["accuracy"] == 0.5
    assert out["uncertain_rate"] == 0.25
    assert (out["n"], out["n_real"], out["n_fake"]) == (4, 2, 2)


def test_thresholds_verdict_bands():
    bands = Thresholds(real=0.3, fake=0.7)
    assert [bands.verdict(p) for p in (0.0, 0.3, 0.31, 0.69, 0.7, 1.0)] == [
        "real",
        "real",
        "uncertain",
        "uncertain",
        "fake",
        "fake",
    ]
    single = Thresholds(real=0.5, fake=0.5)
    assert [single.verdict(p) for p in (0.49, 0.5, 0.51)] == ["real", "real", "fake"]
    with pytest.raises(ValueError):
        Thresholds(real=0.8, fake=0.2)


def test_fit_thresholds_puts_the_band_around_the_overlap():
    rng = np.random.default_rng(0)
    real = rng.normal(0.3, 0.1, 500).clip(0, 1)
    fake = rng.normal(0.7, 0.1, 500).clip(0, 1)
    labels = np.r_[np.zeros(500), np.ones(500)]
    scores = np.r_[real, fake]
    bands = fit_thresholds(labels, scores, band=0.1)
    assert 0.4 < bands.real < 0.5 < bands.fake < 0.6
    inside = (scores > bands.real) & (scores < bands.fake)
    assert inside.mean() == pytest.approx(0.1, abs=0.01)
    narrow = fit_thresholds(labels, scores, band=0.0)
    assert narrow.real == narrow.fake
    with pytest.raises(ValueError):
        fit_thresholds([1, 1], [0.2, 0.3])


def test_platt_recovers_a_known_calibration():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, 20000)
    truth = 1 / (1 + np.exp(-(0.5 * logits - 0.7)))
    labels = rng.random(20000) < truth
    a, b = fit_platt(logits, labels)
    assert a == pytest.approx(0.5, abs=0.05)
    assert b == pytest.approx(-0.7, abs=0.07)


def test_platt_stays_finite_on_saturated_or_separable_logits():
    rng = np.random.default_rng(2)
    noise = rng.normal(30, 20, 5000)  # large logits that carry no signal
    a, b = fit_platt(noise, rng.random(5000) < 0.45)
    assert abs(a) < 0.01
    assert 1 / (1 + np.exp(-(a * 30 + b))) == pytest.approx(0.45, abs=0.03)
    separable = np.r_[rng.normal(-5, 1, 100), rng.normal(5, 1, 100)]
    a, b = fit_platt(separable, np.r_[np.zeros(100), np.ones(100)])
    assert np.isfinite([a, b]).all() and a > 1
