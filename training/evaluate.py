"""`unmask evaluate`: labelled folders through the production path -> metrics and plots."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unmask.detector.errors import InvalidImage
from unmask.detector.faces import decode_image
from unmask.detector.predictor import Predictor
from unmask.training.dataset import LabelledImage, scan_labelled
from unmask.training.metrics import roc_curve, summary
from unmask.training.thresholds import raw_logits

log = logging.getLogger(__name__)


@dataclass
class Scored:
    item: LabelledImage
    probability: float | None
    verdict: str
    faces: int


def score_image(predictor: Predictor, item: LabelledImage, cache: Path | None) -> Scored:
    """The worker's path without Grad-CAM (scores are identical); cached by content and model."""
    data = item.path.read_bytes()
    key = hashlib.sha1(data + predictor.model.weights_sha256.encode()).hexdigest()
    hit = cache / f"{key}.json" if cache else None
    if hit and hit.exists():
        row = json.loads(hit.read_text())
    else:
        try:
            pred = predictor.predict(decode_image(data), explain=False)
            row = {
                "p": pred.fake_probability,
                "v": pred.verdict,
                "f": sum(f.fake_probability is not None for f in pred.faces),
            }
        except InvalidImage as exc:
            row = {"p": None, "v": "failed", "f": 0, "error": exc.code}
        if hit:
            hit.write_text(json.dumps(row))
    return Scored(item, row["p"], row["v"], row["f"])


def group_metrics(rows: list[Scored], predictor: Predictor) -> dict:
    """Metrics over images with a face, plus how many had none."""
    with_face = [r for r in rows if r.probability is not None]
    labels = np.array([r.item.label for r in with_face], dtype=np.int64)
    probs = np.array([r.probability for r in with_face], dtype=np.float64)
    out = summary(labels, probs, predictor.config.thresholds)
    out.update(
        n=len(rows),
        n_real=sum(r.item.label == 0 for r in rows),
        n_fake=sum(r.item.label == 1 for r in rows),
        no_face=len(rows) - len(with_face),
    )
    if out["accuracy"] is not None:  # images without a face can't be right either
        out["accuracy"] = out["accuracy"] * len(with_face) / len(rows)
    return out


def evaluate(predictor: Predictor, data_dir: Path, out_dir: Path, cache: Path | None = None) -> dict:
    """Score every image, write metrics.json, predictions.csv, roc.png and confusion.png."""
    items = scan_labelled(data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    rows = [
        score_image(predictor, item, cache)
        for item in tqdm(items, desc="evaluate", unit="img", mininterval=2.0)
    ]
    metrics = group_metrics(rows, predictor)
    sources = sorted({r.item.source for r in rows})
    if sources != ["unknown"]:
        metrics["by_source"] = {
            s: group_metrics([r for r in rows if r.item.source == s], predictor) for s in sources
        }
    # The calibration too: with it the raw logits below are what `unmask calibrate` fits, so a
    # model's scores on sources it never saw can calibrate another trained the same way.
    metrics["model"] = {**predictor.provenance(), "calibration": list(predictor.config.calibration)}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_predictions(out_dir / "predictions.csv", rows, data_dir, predictor.config.calibration)
    plot_roc(out_dir / "roc.png", rows)
    plot_confusion(out_dir / "confusion.png", rows)
    return metrics


def write_predictions(path: Path, rows: list[Scored], root: Path, calibration: tuple[float, float]) -> None:
    """One row per image: its highest face score, and that score's raw logit."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label", "probability", "verdict", "faces", "logit"])
        for r in rows:
            writer.writerow(
                [
                    r.item.path.relative_to(root),
                    "fake" if r.item.label else "real",
                    "" if r.probability is None else f"{r.probability:.6f}",
                    r.verdict,
                    r.faces,
                    ""
                    if r.probability is None
                    else f"{raw_logits(np.float64(r.probability), calibration, 1e-12):.6f}",
                ]
            )


def pyplot():  # noqa: ANN201
    """matplotlib without a display, imported only when a report is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path: Path, rows: list[Scored]) -> None:
    plt = pyplot()
    scored = [r for r in rows if r.probability is not None]
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    if len({r.item.label for r in scored}) == 2:
        scores = [float(r.probability or 0.0) for r in scored]
        fpr, tpr, _ = roc_curve([r.item.label for r in scored], scores)
        ax.plot(fpr, tpr, lw=2)
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC (image level)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(path: Path, rows: list[Scored]) -> None:
    plt = pyplot()
    columns = ["real", "uncertain", "fake", "no_face"]
    counts = np.zeros((2, len(columns)), dtype=int)
    for r in rows:
        if r.verdict in columns:
            counts[r.item.label, columns.index(r.verdict)] += 1
    fig, ax = plt.subplots(figsize=(5.5, 3), dpi=120)
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks([0, 1], ["real", "fake"])
    ax.set(xlabel="verdict", ylabel="label")
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, str(v), ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
