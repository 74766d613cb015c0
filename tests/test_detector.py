"""Detector on CPU: every face, skipped faces, no face, bad bytes, one-pass Grad-CAM."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from unmask.detector.config import ModelConfig, Thresholds
from unmask.detector.errors import InvalidImage, WeightsError
from unmask.detector.faces import FaceDetector, crop_face, decode_image
from unmask.detector.gradcam import GradCam
from unmask.detector.predictor import Predictor, to_model_input
from unmask.detector.registry import MODELS, build_inception_resnet_v1, load_model, save_checkpoint


def test_one_face_with_box_probability_and_landmarks(predictor, face_bytes):
    image = decode_image(face_bytes)
    pred = predictor.predict(image)
    assert len(pred.faces) == 1
    face = pred.faces[0]
    x1, y1, x2, y2 = face.face.box
    assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height
    assert face.face.detection_probability > 0.9
    assert len(face.face.landmarks) == 5
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.face.landmarks)
    assert pred.verdict == face.verdict == predictor.config.thresholds.verdict(face.fake_probability)
    assert pred.overlay.size == image.size
    assert face.overlay.size == (160, 160)


def test_every_face_is_found(predictor, group_bytes):
    pred = predictor.predict(decode_image(group_bytes))
    scored = [f for f in pred.faces if f.fake_probability is not None]
    assert len(scored) == 3
    assert pred.fake_probability == max(f.fake_probability for f in scored)


def test_no_face_is_a_result_not_an_error(predictor, no_face_bytes):
    pred = predictor.predict(decode_image(no_face_bytes))
    assert (pred.verdict, pred.fake_probability, pred.faces) == ("no_face", None, [])


def test_small_faces_are_reported_as_skipped(predictor, face_bytes):
    strict = Predictor(predictor.model, FaceDetector(min_face_size=200))
    pred = strict.predict(decode_image(face_bytes))
    assert pred.verdict == "no_face"
    assert len(pred.faces) == 1
    assert pred.faces[0].verdict == "skipped"
    assert pred.faces[0].face.skipped == "face smaller than 200 px"
    assert pred.faces[0].fake_probability is None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"GIF89a this is not really a gif", "not_an_image"),
        (b"%PDF-1.7\n", "not_an_image"),
    ],
)
def test_bad_bytes_raise_invalid_image(data, code):
    with pytest.raises(InvalidImage) as info:
        decode_image(data)
    assert info.value.code == code


def test_truncated_jpeg_is_invalid(corrupt_bytes):
    with pytest.raises(InvalidImage):
        decode_image(corrupt_bytes)


def test_score_comes_from_the_same_forward_as_the_map(predictor, face_bytes):
    image = decode_image(face_bytes)
    pred = predictor.predict(image)
    crop = crop_face(image, pred.faces[0].face.box, predictor.config.crop_size)
    with torch.inference_mode():
        logit = predictor.model.module(to_model_input([crop], predictor.config)).item()
    assert pred.faces[0].fake_probability == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    plain = predictor.predict(image, explain=False)
    assert plain.faces[0].fake_probability == pytest.approx(pred.faces[0].fake_probability, abs=1e-6)
    assert plain.overlay is None


def test_gradcam_matches_pytorch_grad_cam(predictor, face_bytes):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    image = decode_image(face_bytes)
    box = predictor.predict(image, explain=False).faces[0].face.box
    crops = [crop_face(image, box, 160), crop_face(image.rotate(8), box, 160)]
    batch = to_model_input(crops, predictor.config)
    ours = GradCam(predictor.model.module, "block8.branch1.2")(batch)
    model = predictor.model.module
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        ref = GradCAM(model=model, target_layers=[model.block8.branch1[-1]])(
            input_tensor=batch, targets=[ClassifierOutputTarget(0)] * 2
        )
    finally:
        for p in model.parameters():
            p.requires_grad_(False)
    upsampled = torch.nn.functional.interpolate(ours.cams[:, None], size=ref.shape[1:], mode="bilinear")
    for i in range(2):
        assert np.corrcoef(upsampled[i, 0].numpy().ravel(), ref[i].ravel())[0, 1] > 0.999
    assert not np.allclose(ref[0], ref[1])  # the two images really got their own maps


def test_circulating_checkpoint_loads_strictly_with_sha256(test_weights):
    loaded = load_model(test_weights)
    assert loaded.config.name == "reference-irv1"
    assert (loaded.config.crop_size, loaded.config.input_size) == (160, 256)
    assert loaded.weights_sha256 == hashlib.sha256(test_weights.read_bytes()).hexdigest()
    assert not loaded.module.training


def test_unmask_checkpoint_carries_its_config(tmp_path):
    torch.manual_seed(0)
    model = build_inception_resnet_v1()
    config = ModelConfig(
        name="custom", input_size=160, thresholds=Thresholds(0.2, 0.8), calibration=(2.0, -0.5)
    )
    path = tmp_path / "custom.pt"
    sha = save_checkpoint(path, model, config, half=True)
    loaded = load_model(path)
    assert loaded.config == config
    assert loaded.weights_sha256 == sha
    assert path.stat().st_size < 50 * 1024 * 1024  # fp16 fits the repository budget
    raw = torch.load(path, weights_only=True)["model_state_dict"]
    assert set(raw) == set(model.state_dict())


def test_missing_or_wrong_weights_fail_clearly(tmp_path):
    with pytest.raises(WeightsError, match="not found: .*nope.pt"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"model_state_dict": {"logits.weight": torch.zeros(2, 512)}}, bad)
    with pytest.raises(WeightsError, match="do not fit"):
        load_model(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_model(junk)


def test_registry_preprocessing_comes_from_the_config():
    ref, ours = MODELS["reference-irv1"], MODELS["unmask-irv1"]
    crop = np.full((160, 160, 3), 255, dtype=np.uint8)
    assert to_model_input([crop], ref).shape == (1, 3, 256, 256)
    assert to_model_input([crop], ref).max().item() == pytest.approx(1.0)
    assert to_model_input([crop], ours).shape == (1, 3, 160, 160)
    assert to_model_input([crop], ours).max().item() == pytest.approx(1.0)  # (1 - .5) / .5
    assert to_model_input([np.zeros_like(crop)], ours).min().item() == pytest.approx(-1.0)
