"""Augmentation and self-blending determinism, sampling, checkpoint resume, train + evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import LABELLED
from unmask.detector.registry import MODELS
from unmask.training.augment import augment
from unmask.training.dataset import CropSet, scan_labelled, source_of
from unmask.training.sbi import face_mask, self_blend
from unmask.training.train import (
    TrainOptions,
    epoch_order,
    positive_weight,
    sample_weights,
    split_by_sources,
    train,
)


def random_crops(n: int, seed: int = 0) -> CropSet:
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 255, size=(n, 160, 160, 3), dtype=np.uint8)
    marks = np.tile(np.array([[55, 65], [105, 65], [80, 90], [60, 115], [100, 115]], np.float32), (n, 1, 1))
    labels = np.array([i % 2 for i in range(n)])
    sources = np.array(["a" if i < n // 2 else "b" for i in range(n)])
    return CropSet(crops, marks, labels, sources, [f"{i}.jpg" for i in range(n)], [])


def test_augmentation_is_deterministic_per_seed():
    crop = random_crops(1).crops[0]
    first = augment(crop, np.random.default_rng([7, 1]))
    again = augment(crop, np.random.default_rng([7, 1]))
    other = [augment(crop, np.random.default_rng([7, s])) for s in range(2, 6)]
    assert first.shape == crop.shape and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert any(not np.array_equal(first, o) for o in other)


def test_self_blend_changes_the_face_not_the_background():
    data = random_crops(1)
    crop, marks = data.crops[0], data.landmarks[0]
    fake = self_blend(crop, marks, np.random.default_rng(3))
    assert np.array_equal(fake, self_blend(crop, marks, np.random.default_rng(3)))
    mask = face_mask(marks, 160, np.random.default_rng(3))
    diff = np.abs(fake.astype(int) - crop.astype(int)).mean(axis=2)
    assert diff[mask > 0.9].mean() > 5 * max(diff[mask < 0.01].mean(), 0.1)
    assert mask[80, 90] > 0.9 and mask[2, 2] < 0.01  # centre of the face in, corner out


def test_balanced_sampling_gives_each_source_its_share():
    labels = np.array([0] * 90 + [0] * 10 + [1] * 50)
    sources = np.array(["big"] * 90 + ["small"] * 10 + ["gan"] * 50)
    w = sample_weights(labels, sources, True, real_share=2 / 3)
    assert w[sources == "big"].sum() == pytest.approx(1 / 3)
    assert w[sources == "small"].sum() == pytest.approx(1 / 3)
    assert w[sources == "gan"].sum() == pytest.approx(1 / 3)
    # Half of the sampled reals become SBI fakes: 1/3 real vs 2/3 fake -> pos_weight 1/2.
    assert positive_weight(w, labels, 0.5) == pytest.approx(0.5)
    assert np.array_equal(epoch_order(20, w, 0, 1), epoch_order(20, w, 0, 1))
    assert not np.array_equal(epoch_order(20, w, 0, 1), epoch_order(20, w, 0, 2))


def test_held_out_sources_go_wholly_to_validation():
    data = random_crops(20)
    tr, val, held = split_by_sources(data, ["b"], holdout=0.0, seed=0)
    assert set(tr.sources) == {"a"} and set(val.sources) == {"b"}
    assert held.all() and len(val.labels) == 10


def test_source_comes_from_the_file_name():
    assert source_of(Path("real/dfdc__abc.jpg")) == "dfdc"
    assert source_of(Path("real/plain.jpg")) == "unknown"
    items = scan_labelled(LABELLED)
    assert {i.label for i in items} == {0, 1} and len(items) == 6


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    data = random_crops(8)
    config = MODELS["unmask-irv1"]
    opts = dict(epochs=1, batch_size=2, samples_per_epoch=8, checkpoint_every=1, seed=3)
    straight, done = train(config, data, data, tmp_path / "a", TrainOptions(**opts), torch.device("cpu"))
    assert done
    _, paused = train(
        config, data, data, tmp_path / "b", TrainOptions(**opts, max_steps=2), torch.device("cpu")
    )
    assert not paused
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert (state["epoch"], state["step"]) == (0, 2)
    resumed, done = train(
        config, data, data, tmp_path / "b", TrainOptions(**opts), torch.device("cpu"), resume=True
    )
    assert done
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(FileExistsError):
        train(config, data, data, tmp_path / "b", TrainOptions(**opts), torch.device("cpu"))


def tiny_train(out: Path, cache: Path, *extra: str) -> list[str]:
    """CLI arguments for a one-epoch run on the six fixture images, holding two sources out."""
    return [
        "train", "--data", str(LABELLED), "--out", str(out), "--cache", str(cache),
        "--epochs", "1", "--batch-size", "2", "--val-sources", "studio,sd21", "--device", "cpu",
        *extra,
    ]  # fmt: skip


def test_train_one_tiny_epoch_then_evaluate_end_to_end(tmp_path):
    from unmask.cli import main

    run = tmp_path / "run"
    assert main(tiny_train(run, tmp_path / "cache", "--samples-per-epoch", "4")) == 0
    card = (run / "MODEL_CARD.md").read_text()
    report = json.loads((run / "metrics.json").read_text())
    assert report["held_out_sources"] == ["studio", "sd21"]
    assert report["weights_sha256"] in card and "**studio** (held out)" in card
    thresholds = report["model"]["thresholds"]
    assert 0 <= thresholds["real"] <= thresholds["fake"] <= 1

    out = tmp_path / "eval"
    weights = str(run / "unmask-irv1.pt")
    args = ["evaluate", str(LABELLED), "--out", str(out), "--weights", weights,
            "--cache", str(tmp_path / "ecache"), "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["n"], metrics["n_real"], metrics["n_fake"], metrics["no_face"]) == (6, 3, 3, 0)
    for key in ("auc", "accuracy", "uncertain_rate", "eer", "tpr_at_fpr_1pct", "tpr_at_fpr_5pct"):
        assert key in metrics
    assert set(metrics["by_source"]) == {"studio", "ffhq_sg2", "yonsei", "sd21", "genphotos", "boredhumans"}
    assert metrics["model"]["weights_sha256"] == report["weights_sha256"]
    rows = (out / "predictions.csv").read_text().splitlines()
    assert rows[0] == "file,label,probability,verdict,faces,logit" and len(rows) == 7
    a, b = metrics["model"]["calibration"]  # the raw logit gives the probability back
    for row in rows[1:]:
        p, z = float(row.split(",")[2]), float(row.split(",")[5])
        # to the printed precision: z has 6 decimals, and a tiny run's slope a can be huge
        assert abs(1 / (1 + math.exp(-(a * z + b))) - p) < 1e-5 + p * (1 - p) * abs(a) * 5e-7
    assert (out / "roc.png").stat().st_size > 1000 and (out / "confusion.png").stat().st_size > 1000

    # The card can be rewritten with production-path results added.
    assert main(["card", str(run), "--evaluation", f"fixtures={out}"]) == 0
    card = (run / "MODEL_CARD.md").read_text()
    assert "## Production-path evaluation" in card and "| fixtures | 6 | 0 |" in card
    assert main(["card", str(run), "--evaluation", f"missing={tmp_path / 'nowhere'}"]) == 1


def test_leave_one_source_out_trains_one_model_per_source(tmp_path):
    from unmask.cli import main

    run = tmp_path / "loso"
    args = tiny_train(run, tmp_path / "cache", "--samples-per-epoch", "2", "--loso")
    # One process takes studio; a second run (or a parallel one) covers the rest of the list.
    assert main([*args, "--val-sources", "studio"]) == 0
    assert set(json.loads((run / "loso.json").read_text())) == {"studio"}
    first = (run / "loso-studio" / "metrics.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (run / "loso-studio" / "metrics.json").stat().st_mtime_ns == first  # not trained again
    results = json.loads((run / "loso.json").read_text())
    assert set(results) == {"studio", "sd21"}
    assert results["studio"]["n_real"] == 1 and results["sd21"]["n_fake"] == 1
    assert all(r["accuracy"] in (0.0, 1.0) for r in results.values())
    train_sources = json.loads((run / "loso-studio" / "metrics.json").read_text())["train_sources"]
    assert "studio" not in train_sources
    assert "| studio |" in (run / "LOSO.md").read_text()

    assert main(["card", str(run / "loso-studio"), "--loso", str(run)]) == 0
    card = (run / "loso-studio" / "MODEL_CARD.md").read_text()
    assert "## Leave-one-source-out" in card and "| sd21 | 1 | 0 | 1 |" in card
    assert "Left out in LOSO" in card or "Every held-out source" in card


def test_calibration_uses_only_in_source_rows_unless_asked():
    from unmask.training.fit import calibrate_for_run

    rng = np.random.default_rng(0)
    labels = np.array([0] * 50 + [1] * 50 + [0] * 40)
    held = np.array([False] * 100 + [True] * 40)
    # In-source logits separate the classes around 0; the held-out reals score on the fake side.
    logits = np.concatenate([rng.normal(-2, 1, 50), rng.normal(2, 1, 50), rng.normal(1, 0.5, 40)])
    config = MODELS["unmask-irv1"]
    in_source, on = calibrate_for_run(config, logits, labels, held, 0.1, "in-source")
    assert on == "in-source"
    everything, on_all = calibrate_for_run(config, logits, labels, held, 0.1, "all")
    assert on_all == "all"

    def called_real(cfg) -> float:  # share of held-out reals given the verdict `real`
        probs = cfg.probability(torch.from_numpy(logits[held])).numpy()
        return float(np.mean([cfg.thresholds.verdict(float(p)) == "real" for p in probs]))

    # Out of sample the held-out reals, scoring like fakes, are called fake; fitted on them too,
    # the thresholds move to let some of them pass as real.
    assert called_real(in_source) < 0.05 and called_real(everything) > 0.2
    only_real = labels == 0
    fallback, on_fb = calibrate_for_run(config, logits, labels, ~only_real, 0.1, "in-source")
    assert on_fb == "all"  # in-source rows hold one class only
    _, none = calibrate_for_run(config, logits[only_real], labels[only_real], held[only_real], 0.1, "all")
    assert none == "none"
