"""The training-only source adversary: a class-conditional domain classifier behind a gradient
reversal (Ganin & Lempitsky, 2015)."""

from __future__ import annotations

import math

import torch
from torch import nn


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
