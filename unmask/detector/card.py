"""Model cards: what a trained model is, how it was made and how well it generalises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def shortfalls(report: dict, target: float = 0.85) -> list[str]:
    """Held-out sources that miss the generalisation target, worded for the card."""
    notes = []
    for source in report["held_out_sources"]:
        m = report["validation"].get(source, {})
        value, name = (m.get("auc"), "AUC") if m.get("auc") is not None else (m.get("accuracy"), "accuracy")
        if value is not None and value < target:
            notes.append(f"- Held-out `{source}`: {name} {value:.3f}, below the {target} target.")
    return notes or [f"- Every held-out source reaches {target} (AUC, or accuracy for one class)."]


ARCH_NAMES = {
    "inception_resnet_v1": "facenet-pytorch InceptionResnetV1, `classify=True, num_classes=1`",
    "small_cnn": "Unmask's 0.3 M-parameter CNN",
}


def recipe_levers(opts: dict) -> str:
    """The confound levers a run used, in words."""
    fakes = "labelled fakes and " if opts.get("labelled_fakes", True) else "no labelled fakes; only "
    text = f"{fakes}self-blended fakes for {opts['sbi_ratio']:.0%} of sampled real crops"
    weight = opts.get("source_adversary", 0.0)
    if weight:
        text += f", class-conditional source adversary (gradient reversal, weight {weight})"
    return text


def start_of(report: dict) -> str:
    init = report["options"].get("init_weights")
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


def write_model_card(path: Path, report: dict, run_dir: Path) -> None:
    """Markdown card from a training report."""
    model = report["model"]
    opts = report["options"]
    history = run_dir / "history.json"
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

## Known weaknesses
{chr(10).join(shortfalls(report))}
- Trained on images of at most 288 px; faces much larger are shrunk to the 160 px crop first.
- Sources seen in training are scored on a random 10% held out of them: those numbers flatter.
"""
    path.write_text(text)
