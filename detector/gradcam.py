"""Grad-CAM that shares the scoring forward pass.

The reference design scores with one forward pass, then lets pytorch-grad-cam run a second
forward and back-propagate into every weight. Here the target layer's activation is made the
only leaf that needs a gradient, so one forward gives the logits and one short backward (through
the layers after the target only, no weight gradients) gives the maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ScoredBatch:
    """Logits and Grad-CAM maps (N x H x W, each scaled to 0..1) from one forward pass.
    `flat` marks maps with no evidence to show: zero everywhere after the ReLU, or so even that
    scaling them to 0..1 would only magnify rounding noise."""

    logits: torch.Tensor
    cams: torch.Tensor
    flat: torch.Tensor


# A map whose hottest and coldest cells differ by less than this share of its peak is flat.
FLAT_RELATIVE_SPAN = 1e-3


def find_layer(model: nn.Module, path: str) -> nn.Module:
    """Resolve a dotted path such as `block8.branch1.2` to a submodule."""
    try:
        return model.get_submodule(path)
    except AttributeError as exc:
        raise ValueError(f"model has no layer {path!r}") from exc


class GradCam:
    """Scores a batch and explains the single fake logit on the target layer."""

    def __init__(self, model: nn.Module, target_layer: str) -> None:
        self.model = model
        self.layer = find_layer(model, target_layer)

    def __call__(self, batch: torch.Tensor) -> ScoredBatch:
        captured: list[torch.Tensor] = []

        def keep_activation(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
            leaf = output.detach().requires_grad_(True)
            captured.append(leaf)
            return leaf

        handle = self.layer.register_forward_hook(keep_activation)
        try:
            with torch.enable_grad():
                logits = self.model(batch).reshape(-1)
                activation = captured[0]
                # Images are independent in eval mode, so one backward of the sum
                # gives every image the gradient of its own logit.
                (grads,) = torch.autograd.grad(logits.sum(), activation)
        finally:
            handle.remove()
        cams, flat = self._maps(activation.detach(), grads)
        return ScoredBatch(logits.detach(), cams, flat)

    @staticmethod
    def _maps(activation: torch.Tensor, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        activation, grads = activation.float(), grads.float()
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * activation).sum(dim=1)).float()
        cells = cam.flatten(1)
        high, low = cells.max(dim=1).values, cells.min(dim=1).values
        flat = (high <= 0) | (high - low <= FLAT_RELATIVE_SPAN * high)
        span = (high - low).clamp_min(1e-12)[:, None, None]
        return (cam - low[:, None, None]) / span, flat
