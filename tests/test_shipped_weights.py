"""The default weights ship with the code: a fresh checkout scores faces without a download."""

from __future__ import annotations

import json

import pytest

from tests.conftest import LABELLED
from unmask.core.settings import Settings
from unmask.detector.faces import decode_image
from unmask.detector.predictor import Predictor
from unmask.detector.registry import DEFAULT_MODEL, DEFAULT_WEIGHTS, SHIPPED, WEIGHTS_DIR


def test_the_service_default_is_the_default_model_and_every_shipped_model_has_a_card():
    assert Settings().model == DEFAULT_MODEL == SHIPPED[0]
    index = (WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    for name in SHIPPED:
        assert f"({name}.md)" in index


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_by_name_and_score(name, face_bytes):
    path = DEFAULT_WEIGHTS[name]
    assert path.stat().st_size < 50 * 1024 * 1024
    predictor = Predictor.from_settings(weights=None, model_name=name, device="cpu")
    config = predictor.config
    assert config.name == name
    assert 0 < config.thresholds.real <= config.thresholds.fake < 1
    card = (WEIGHTS_DIR / f"{name}.md").read_text()
    assert predictor.model.weights_sha256 in card
    # The thresholds go with the tensors the training run made, and come from out-of-source
    # predictions: the raw logits of a fold of the same recipe, named in the card.
    report = json.loads((WEIGHTS_DIR / f"{name}-training-metrics.json").read_text())
    chosen = json.loads((WEIGHTS_DIR / f"{name}-thresholds.json").read_text())
    assert chosen["calibrated_weights_sha256"] == report["weights_sha256"]
    assert chosen["weights_sha256"][:12] in card
    assert chosen["thresholds"] == {"real": config.thresholds.real, "fake": config.thresholds.fake}
    assert chosen["all"]["false_positive_rate"] <= 0.05 and chosen["all"]["miss_rate"] <= 0.05
    pred = predictor.predict(decode_image(face_bytes))
    assert len(pred.faces) == 1 and 0 <= pred.fake_probability <= 1
    assert pred.verdict in ("real", "fake", "uncertain")


@pytest.mark.parametrize("name", SHIPPED)
def test_the_trained_model_explains_the_faces_it_scores_as_fake(name):
    predictor = Predictor.from_settings(weights=None, model_name=name, device="cpu")
    fake_scored = []
    for path in sorted((LABELLED / "fake").glob("*.jpg")):
        for face in predictor.predict(decode_image(path.read_bytes())).faces:
            assert face.explanation == "gradcam"  # a map with evidence on every fake fixture
            assert face.cam.max() == 1.0 and face.cam.min() == 0.0 and face.overlay is not None
            if face.fake_probability >= predictor.config.thresholds.fake:
                fake_scored.append(face)
    assert fake_scored, "no fixture scored past the fake threshold"


@pytest.mark.parametrize("name", SHIPPED)
def test_auto_precision_uses_bf16_only_where_it_keeps_the_scores(name, monkeypatch):
    """On a device with native bf16, `auto` picks bf16 only for architectures whose scores it
    keeps: there it moves probabilities by far less than the re-encode check tolerates, keeps
    every verdict and draws the same maps. Each prediction names the arithmetic it used."""
    import numpy as np

    from unmask.detector import predictor as predictor_module

    monkeypatch.setattr(predictor_module, "native_bf16", lambda device: True)
    auto = Predictor.from_settings(weights=None, model_name=name, device="cpu", precision="auto")
    if auto.config.arch not in predictor_module.BF16_ARCHS:
        assert auto.provenance()["precision"] == "fp32"
        return
    assert auto.provenance()["precision"] == "bf16"
    exact = Predictor.from_settings(weights=None, model_name=name, device="cpu", precision="fp32")
    images = [decode_image(p.read_bytes()) for p in sorted(LABELLED.glob("*/*.jpg"))]
    compared = 0
    for a, b in zip(exact.predict_many(images), auto.predict_many(images)):
        assert len(a.faces) == len(b.faces)
        for fa, fb in zip(a.faces, b.faces):
            assert fa.face.box == fb.face.box  # detection is fp32 either way
            assert abs(fa.fake_probability - fb.fake_probability) <= 0.01
            assert fa.verdict == fb.verdict and fa.explanation == fb.explanation
            if fa.cam is not None:
                assert np.corrcoef(fa.cam.ravel(), fb.cam.ravel())[0, 1] > 0.99
            compared += 1
    assert compared >= len(images)
