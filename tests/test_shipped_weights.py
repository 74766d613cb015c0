"""The default weights ship with the code: a fresh checkout scores faces without a download."""

from __future__ import annotations

import json

from unmask.detector.faces import decode_image
from unmask.detector.predictor import Predictor
from unmask.detector.registry import DEFAULT_MODEL, DEFAULT_WEIGHTS, WEIGHTS_DIR


def test_default_weights_load_and_score(face_bytes):
    path = DEFAULT_WEIGHTS[DEFAULT_MODEL]
    assert path.stat().st_size < 50 * 1024 * 1024
    predictor = Predictor.from_settings(weights=None, model_name=DEFAULT_MODEL, device="cpu")
    config = predictor.config
    assert config.name == DEFAULT_MODEL and config.input_size == 160
    assert 0 < config.thresholds.real <= config.thresholds.fake < 1
    card = (WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    assert predictor.model.weights_sha256 in card
    report = json.loads((WEIGHTS_DIR / "training-metrics.json").read_text())
    assert report["weights_sha256"] == predictor.model.weights_sha256
    assert report["model"]["thresholds"] == {"real": config.thresholds.real, "fake": config.thresholds.fake}
    pred = predictor.predict(decode_image(face_bytes))
    assert len(pred.faces) == 1 and 0 <= pred.fake_probability <= 1
    assert pred.verdict in ("real", "fake", "uncertain")
