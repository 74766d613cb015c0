"""`unmask train` end to end: crops -> split by source -> train -> calibrate -> weights + card."""

from __future__ import annotations

import csv
import json
import logging
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from unmask.detector.config import ModelConfig
from unmask.detector.errors import InvalidData
from unmask.detector.predictor import pick_device
from unmask.detector.registry import MODELS, PRETRAINED, file_sha256, save_checkpoint
from unmask.training.card import metrics_table, write_model_card
from unmask.training.dataset import CropSet, folder_crops, scan_labelled
from unmask.training.metrics import fit_platt, fit_thresholds, summary
from unmask.training.train import TrainOptions, predict_logits, split_by_sources, train

log = logging.getLogger(__name__)


def per_source(
    labels: np.ndarray, probs: np.ndarray, sources: np.ndarray, config: ModelConfig
) -> dict[str, dict]:
    """The summary metrics for every source, plus `all`."""
    out = {"all": summary(labels, probs, config.thresholds)}
    for source in sorted(set(sources.tolist())):
        mask = sources == source
        out[source] = summary(labels[mask], probs[mask], config.thresholds)
    return out


def calibrate(config: ModelConfig, logits: np.ndarray, labels: np.ndarray, band: float) -> ModelConfig:
    """Platt-scale the logits, then fit the three-way thresholds on calibrated probabilities.

    A slope <= 0 would invert the ranking the model learned; then the raw sigmoid is kept and
    only the thresholds are fitted."""
    a, b = fit_platt(logits, labels)
    if a <= 0:
        log.warning("Platt slope %.4f <= 0 on validation data: keeping the raw sigmoid", a)
        a, b = 1.0, 0.0
    calibrated = replace(config, calibration=(round(a, 6), round(b, 6)))
    probs = calibrated.probability(torch.from_numpy(logits)).numpy()
    return replace(calibrated, thresholds=fit_thresholds(labels, probs, band))


CALIBRATION_ROWS = ("in-source", "all")


def calibrate_for_run(
    config: ModelConfig,
    logits: np.ndarray,
    labels: np.ndarray,
    held: np.ndarray,
    band: float,
    calibrate_on: str,
) -> tuple[ModelConfig, str]:
    """Calibrate on the validation rows asked for; returns the config and what it was fitted on.

    `in-source`: only the share held back from the training sources, so metrics on held-out
    sources (accuracy above all) are measured at thresholds that never saw them. `all`: every
    validation row, held-out sources included; their accuracy is then in-sample. When the chosen
    rows hold one class only, every validation row is used; when those do too, nothing is fitted.
    """
    if calibrate_on not in CALIBRATION_ROWS:
        raise InvalidData(f"calibrate_on must be one of {', '.join(CALIBRATION_ROWS)}")
    rows = ~held if calibrate_on == "in-source" else np.ones(len(labels), dtype=bool)
    if len(np.unique(labels[rows])) < 2:
        rows, calibrate_on = np.ones(len(labels), dtype=bool), "all"
    if len(np.unique(labels[rows])) < 2:
        log.warning("validation holds one class only: thresholds left at %s", config.thresholds)
        return config, "none"
    return calibrate(config, logits[rows], labels[rows], band), calibrate_on


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.json"
    return json.loads(path.read_text()) if path.exists() else []


def training_machine(device: torch.device) -> str:
    """Where a model was trained, in words, for its card."""
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU, {torch.get_num_threads()} threads ({platform.processor() or platform.machine()})"


def load_crops(data_dir: Path, cache_dir: Path, config: ModelConfig, device: torch.device) -> CropSet:
    """Face crops of a labelled folder (cached), or of a file packed by `training.pack`."""
    if data_dir.is_file():
        from unmask.training.pack import load_packed

        return load_packed(data_dir, config.crop_size)
    return folder_crops(data_dir, cache_dir, config.crop_size, config.margin, device)


