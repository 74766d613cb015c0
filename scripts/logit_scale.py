"""Is a fold's logit scale the final model's? Both score the same crops of sources both trained
on; prints each model's logit spread, their correlation, and the A,B that maps the fold's logits
onto the final model's (matching mean and spread), for `unmask calibrate --logit-scale A,B`.

    python scripts/logit_scale.py FOLD.pt FINAL.pt --data ../shared/data/faces-v1 \\
        --exclude dfdc,yonsei,ffhq_sg2 [--n 600] [--cache var/cache]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from unmask.detector.registry import MODELS, load_model
from unmask.training.dataset import folder_crops
from unmask.training.train import predict_logits


def logits(weights: Path, crops: np.ndarray) -> np.ndarray:
    model = load_model(weights, None, torch.device("cpu"))
    return predict_logits(model.module, model.config, crops, torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("fold", type=Path)
    parser.add_argument("final", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--exclude", default="", help="sources the fold did not train on")
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--cache", type=Path, default=Path("var/cache"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    config = MODELS["unmask-irv1"]  # every registered model crops 160 px with a 16 px margin
    data = folder_crops(args.data, args.cache, config.crop_size, config.margin, "cpu")
    shared = np.flatnonzero(~np.isin(data.sources, [s for s in args.exclude.split(",") if s]))
    rows = np.sort(np.random.default_rng(args.seed).choice(shared, min(args.n, len(shared)), replace=False))
    fold, final = logits(args.fold, data.crops[rows]), logits(args.final, data.crops[rows])
    for name, z in (("fold", fold), ("final", final)):
        p5, p95 = np.percentile(z, [5, 95])
        print(f"{name}: mean {z.mean():.2f}, std {z.std():.2f}, 5th {p5:.2f}, 95th {p95:.2f}")
    a = final.std() / fold.std()
    b = final.mean() - a * fold.mean()
    print(f"correlation {np.corrcoef(fold, final)[0, 1]:.3f} on {len(rows)} crops")
    print(f"--logit-scale {a:.4f},{b:.4f}")


if __name__ == "__main__":
    main()
