"""Architectures beyond InceptionResnetV1, and the training-only source adversary."""

from __future__ import annotations

import math

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


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:  # type: ignore[override]
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.strength * grad, None


def reverse_gradient(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Identity forward; the gradient flows back negated and scaled (Ganin & Lempitsky, 2015)."""
    return _ReverseGradient.apply(x, strength)


def adversary_strength(progress: float) -> float:
    """Ganin & Lempitsky's ramp 2 / (1 + exp(-10 p)) - 1: 0 at the start, near 1 by the end."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class SourceAdversary(nn.Module):
    """Class-conditional domain classifier on the embedding, behind a gradient reversal.

    One head per class predicts which collection a face came from among faces of that class.
    A single head over all faces would also have to remove the class itself from the embedding,
    because most collections hold one class only; per-class heads ask only that real faces from
    different collections (and fakes from different generators) look alike to the classifier.
    """

    def __init__(self, features: int, sources: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(features, 128), nn.ReLU(), nn.Linear(128, sources)) for _ in range(2)
        )

    def loss(
        self, embedding: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, strength: float
    ) -> torch.Tensor:
        reversed_ = reverse_gradient(embedding, strength)
        total = embedding.new_zeros(())
        for label, head in enumerate(self.heads):
            rows = labels == label
            if rows.any():
                total = total + nn.functional.cross_entropy(
                    head(reversed_[rows]), sources[rows], reduction="sum"
                )
        return total / max(1, len(labels))
