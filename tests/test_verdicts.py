"""Honest verdicts: a verdict that flips under a mild re-encode is `uncertain` with its reason,
and a flat Grad-CAM map is reported as no explanation instead of being drawn."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from unmask.detector.config import Thresholds
from unmask.detector.faces import decode_image
from unmask.detector.predictor import Predictor
from unmask.detector.registry import LoadedModel


def with_thresholds(predictor: Predictor, real: float, fake: float) -> Predictor:
    config = dataclasses.replace(predictor.config, thresholds=Thresholds(real=real, fake=fake))
    loaded = dataclasses.replace(predictor.model, config=config)
    return Predictor(loaded, predictor.detector)


def test_a_verdict_that_flips_under_reencoding_is_uncertain_with_the_reason(predictor, face_bytes):
    image = decode_image(face_bytes)
    face = predictor.predict(image, explain=False).faces[0]
    p, q = face.fake_probability, face.reencoded_probability
    assert q is not None and p != q
    # Thresholds just inside the two scores: each alone is decided, and they disagree.
    low, high = sorted((p, q))
    margin = (high - low) / 4
    touchy = with_thresholds(predictor, real=low + margin, fake=high - margin)
    face = touchy.predict(image, explain=False).faces[0]
    assert face.verdict == "uncertain"
    assert face.reason is not None and face.reason.startswith("unstable:")
    assert "JPEG q75" in face.reason


def test_a_stable_verdict_keeps_its_label(predictor, face_bytes):
    lenient = with_thresholds(predictor, real=0.0, fake=0.0)  # everything is fake, re-encoded too
    face = lenient.predict(decode_image(face_bytes), explain=False).faces[0]
    assert (face.verdict, face.reason) == ("fake", None)


def test_the_stability_check_can_be_turned_off(predictor, face_bytes):
    off = Predictor(predictor.model, predictor.detector, stability_check=False)
    face = off.predict(decode_image(face_bytes), explain=False).faces[0]
    assert face.reencoded_probability is None and face.reason is None


def test_a_flat_heatmap_is_reported_as_no_explanation_and_not_drawn(predictor, face_bytes):
    module = copy.deepcopy(predictor.model.module)
    with torch.no_grad():  # a head that ignores its input: every gradient, so every map, is zero
        module.logits.weight.zero_()
    flat = Predictor(
        LoadedModel(module, predictor.config, "x", predictor.model.weights_path), predictor.detector
    )
    image = decode_image(face_bytes)
    pred = flat.predict(image)
    face = pred.faces[0]
    assert face.explanation == "none"
    assert face.cam is None and face.overlay is None
    # The whole-image overlay has the box and label, and no colour wash inside the face.
    x1, y1, x2, y2 = (int(v) for v in face.face.box)
    inner = (x1 + 10, y1 + 20, x2 - 10, y2 - 10)
    drawn = np.asarray(pred.overlay.crop(inner), dtype=np.int16)
    original = np.asarray(image.crop(inner), dtype=np.int16)
    assert np.abs(drawn - original).max() == 0


def test_an_informative_map_is_normalised_and_drawn(predictor, face_bytes):
    face = predictor.predict(decode_image(face_bytes)).faces[0]
    assert face.explanation == "gradcam"
    assert face.cam.min() == pytest.approx(0.0) and face.cam.max() == pytest.approx(1.0)
    assert face.overlay is not None