def fit_model(
    data_dir: Path,
    run_dir: Path,
    *,
    model_name: str,
    options: TrainOptions,
    cache_dir: Path,
    device: str = "auto",
    resume: bool = False,
    holdout: float = 0.1,
    band: float = 0.1,
    calibrate_on: str = "in-source",
) -> Path | None:
    """Train and calibrate one model; returns the weights path, or None if paused by max_steps."""
    dev = pick_device(device)
    config = replace(
        MODELS[model_name], thresholds=MODELS["reference-irv1"].thresholds, calibration=(1.0, 0.0)
    )
    data = load_crops(data_dir, cache_dir, config, dev)
    train_set, val_set, held = split_by_sources(data, options.val_sources, holdout, options.seed)
    if not options.labelled_fakes:
        # Self-blended images only: every fake the model sees shares its collection with a real.
        train_set = train_set.subset(train_set.labels == 0)
        if options.sbi_ratio <= 0:
            raise InvalidData("training without labelled fakes needs self-blended ones (sbi ratio > 0)")
    if not len(train_set.labels):
        raise InvalidData(f"no training crops left after holding out {options.val_sources}")
    log.info(
        "train %d crops, validation %d (%d from held-out sources)",
        len(train_set.labels),
        len(val_set.labels),
        int(held.sum()),
    )

    def on_epoch(logits: np.ndarray, rows: np.ndarray) -> dict:
        probs = 0.5 * (1 + np.tanh(0.5 * logits))  # sigmoid without overflow
        return {"validation": per_source(val_set.labels[rows], probs, val_set.sources[rows], config)}

    model, finished = train(
        config, train_set, val_set, run_dir, options, dev, resume=resume, on_epoch=on_epoch
    )
    if not finished:
        log.info("paused; continue with --resume")
        return None
    logits = predict_logits(model, config, val_set.crops, dev)
    final, calibrated_on = calibrate_for_run(config, logits, val_set.labels, held, band, calibrate_on)
    probs = final.probability(torch.from_numpy(logits)).numpy()
    metrics = per_source(val_set.labels, probs, val_set.sources, final)
    weights = run_dir / f"{model_name}.pt"
    sha = save_checkpoint(weights, model, final, half=True)
    report = {
        "model": final.to_dict(),
        "weights_sha256": sha,
        "validation": metrics,
        "held_out_sources": options.val_sources,
        "calibrated_on": calibrated_on,
        "init_sha256": file_sha256(Path(options.init_weights)) if options.init_weights else None,
        "from_published_weights": bool(
            not options.init_weights and options.pretrained and config.arch in PRETRAINED
        ),
        "options": options.__dict__,
        "train_sources": sorted(set(train_set.sources.tolist())),
        "no_face": len(data.no_face),
        "n_train": int(len(train_set.labels)),
        "trained_on": training_machine(dev),
        "train_seconds": round(sum(h["seconds"] for h in read_history(run_dir)), 1),
    }
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2, default=str))
    write_out_of_source(run_dir / "out-of-source" / "predictions.csv", val_set, held, logits, probs)
    write_model_card(run_dir / "MODEL_CARD.md", report, run_dir)
    return weights


def write_out_of_source(
    path: Path, val_set: CropSet, held: np.ndarray, logits: np.ndarray, probs: np.ndarray
) -> None:
    """The held-out sources' scores, raw logits included: what `unmask calibrate` chooses
    thresholds on (for a LOSO sweep, the folds' files together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label", "probability", "logit"])
        for i in np.flatnonzero(held):
            name = Path(val_set.paths[i]).name
            label = "fake" if val_set.labels[i] == 1 else "real"
            writer.writerow([f"{label}/{name}", label, f"{probs[i]:.6f}", f"{logits[i]:.6f}"])


def source_names(data_dir: Path) -> list[str]:
    """The sources of a labelled folder or of a packed crop file."""
    if data_dir.is_file():
        return sorted(set(np.load(data_dir, allow_pickle=False)["sources"].tolist()))
    return sorted({item.source for item in scan_labelled(data_dir)})


def fit_loso(
    data_dir: Path,
    run_dir: Path,
    *,
    model_name: str,
    options: TrainOptions,
    cache_dir: Path,
    device: str = "auto",
    sources: list[str] | None = None,
    calibrate_on: str = "in-source",
) -> dict[str, dict]:
    """Leave-one-source-out: one model per held-out source; resumable source by source."""
    all_sources = source_names(data_dir)
    results: dict[str, dict] = {}
    for source in sources or all_sources:
        sub = run_dir / f"loso-{source}"
        report = sub / "metrics.json"
        if not report.exists():
            weights = fit_model(
                data_dir,
                sub,
                model_name=model_name,
                cache_dir=cache_dir,
                device=device,
                options=replace(options, val_sources=[source]),
                resume=(sub / "checkpoint.pt").exists(),
                calibrate_on=calibrate_on,
            )
            if weights is None:
                break  # paused by max_steps; --resume continues with this source
        results[source] = json.loads(report.read_text())["validation"][source]
    run_dir.mkdir(parents=True, exist_ok=True)
    # The table covers every finished source in the folder, so several processes, each with
    # its own --val-sources, can share one sweep.
    for report in sorted(run_dir.glob("loso-*/metrics.json")):
        source = report.parent.name.removeprefix("loso-")
        results.setdefault(source, json.loads(report.read_text())["validation"][source])
    results = dict(sorted(results.items()))
    (run_dir / "loso.json").write_text(json.dumps(results, indent=2))
    (run_dir / "LOSO.md").write_text(
        "# Leave-one-source-out validation\n\nEach row: a model trained without that source, "
        "scored on all of it.\n\n" + metrics_table(results) + "\n"
    )
    return results
