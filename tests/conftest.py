"""Shared fixtures: images, deterministic test weights, settings on SQLite for unit tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

FIXTURES = Path(__file__).parent / "fixtures"
LABELLED = FIXTURES / "labelled"


@pytest.fixture(scope="session")
def face_bytes() -> bytes:
    """A studio portrait with one frontal face."""
    return (LABELLED / "real" / "studio__128_03.jpg").read_bytes()


@pytest.fixture(scope="session")
def group_bytes() -> bytes:
    """Three different people side by side in one image."""
    paths = sorted((LABELLED / "real").glob("*.jpg"))
    faces = [Image.open(p).convert("RGB").resize((288, 288)) for p in paths]
    canvas = Image.new("RGB", (288 * len(faces) + 40, 328), (200, 200, 200))
    for i, face in enumerate(faces):
        canvas.paste(face, (20 + 288 * i, 20))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="session")
def no_face_bytes() -> bytes:
    """A landscape-like picture: sky gradient, hills, a sun; no face anywhere."""
    h, w = 240, 360
    sky = np.linspace([90, 150, 230], [200, 225, 250], h).astype(np.uint8)
    img = Image.fromarray(np.repeat(sky[:, None, :], w, axis=1))
    draw = ImageDraw.Draw(img)
    draw.polygon([(0, 200), (120, 120), (240, 190), (360, 110), (360, 240), (0, 240)], fill=(60, 120, 60))
    draw.rectangle((150, 170, 210, 215), fill=(120, 80, 50))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def corrupt_bytes(face_bytes: bytes) -> bytes:
    """A JPEG whose header reads fine but whose data stops half way."""
    return face_bytes[: len(face_bytes) // 2]


@pytest.fixture(scope="session")
def test_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Deterministic (seeded, untrained) weights in the circulating checkpoint format."""
    import torch

    from unmask.detector.registry import build_inception_resnet_v1

    torch.manual_seed(1234)
    model = build_inception_resnet_v1()
    path = tmp_path_factory.mktemp("weights") / "test-irv1.pt"
    torch.save({"model_state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def predictor(test_weights: Path):
    from unmask.detector.predictor import Predictor

    # fp32: exact comparisons against the reference; bf16 has its own tolerance test.
    return Predictor.from_settings(
        weights=test_weights, model_name="reference-irv1", device="cpu", precision="fp32"
    )
