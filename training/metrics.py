"""Detection metrics in plain NumPy: ROC, AUC, EER, TPR at a fixed FPR, threshold fitting."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from unmask.detector.config import Thresholds


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and thresholds, one point per distinct score (fake = positive = 1)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, int)
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    fpr = np.r_[0.0, fps / neg]
    tpr = np.r_[0.0, tps / pos]
    thresholds = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thresholds


def auc(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Area under the ROC curve; None when only one class is present."""
    y = np.asarray(labels)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def eer(labels: ArrayLike, scores: ArrayLike) -> float | None:
    """Equal error rate: where the false-positive and false-negative rates meet."""
    if len(np.unique(np.asarray(labels))) < 2:
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2)


def tpr_at_fpr(labels: ArrayLike, scores: ArrayLike, max_fpr: float) -> float | None:
    """Highest true-positive rate reachable with FPR <= max_fpr."""
    if len(np.unique(np.asarray(labels))) < 2:
        return None
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def verdict_accuracy(labels: ArrayLike, verdicts: ArrayLike) -> float | None:
    """Share of correct verdicts; `uncertain` counts as wrong."""
    y = np.asarray(labels)
    if not len(y):
        return None
    want = np.where(y == 1, "fake", "real")
    return float(np.mean(np.asarray(verdicts) == want))


def summary(labels: ArrayLike, scores: ArrayLike, thresholds: Thresholds) -> dict:
    """Every metric the evaluation report lists, for one group of images."""
    y = np.asarray(labels, dtype=np.int64)
    verdicts = [thresholds.verdict(float(p)) for p in np.asarray(scores, dtype=np.float64)]
    return {
        "n": int(len(y)),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "auc": auc(y, scores),
        "accuracy": verdict_accuracy(y, verdicts),
        "uncertain_rate": float(np.mean([v == "uncertain" for v in verdicts])) if len(y) else None,
        "eer": eer(y, scores),
        "tpr_at_fpr_1pct": tpr_at_fpr(y, scores, 0.01),
        "tpr_at_fpr_5pct": tpr_at_fpr(y, scores, 0.05),
    }


def fit_thresholds(labels: ArrayLike, scores: ArrayLike, band: float = 0.10) -> Thresholds:
    """Centre on the equal-error point; the `uncertain` band holds the `band` share of
    validation scores nearest to it."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError("threshold fitting needs both real and fake examples")
    fpr, tpr, thr = roc_curve(y, s)
    i = int(np.argmin(np.abs((1 - tpr) - fpr)))
    centre = float(np.clip(thr[i] if np.isfinite(thr[i]) else s.max(), 0.0, 1.0))
    distance = np.sort(np.abs(s - centre))
    half = float(distance[min(int(band * len(s)), len(s) - 1)]) if band > 0 else 0.0
    return Thresholds(real=round(max(centre - half, 0.0), 6), fake=round(min(centre + half, 1.0), 6))


def logistic_loss(z: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of logits z, computed without overflow."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_platt(logits: ArrayLike, labels: ArrayLike, iters: int = 100) -> tuple[float, float]:
    """Platt scaling: (a, b) so sigmoid(a * logit + b) is calibrated on these labels.

    Newton's method on standardised logits, with step halving so the loss never rises
    (plain Newton diverges when logits saturate and the Hessian is nearly singular).
    """
    raw = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    mean, scale = float(raw.mean()), float(raw.std()) or 1.0
    x = (raw - mean) / scale
    prior = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    theta = np.array([0.0, np.log(prior / (1 - prior))])  # slope, intercept
    design = np.stack([x, np.ones_like(x)], axis=1)
    loss = logistic_loss(design @ theta, y)
    for _ in range(iters):
        p = 0.5 * (1 + np.tanh(0.5 * (design @ theta)))
        grad = design.T @ (p - y) / len(y)
        hess = (design * (p * (1 - p))[:, None]).T @ design / len(y) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6 and logistic_loss(design @ (theta - t * step), y) > loss:
            t /= 2
        theta = theta - t * step
        new_loss = logistic_loss(design @ theta, y)
        if loss - new_loss < 1e-12:
            break
        loss = new_loss
    slope, intercept = theta
    return float(slope / scale), float(intercept - slope * mean / scale)
