"""Build evaluation folders from labelled data: a stratified sample and a degraded copy of it.

    python scripts/make_eval_sets.py DATA_DIR OUT_DIR --sources dfdc,yonsei,ffhq_sg2
    python scripts/make_eval_sets.py DATA_DIR OUT_DIR --files docs/evaluation/v2-heldout/predictions.csv

OUT_DIR/clean holds up to --per-group images per (source, class), drawn with --seed, or exactly
the files listed in the first column of a predictions.csv; OUT_DIR/degraded holds the same
images downscaled by --scale and re-encoded as JPEG at --quality (a social-media re-upload).
Files are linked, not copied, where the file system allows it.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
from collections import defaultdict
from pathlib import Path

from PIL import Image

from unmask.training.dataset import scan_labelled


def sample(data: Path, sources: list[str], per_group: int, seed: int) -> list[Path]:
    groups: dict[tuple[str, int], list[Path]] = defaultdict(list)
    for item in scan_labelled(data):
        if item.source in sources:
            groups[(item.source, item.label)].append(item.path)
    rng = random.Random(seed)
    chosen: list[Path] = []
    for key in sorted(groups):
        paths = groups[key]
        chosen += sorted(rng.sample(paths, min(per_group, len(paths))))
    return chosen


def listed(data: Path, predictions: Path) -> list[Path]:
    with predictions.open(newline="") as fh:
        return [data / row["file"] for row in csv.DictReader(fh)]


def degrade(src: Path, dst: Path, scale: float, quality: int) -> None:
    with Image.open(src) as img:
        img = img.convert("RGB")
        small = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR
        )
        small.save(dst, format="JPEG", quality=quality)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sources", default="dfdc,yonsei,ffhq_sg2")
    parser.add_argument("--files", type=Path, help="predictions.csv whose files to take")
    parser.add_argument("--per-group", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--quality", type=int, default=60)
    args = parser.parse_args()
    if args.files:
        paths = listed(args.data, args.files)
    else:
        paths = sample(args.data, args.sources.split(","), args.per_group, args.seed)
    for path in paths:
        rel = path.relative_to(args.data)
        clean, bad = args.out / "clean" / rel, args.out / "degraded" / rel.with_suffix(".jpg")
        clean.parent.mkdir(parents=True, exist_ok=True)
        bad.parent.mkdir(parents=True, exist_ok=True)
        if not clean.exists():
            try:
                os.link(path, clean)
            except OSError:
                shutil.copyfile(path, clean)
        if not bad.exists():
            degrade(path, bad, args.scale, args.quality)
    print(f"{len(paths)} images -> {args.out / 'clean'} and {args.out / 'degraded'}")


if __name__ == "__main__":
    main()
