"""`unmask scan`: the detector on local files, no service needed; JSON report + overlays."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from unmask.core.exceptions import InvalidImage
from unmask.detector.dataset import IMAGE_SUFFIXES
from unmask.detector.faces import decode_image
from unmask.detector.predictor import Prediction, Predictor


def expand(paths: list[Path]) -> list[Path]:
    """Files as given, folders searched recursively for images."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def report_row(path: Path, pred: Prediction, overlay_names: dict[str, str | list]) -> dict:
    return {
        "file": str(path),
        "verdict": pred.verdict,
        "fake_probability": pred.fake_probability,
        "overlay": overlay_names.get("image"),
        "faces": [
            {
                "box": list(fp.face.box),
                "detection_probability": fp.face.detection_probability,
                "fake_probability": fp.fake_probability,
                "verdict": fp.verdict,
                "skip_reason": fp.face.skipped,
                "overlay": (overlay_names.get("faces") or [None] * len(pred.faces))[i],
            }
            for i, fp in enumerate(pred.faces)
        ],
    }


def save_overlays(pred: Prediction, out: Path, index: int, stem: str) -> dict[str, str | list]:
    folder = out / "overlays"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{index:05d}-{stem}"
    names: dict[str, str | list] = {}
    if pred.overlay is not None:
        pred.overlay.save(folder / f"{name}.jpg", quality=90)
        names["image"] = f"overlays/{name}.jpg"
    faces: list[str | None] = []
    for i, fp in enumerate(pred.faces):
        if fp.overlay is None:
            faces.append(None)
            continue
        fp.overlay.save(folder / f"{name}-face{i}.jpg", quality=90)
        faces.append(f"overlays/{name}-face{i}.jpg")
    names["faces"] = faces
    return names


def scan_paths(predictor: Predictor, paths: list[Path], out: Path, *, overlays: bool = True) -> dict:
    """Score every image; unreadable files are reported, not fatal."""
    files = expand(paths)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, path in enumerate(tqdm(files, desc="scan", unit="img", disable=len(files) < 2)):
        try:
            pred = predictor.predict(decode_image(path.read_bytes()), explain=overlays)
        except InvalidImage as exc:
            rows.append(
                {"file": str(path), "verdict": "failed", "error": {"code": exc.code, "message": exc.message}}
            )
            continue
        names = save_overlays(pred, out, index, path.stem) if overlays else {}
        rows.append(report_row(path, pred, names))
    cfg = predictor.config
    report = {
        "model": {
            "name": cfg.name,
            "weights_sha256": predictor.model.weights_sha256,
            "thresholds": {"real": cfg.thresholds.real, "fake": cfg.thresholds.fake},
        },
        "images": rows,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report
