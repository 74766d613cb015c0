"""Model cards: what a trained model is, how it was made and how well it generalises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unmask.detector.errors import InvalidData

COLUMNS = (
    "n",
    "n_real",
    "n_fake",
    "auc",
    "accuracy",
    "uncertain_rate",
    "eer",
    "tpr_at_fpr_1pct",
    "tpr_at_fpr_5pct",
)


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metrics_table(rows: dict[str, dict], held_out: list[str] | None = None) -> str:
    held_out = held_out or []
    lines = ["| source | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for source, metrics in rows.items():
        name = f"**{source}** (held out)" if source in held_out else source
        lines.append(f"| {name} | " + " | ".join(fmt(metrics.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def shortfall(what: str, source: str, metrics: dict, target: float) -> str | None:
    """A card line if the source misses the target: AUC when it has both classes, else accuracy."""
    auc = metrics.get("auc")
    value, name = (auc, "AUC") if auc is not None else (metrics.get("accuracy"), "accuracy")
    if value is None or value >= target:
        return None
    return f"- {what} `{source}`: {name} {value:.3f}, below the {target} target."


def shortfalls(report: dict, target: float = 0.85) -> list[str]:
    """Held-out sources that miss the generalisation target, worded for the card."""
    lines = (
        shortfall("Held-out", source, report["validation"].get(source, {}), target)
        for source in report["held_out_sources"]
    )
    notes = [line for line in lines if line]
    return notes or [f"- Every held-out source reaches {target} (AUC, or accuracy for one class)."]


ARCH_NAMES = {
    "inception_resnet_v1": "facenet-pytorch InceptionResnetV1, `classify=True, num_classes=1`",
    "small_cnn": "Unmask's 0.3 M-parameter CNN",
}


def recipe_levers(opts: dict) -> str:
    """The confound levers a run used, in words."""
    if opts["sbi_ratio"] <= 0:
        text = "labelled fakes, no self-blended fakes"
    else:
        fakes = "labelled fakes and " if opts.get("labelled_fakes", True) else "no labelled fakes; only "
        text = f"{fakes}self-blended fakes for {opts['sbi_ratio']:.0%} of sampled real crops"
    weight = opts.get("source_adversary", 0.0)
    if weight:
        text += f", class-conditional source adversary (gradient reversal, weight {weight})"
    return text


def start_of(report: dict) -> str:
    init = report["options"].get("init_weights")
    if not init and report.get("from_published_weights"):
        return "fine-tuned from the architecture's published ImageNet weights"
    if not init:
        return "trained from scratch"
    return f"fine-tuned from `{Path(init).name}` (sha256 `{(report.get('init_sha256') or '?')[:12]}…`)"


def calibration_note(calibrated_on: str) -> str:
    if calibrated_on == "in-source":
        return (
            "Calibration and thresholds were fitted on the share held back from the training\n"
            "sources only: accuracy and uncertain rate on held-out sources are out of sample."
        )
    if calibrated_on == "all":
        return (
            "Calibration and thresholds were fitted on all of this validation data, so accuracy and\n"
            "uncertain rate here are in-sample for the thresholds; AUC, EER and TPR do not depend on them."
        )
    return "Validation held one class only: no calibration was fitted."


def loso_section(loso_dir: Path, target: float = 0.85) -> tuple[str, list[str]]:
    """The leave-one-source-out table of a `--loso` run folder, and its shortfalls."""
    rows, recipes = {}, set()
    for report_path in sorted(loso_dir.glob("loso-*/metrics.json")):
        sub = json.loads(report_path.read_text())
        source = sub["held_out_sources"][0]
        rows[source] = sub["validation"][source]
        opts = sub["options"]
        recipes.add(
            f"`{sub['model']['name']}`, {opts['epochs']} epochs × {opts['samples_per_epoch']} crops, "
            f"source-balanced sampling {opts['balance_sources']}, {recipe_levers(opts)}; "
            f"thresholds fitted on {sub.get('calibrated_on', 'all')} validation rows"
        )
    if not rows:
        raise InvalidData(f"{loso_dir} holds no finished leave-one-source-out runs (loso-*/metrics.json)")
    lines = (shortfall("Left out in LOSO,", source, m, target) for source, m in rows.items())
    notes = [line for line in lines if line]
    text = (
        f"From `{loso_dir.name}`: one model per source, trained without it and scored on all of it "
        f"({'; '.join(sorted(recipes))}).\n\n" + metrics_table(rows)
    )
    return text, notes


def evaluation_section(reports: list[tuple[str, Path]]) -> str:
    """Production-path reports of `unmask evaluate`, one row each, with AUC by source."""
    loaded = [(name, json.loads((folder / "metrics.json").read_text())) for name, folder in reports]
    sources = sorted({s for _, m in loaded for s in m.get("by_source", {})})
    cols = ("n", "no_face", "auc", "accuracy", "uncertain_rate", "eer", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct")
    head = "| set | " + " | ".join(cols) + "".join(f" | {s} AUC" for s in sources) + " |"
    lines = [head, "|---" * (len(cols) + len(sources) + 1) + "|"]
    for name, m in loaded:
        by = m.get("by_source", {})
        cells = [fmt(m.get(c)) for c in cols] + [fmt(by.get(s, {}).get("auc")) for s in sources]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_model_card(
    path: Path,
    report: dict,
    run_dir: Path,
    *,
    loso_dir: Path | None = None,
    evaluations: list[tuple[str, Path]] | None = None,
) -> None:
    """Markdown card from a training report, plus LOSO and `unmask evaluate` results if given."""
    model = report["model"]
    opts = report["options"]
    history = run_dir / "history.json"
    extra, loso_notes = "", list[str]()
    if loso_dir is not None:
        table, loso_notes = loso_section(loso_dir)
        extra += f"## Leave-one-source-out\n{table}\n\n"
    if evaluations:
        extra += (
            "## Production-path evaluation (`unmask evaluate`)\n"
            "MTCNN on the whole image, every face scored, image score = highest face score.\n\n"
            f"{evaluation_section(evaluations)}\n\n"
        )
    text = f"""# Model card: {model["name"]}

