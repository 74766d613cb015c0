"""Verdict thresholds a moderator can act on, chosen on out-of-source predictions.

Thresholds fitted on validation data from the training sources promise far more than a model
delivers on sources it never saw. Here they come from predictions on sources left out of
training (the leave-one-source-out folds, or a model's held-out sources):

- `fake` only where the out-of-source false-positive rate (reals called fake) is at most
  `max_fpr`;
- `real` only where the out-of-source miss rate (fakes called real) is at most `max_miss`;
- `uncertain` in between, however wide that band must be.

The report says what that costs: the share of faces that get a decided verdict (coverage),
and the accuracy on those, overall and per source.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from unmask.detector.config import ModelConfig, Thresholds
from unmask.training.dataset import InvalidData
from unmask.training.metrics import auc, fit_platt


@dataclass
class Predictions:
    """Out-of-source scores: label (1 = fake), calibrated P(fake), source, per image."""

    labels: np.ndarray
    probabilities: np.ndarray
    sources: np.ndarray
    weights_sha256: str | None
    logits: np.ndarray | None = None  # raw model outputs, from LOSO folds' out-of-source files


def source_of(filename: str) -> str:
    """faces-v1 names files `<source>__<id>.<ext>`."""
    name = Path(filename).name
    return name.split("__", 1)[0] if "__" in name else "unknown"


def read_predictions(report_dirs: list[Path]) -> Predictions:
    """predictions.csv (and the weights hash in metrics.json) of `unmask evaluate` reports or
    of the out-of-source/ folders of `unmask train` runs; both carry raw logits (evaluate
    reports written before that column existed give probabilities only).
    Images without a scored face are left out: they get no verdict to threshold."""
    labels, probs, sources, logits, hashes = [], [], [], [], set()
    for folder in report_dirs:
        path = folder / "predictions.csv"
        if not path.is_file():
            raise InvalidData(f"{path} not found: pass folders written by `unmask evaluate`")
        metrics = folder / "metrics.json"
        if not metrics.is_file() and folder.name == "out-of-source":
            metrics = folder.parent / "metrics.json"  # the train run's report
        if metrics.is_file():
            # evaluate reports name the weights under "model", train runs at the top level
            meta = json.loads(metrics.read_text())
            hashes.add(meta.get("model", {}).get("weights_sha256") or meta.get("weights_sha256"))
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if row["probability"] in ("", "None"):
                    continue
                labels.append(1 if row["label"] == "fake" else 0)
                probs.append(float(row["probability"]))
                sources.append(source_of(row["file"]))
                logits.append(float(row["logit"]) if row.get("logit") not in (None, "") else None)
    hashes.discard(None)
    if len(hashes) > 1:
        raise InvalidData("the reports come from different weights; threshold one model at a time")
    if len(set(labels)) < 2:
        raise InvalidData("out-of-source predictions need both real and fake images")
    raw = np.array(logits, dtype=np.float64) if all(v is not None for v in logits) else None
    return Predictions(
        np.array(labels), np.array(probs), np.array(sources), hashes.pop() if hashes else None, raw
    )


def logit(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    q = np.clip(p, eps, 1 - eps)
    return np.log(q / (1 - q))


def raw_logits(probs: np.ndarray, calibration: tuple[float, float], eps: float = 1e-7) -> np.ndarray:
    """The model outputs z behind calibrated scores P(fake) = sigmoid(a * z + b)."""
    a, b = calibration
    return (logit(probs, eps) - b) / a


# Platt scaling is refitted out of source only on a ranking at least this good (pooled AUC).
# On a ranking near chance the fit's slope is near zero and every face gets about the base rate
# (a fold of unmask-lite0 at pooled AUC 0.487: sigmoid(0.0017 z - 0.178), 0.455 for every face),
# hiding the ranking that does hold within a source; the model's own calibration then stays.
MIN_REFIT_AUC = 0.6


def platt_verdict(labels: np.ndarray, scores: np.ndarray, slope: float) -> str | None:
    """Why Platt scaling is not refitted on these out-of-source scores; None when it is."""
    pooled = auc(labels, scores)
    if slope <= 0 or pooled < 0.5:
        return f"kept: the out-of-source ranking is inverted (pooled AUC {pooled:.3f})"
    if pooled < MIN_REFIT_AUC:
        return f"kept: the pooled out-of-source ranking (AUC {pooled:.3f}) is too weak to fit a slope to"
    return None


def recalibrate(config: ModelConfig, probs: np.ndarray, labels: np.ndarray) -> tuple[ModelConfig, str | None]:
    """Platt scaling refitted on out-of-source scores, composed with the model's own:
    sigmoid(a2 * (a1 * z + b1) + b2). On a ranking inverted or near chance out of source the
    calibration is left as it is, and the reason (`platt_verdict`) is returned with it."""
    a2, b2 = fit_platt(logit(probs), labels)
    refused = platt_verdict(labels, probs, a2)
    if refused is not None:
        return config, refused
    a1, b1 = config.calibration
    return replace(config, calibration=(round(a2 * a1, 8), round(a2 * b1 + b2, 8))), None


def apply_calibration(old: ModelConfig, new: ModelConfig, probs: np.ndarray) -> np.ndarray:
    """Scores made under `old`'s calibration, as `new`'s would be."""
    a, b = new.calibration
    z = raw_logits(probs, old.calibration)
    return 1 / (1 + np.exp(-(a * z + b)))


def honest_thresholds(labels: np.ndarray, probs: np.ndarray, max_fpr: float, max_miss: float) -> Thresholds:
    """The lowest `fake` threshold whose false-positive rate on these reals is <= max_fpr, and
    the highest `real` threshold whose miss rate on these fakes is <= max_miss."""
    reals, fakes = np.sort(probs[labels == 0]), np.sort(probs[labels == 1])
    # fake: p >= t. At most floor(max_fpr * n) reals may reach it: t sits just above the next one.
    allowed = math.floor(max_fpr * len(reals))
    fake = float(np.nextafter(reals[len(reals) - allowed - 1], 2.0)) if allowed < len(reals) else 0.0
    # real: p <= t. At most floor(max_miss * n) fakes may lie at or below it.
    allowed = math.floor(max_miss * len(fakes))
    real = float(np.nextafter(fakes[allowed], -1.0)) if allowed < len(fakes) else 1.0
    fake, real = min(max(fake, 0.0), 1.0), min(max(real, 0.0), 1.0)
    if real > fake:  # the bands overlap: any point between keeps both promises
        real = fake = (real + fake) / 2
    return Thresholds(real=real, fake=fake)


def decided_metrics(labels: np.ndarray, probs: np.ndarray, thresholds: Thresholds) -> dict:
    verdicts = np.array([thresholds.verdict(float(p)) for p in probs])
    decided = verdicts != "uncertain"
    right = ((verdicts == "fake") & (labels == 1)) | ((verdicts == "real") & (labels == 0))
    reals, fakes = labels == 0, labels == 1
    return {
        "n": int(len(labels)),
        "auc": auc(labels, probs),
        "coverage": float(decided.mean()) if len(labels) else None,
        "accuracy_on_decided": float(right[decided].mean()) if decided.any() else None,
        "false_positive_rate": float((verdicts[reals] == "fake").mean()) if reals.any() else None,
        "miss_rate": float((verdicts[fakes] == "real").mean()) if fakes.any() else None,
        "fake_called": int((verdicts == "fake").sum()),
        "real_called": int((verdicts == "real").sum()),
    }


def threshold_report(
    data: Predictions, config: ModelConfig, *, max_fpr: float = 0.05, max_miss: float = 0.05
) -> tuple[ModelConfig, dict]:
    """The recalibrated config with honest thresholds, and what they cost, per source.

    With raw logits (LOSO folds: several models, each scoring the source it never saw), Platt
    scaling is fitted on them directly and given to the model trained on every source, whose
    logits are taken to be on the folds' scale. Without, the scores are the given model's own
    probabilities, and its calibration is refitted on top."""
    if data.logits is not None:
        a, b = fit_platt(data.logits, data.labels)
        refused = platt_verdict(data.labels, data.logits, a)
        calibrated = replace(config, calibration=(round(a, 8), round(b, 8))) if refused is None else config
        platt = refused or "fitted on the raw logits"
        probs = calibrated.probability(torch.from_numpy(data.logits)).numpy().astype(np.float64)
    else:
        calibrated, refused = recalibrate(config, data.probabilities, data.labels)
        probs = apply_calibration(config, calibrated, data.probabilities)
        platt = refused or "refitted on the probabilities"
    thresholds = honest_thresholds(data.labels, probs, max_fpr, max_miss)
    fitted = replace(
        calibrated, thresholds=Thresholds(real=round(thresholds.real, 6), fake=round(thresholds.fake, 6))
    )
    # Rounding must not break the promise: nudge outwards if it moved a threshold inwards.
    if fitted.thresholds.fake < thresholds.fake or fitted.thresholds.real > thresholds.real:
        fitted = replace(calibrated, thresholds=thresholds)
    report = {
        "max_false_positive_rate": max_fpr,
        "source_held_out_check": source_held_out_check(data.labels, probs, data.sources, max_fpr, max_miss),
        "max_miss_rate": max_miss,
        "weights_sha256": data.weights_sha256,
        "calibration": list(fitted.calibration),
        "platt_scaling": platt,
        "thresholds": {"real": fitted.thresholds.real, "fake": fitted.thresholds.fake},
        "all": decided_metrics(data.labels, probs, fitted.thresholds),
        "by_source": {
            s: decided_metrics(data.labels[data.sources == s], probs[data.sources == s], fitted.thresholds)
            for s in sorted(set(data.sources.tolist()))
        },
    }
    return fitted, report


def source_held_out_check(
    labels: np.ndarray, probs: np.ndarray, sources: np.ndarray, max_fpr: float, max_miss: float
) -> dict:
    """Do thresholds chosen on some sources keep their promise on another? For each source
    holding both classes: thresholds from the other sources, measured on it."""
    out = {}
    for source in sorted(set(sources.tolist())):
        rest, mine = sources != source, sources == source
        if len(set(labels[rest].tolist())) < 2 or len(set(labels[mine].tolist())) < 2:
            continue
        thresholds = honest_thresholds(labels[rest], probs[rest], max_fpr, max_miss)
        out[source] = {
            "thresholds": {"real": thresholds.real, "fake": thresholds.fake},
            **decided_metrics(labels[mine], probs[mine], thresholds),
        }
    return out


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def report_markdown(report: dict) -> str:
    t = report["thresholds"]
    lines = [
        f"`fake` if P(fake) >= {t['fake']:.6f}, `real` if P(fake) <= {t['real']:.6f}, `uncertain` "
        f"between. Chosen on out-of-source predictions so that at most "
        f"{pct(report['max_false_positive_rate'])} of real faces are called fake and at most "
        f"{pct(report['max_miss_rate'])} of fakes are called real. Platt scaling: "
        f"{report.get('platt_scaling', 'refitted')}."
        + (
            " The fold's raw logits z were first mapped to {:g}·z {:+g}, onto these weights' scale.".format(
                *report["fold_logit_scale"]
            )
            if report.get("fold_logit_scale")
            else ""
        ),
        "",
        "| source | n | AUC | coverage | accuracy on decided | reals called fake | fakes called real |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in [("all", report["all"]), *report["by_source"].items()]:
        roc = "–" if m["auc"] is None else f"{m['auc']:.3f}"
        lines.append(
            f"| {name} | {m['n']} | {roc} | {pct(m['coverage'])} | {pct(m['accuracy_on_decided'])} | "
            f"{pct(m['false_positive_rate'])} | {pct(m['miss_rate'])} |"
        )
    check = report.get("source_held_out_check") or {}
    if check:
        lines += [
            "",
            "Thresholds chosen without one source, measured on it (do the promises travel?):",
            "",
            "| held-out source | coverage | accuracy on decided | reals called fake | fakes called real |",
            "|---|---|---|---|---|",
        ]
        for name, m in check.items():
            lines.append(
                f"| {name} | {pct(m['coverage'])} | {pct(m['accuracy_on_decided'])} | "
                f"{pct(m['false_positive_rate'])} | {pct(m['miss_rate'])} |"
            )
    return "\n".join(lines) + "\n"
