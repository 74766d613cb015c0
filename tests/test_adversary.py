"""The source adversary, the small architecture and SBI-only training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.test_training import random_crops, tiny_train
from unmask.detector.predictor import Predictor
from unmask.detector.registry import MODELS, load_model, save_checkpoint
from unmask.training.adversary import SourceAdversary, adversary_strength, reverse_gradient
from unmask.training.train import Trainer, TrainOptions, train


def test_gradient_reversal_negates_and_scales_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    (reverse_gradient(x, 0.25) * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.25 * torch.arange(3.0).expand(4, 3))
    assert torch.equal(reverse_gradient(x, 0.25), x)


def test_adversary_strength_ramps_from_zero_to_one():
    values = [adversary_strength(p) for p in (0.0, 0.1, 0.5, 1.0, 2.0)]
    assert values[0] == 0.0 and values == sorted(values)
    assert 0.4 < values[1] < 0.5 and values[3] > 0.99 and values[4] == values[3]


def test_adversary_predicts_source_within_each_class_only():
    torch.manual_seed(0)
    adversary = SourceAdversary(features=8, sources=3)
    embedding = torch.randn(6, 8, requires_grad=True)
    labels, sources = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 1, 2, 0, 1, 2])
    loss = adversary.loss(embedding, labels, sources, strength=1.0)
    real_only = adversary.loss(embedding[:3], labels[:3], sources[:3], 1.0)
    fake_only = adversary.loss(embedding[3:], labels[3:], sources[3:], 1.0)
    assert torch.isclose(loss, (real_only + fake_only) / 2)
    loss.backward()
    # The embedding is pushed to *increase* the adversary's loss: its gradient is reversed.
    step = embedding - 0.1 * embedding.grad
    assert adversary.loss(step, labels, sources, 1.0) > loss


def test_training_with_the_adversary_resumes_exactly(tmp_path):
    data = random_crops(8)
    data.sources[:] = np.array(["a", "b", "c", "d"] * 2)
    config = MODELS["unmask-small"]
    opts = dict(
        epochs=1, batch_size=4, samples_per_epoch=16, checkpoint_every=1, seed=1, source_adversary=0.5
    )
    cpu = torch.device("cpu")
    straight, _ = train(config, data, data, tmp_path / "a", TrainOptions(**opts), cpu)
    train(config, data, data, tmp_path / "b", TrainOptions(**opts, max_steps=2), cpu)
    state = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert state["adversary"] is not None and state["step"] == 2
    resumed, _ = train(config, data, data, tmp_path / "b", TrainOptions(**opts), cpu, resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # The adversary's heads stay out of the model's weights.
    assert not any(key.startswith("heads") for key in straight.state_dict())


def test_the_adversary_changes_what_the_model_learns(tmp_path):
    data = random_crops(8)
    config = MODELS["unmask-small"]
    cpu = torch.device("cpu")
    base = dict(epochs=1, batch_size=4, samples_per_epoch=400, seed=2)  # step 50: mid-schedule
    plain = Trainer(config, data, tmp_path / "p", TrainOptions(**base), cpu)
    adv = Trainer(config, data, tmp_path / "q", TrainOptions(**base, source_adversary=1.0), cpu)
    assert adv.source_names == ["a", "b"] and plain.adversary is None
    indices = np.arange(4)
    crops, labels = torch.from_numpy(data.crops[indices]), torch.from_numpy(data.labels[indices])
    plain.train_step(crops, labels, indices, global_step=50)
    adv.train_step(crops, labels, indices, global_step=50)
    assert not torch.equal(plain.model.features[0].weight, adv.model.features[0].weight)


def test_small_model_saves_loads_and_explains(tmp_path, face_bytes):
    from unmask.detector.faces import FaceDetector, decode_image

    torch.manual_seed(0)
    config = MODELS["unmask-small"]
    from unmask.detector.registry import ARCHITECTURES

    module = ARCHITECTURES[config.arch]()
    path = tmp_path / "small.pt"
    sha = save_checkpoint(path, module, config)
    loaded = load_model(path)
    assert loaded.config.arch == "small_cnn" and loaded.weights_sha256 == sha
    result = Predictor(loaded, FaceDetector(device="cpu")).predict(decode_image(face_bytes))
    face = result.faces[0]
    assert result.verdict in {"real", "fake", "uncertain"} and 0.0 <= face.fake_probability <= 1.0
    assert face.cam is not None and face.cam.shape == (8, 8) and face.overlay is not None


def test_sbi_only_training_sees_no_labelled_fakes(tmp_path):
    from unmask.cli import main

    run = tmp_path / "run"
    assert (
        main(
            tiny_train(
                run, tmp_path / "cache", "--samples-per-epoch", "4", "--sbi-only", "--sbi-ratio", "0.5"
            )
        )
        == 0
    )
    report = json.loads((run / "metrics.json").read_text())
    # Held out: studio (real) and sd21 (fake). What is left to train on is the real crops of
    # ffhq_sg2 and yonsei (less the random validation share); genphotos and boredhumans hold
    # labelled fakes only and drop out.
    assert report["n_train"] >= 1 and set(report["train_sources"]) <= {"ffhq_sg2", "yonsei"}
    assert report["options"]["labelled_fakes"] is False
    assert "no labelled fakes" in (run / "MODEL_CARD.md").read_text()


def test_sbi_only_without_self_blending_is_refused(tmp_path, capsys):
    from unmask.cli import main

    args = tiny_train(tmp_path / "r", tmp_path / "cache", "--sbi-only", "--sbi-ratio", "0")
    assert main(args) == 1
    assert "needs self-blended" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_fine_tuning_starts_from_the_given_weights(tmp_path, test_weights):
    from unmask.detector.errors import WeightsError
    from unmask.detector.registry import ARCHITECTURES

    torch.manual_seed(5)
    start = ARCHITECTURES["small_cnn"]()
    path = tmp_path / "start.pt"
    save_checkpoint(path, start, MODELS["unmask-small"], half=True)
    data, cpu = random_crops(4), torch.device("cpu")
    trainer = Trainer(MODELS["unmask-small"], data, tmp_path / "r", TrainOptions(init_weights=str(path)), cpu)
    for (name, a), b in zip(start.state_dict().items(), trainer.model.state_dict().values()):
        assert torch.equal(a.half().float() if a.is_floating_point() else a, b), name
    with pytest.raises(WeightsError, match="do not fit"):
        Trainer(
            MODELS["unmask-small"], data, tmp_path / "s", TrainOptions(init_weights=str(test_weights)), cpu
        )


def test_examples_made_in_worker_processes_train_the_same_model(tmp_path):
    data = random_crops(8)
    config = MODELS["unmask-small"]
    cpu = torch.device("cpu")
    opts = dict(epochs=1, batch_size=4, samples_per_epoch=24, seed=3, sbi_ratio=0.5)
    here, _ = train(config, data, data, tmp_path / "here", TrainOptions(**opts), cpu)
    workers, _ = train(config, data, data, tmp_path / "workers", TrainOptions(**opts, workers=2), cpu)
    for (name, a), b in zip(here.state_dict().items(), workers.state_dict().values()):
        assert torch.equal(a, b), name
    history = json.loads((tmp_path / "workers" / "history.json").read_text())
    assert history[0]["train_images_per_second"] > 0
