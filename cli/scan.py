"""`unmask scan`: the detector on local files, no service needed. Writes report.json, whose
rows are the same result shape the API returns, and the overlays beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from unmask.core.exceptions import JobFailed
from unmask.core.results import write_overlays
from unmask.files import expand
from unmask.worker.detection import PredictorDetector


def folder_writer(out: Path, prefix: str):  # noqa: ANN201
    """`put` for write_overlays: files under out/overlays, located relative to the report."""

    def put(name: str, jpeg: bytes) -> str:
        relative = Path("overlays") / f"{prefix}-{name}"
        (out / relative).write_bytes(jpeg)
        return relative.as_posix()

    return put


def scan_paths(detector: PredictorDetector, paths: list[Path], out: Path) -> dict[str, Any]:
    """Score every image; unreadable files are reported, not fatal."""
    files = expand(paths)
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for index, path in enumerate(tqdm(files, desc="scan", unit="img", disable=len(files) < 2)):
        try:
            analysis = detector.analyse(path.read_bytes())
        except JobFailed as exc:
            rows.append(
                {"file": str(path), "verdict": "failed", "error": {"code": exc.code, "message": exc.message}}
            )
            continue
        placed = write_overlays(analysis.overlays, folder_writer(out, f"{index:05d}-{path.stem}"))
        result = analysis.result.with_overlays(placed.image, placed.faces)
        rows.append({"file": str(path), **result.model_dump(mode="json", exclude={"model"})})
    report = {"model": detector.provenance.model_dump(mode="json"), "images": rows}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report