- Architecture: `{model["arch"]}` ({ARCH_NAMES.get(model["arch"], model["arch"])}),
  {start_of(report)}; input {model["crop_size"]} px MTCNN crop (margin
  {model["margin"]}) resized to {model["input_size"]} px, normalised with mean {model["mean"]},
  std {model["std"]}.
- Weights sha256: `{report["weights_sha256"]}` (fp16 on disk, loaded as fp32).
- Calibration: P(fake) = sigmoid({model["calibration"][0]} * logit + {model["calibration"][1]})
  (Platt scaling on validation data).
- Thresholds: `real` if P(fake) <= {model["thresholds"]["real"]}, `fake` if P(fake) >=
  {model["thresholds"]["fake"]}, `uncertain` between.

## Data and recipe
- Training sources: {", ".join(report["train_sources"])} ({report["n_train"]} face crops);
  held-out sources: {", ".join(report["held_out_sources"]) or "none"}; {report["no_face"]} images
  had no usable face.
- Epochs {opts["epochs"]}, batch {opts["batch_size"]}, AdamW lr {opts["lr"]} (cosine),
  weight decay {opts["weight_decay"]}, seed {opts["seed"]}, source-balanced sampling
  {opts["balance_sources"]}, {recipe_levers(opts)},
  augmentation: flips, colour jitter, rescaling, blur, noise, JPEG q40–95.
- Trained on {report.get("trained_on", "?")} for {report.get("train_seconds", 0) / 60:.0f} minutes
  (validation included). Per-epoch history: `{history.name}` beside this card.

## Validation (held-out sources and a random share of the training sources)
{metrics_table(report["validation"], report["held_out_sources"])}

{calibration_note(report.get("calibrated_on", "all"))}

{extra}## Known weaknesses
{chr(10).join(shortfalls(report) + loso_notes)}
- Trained on images of at most 288 px; faces much larger are shrunk to the 160 px crop first.
- Sources seen in training are scored on a random 10% held out of them: those numbers flatter.
"""
    path.write_text(text)
