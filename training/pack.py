r"""Face crops packed into one small file, so training can run where the images are not: the GPU
machine receives at most 64 MiB per call. Each crop is stored as a JPEG (128 px, quality 85,
about 4 KB), with its label, source, MTCNN landmarks and, when dlib is installed, its 68-point
landmarks; `unmask train --data crops.npz` reads it directly. The checkout travels with it (the
shipped weights alone are 47 MB), so size the pack with --per-source, --size and --quality.

    python -m unmask.training.pack ../shared/data/faces-v1 --out crops.npz \
        --per-source 250 --size 112 --quality 80
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from unmask.detector.errors import InvalidData
from unmask.training.dataset import CropSet, folder_crops

PACK_SIZE = 128
PACK_QUALITY = 85


def pack(data: CropSet, out: Path, *, size: int = PACK_SIZE, quality: int = PACK_QUALITY) -> dict:
    """Write a CropSet as JPEG crops plus arrays; landmarks are stored in 0..1 crop units."""
    blobs, offsets = [], [0]
    for crop in tqdm(data.crops, desc="packing", unit="crop"):
        buf = io.BytesIO()
        Image.fromarray(crop).resize((size, size), Image.Resampling.BILINEAR).save(
            buf, "JPEG", quality=quality
        )
        blobs.append(np.frombuffer(buf.getvalue(), dtype=np.uint8))
        offsets.append(offsets[-1] + len(blobs[-1]))
    edge = float(data.crops.shape[1])
    arrays = {
        "jpeg": np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8),
        "offsets": np.array(offsets, dtype=np.int64),
        "labels": data.labels.astype(np.int8),
        "sources": np.array(data.sources, dtype=str),
        "paths": np.array(data.paths, dtype=str),
        "landmarks": (data.landmarks / edge).astype(np.float16),
    }
    if data.dense is not None:
        arrays["dense"] = (data.dense / edge).astype(np.float16)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return {"crops": len(data.labels), "bytes": out.stat().st_size, "dense": data.dense is not None}


def load_packed(path: Path, crop_size: int) -> CropSet:
    """A packed file as a CropSet at the model's crop size."""
    try:
        packed = np.load(path, allow_pickle=False)
        jpeg, offsets = packed["jpeg"], packed["offsets"]
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidData(f"{path} is not a packed crop file: {exc}") from exc
    crops = np.stack(
        [
            np.asarray(
                Image.open(io.BytesIO(jpeg[a:b].tobytes()))
                .convert("RGB")
                .resize((crop_size, crop_size), Image.Resampling.BILINEAR)
            )
            for a, b in zip(offsets[:-1], offsets[1:])
        ]
    )
    scale = float(crop_size)
    return CropSet(
        crops=crops,
        landmarks=packed["landmarks"].astype(np.float32) * scale,
        labels=packed["labels"].astype(np.int64),
        sources=packed["sources"],
        paths=packed["paths"].tolist(),
        no_face=[],
        dense=packed["dense"].astype(np.float32) * scale if "dense" in packed else None,
    )


def main(argv: list[str] | None = None) -> int:
    import torch

    from unmask.detector.registry import MODELS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="a folder with real/ and fake/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path(".cache"))
    parser.add_argument("--no-dense", action="store_true", help="leave out 68-point landmarks")
    parser.add_argument("--size", type=int, default=PACK_SIZE, help="crop edge in the pack (px)")
    parser.add_argument("--quality", type=int, default=PACK_QUALITY, help="JPEG quality")
    parser.add_argument(
        "--per-source", type=int, default=None, help="at most this many crops per source and class"
    )
    args = parser.parse_args(argv)
    config = MODELS["unmask-irv1"]  # 160 px crops with a 16 px margin: what every model crops
    # The crops `unmask train` would cache for a folder (same detector settings, same cache).
    data = folder_crops(args.data, args.cache, config.crop_size, config.margin, torch.device("cpu"))
    if not args.no_dense:
        from unmask.training.landmarks import Dense68

        data.dense = Dense68(config.margin).many(data.crops, cache=args.cache / "landmarks68-m16.npy")
    if args.per_source:
        keep = np.zeros(len(data.labels), dtype=bool)
        rng = np.random.default_rng(0)
        for group in {(s, int(y)) for s, y in zip(data.sources.tolist(), data.labels.tolist())}:
            members = np.flatnonzero((data.sources == group[0]) & (data.labels == group[1]))
            keep[rng.permutation(members)[: args.per_source]] = True
        data = data.subset(keep)
    print(pack(data, args.out, size=args.size, quality=args.quality))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
