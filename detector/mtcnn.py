"""MTCNN's three stages over a batch of images, with the candidates of every image resampled at once.

facenet-pytorch's `detect_face` crops each candidate box of the second and third stages in a Python
loop, one area resize per box: some 90 small calls per image, which cost more than the networks on
a CPU and are a kernel launch each on a GPU. Here all candidates of all images are area-resampled
at once from one integral image of the batch (the same bins as adaptive average pooling, so the
same values), and the three networks run channels-last, which oneDNN runs about twice as fast.
The networks, their weights, the thresholds, the image pyramid, the non-maximum suppression, the
batching of the networks and the box regression are facenet-pytorch's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    fixed_batch_process,
    generateBoundingBox,
    imresample,
    pad,
    rerec,
)
from torch import nn
from torchvision.ops import batched_nms

# facenet-pytorch's MTCNN defaults: per-stage score thresholds and the pyramid's scale step.
THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709


@dataclass
class Found:
    """One image's faces: K x 4 boxes, K probabilities and K x 5 x 2 landmarks, in the pixels of
    the image that was searched."""

    boxes: np.ndarray
    probs: np.ndarray
    points: np.ndarray


def pyramid(height: int, width: int, min_face: int, factor: float = FACTOR) -> list[float]:
    """The scales at which the first stage's 12 px window finds faces of min_face px and up."""
    scale, side, scales = 12.0 / min_face, min(height, width) * 12.0 / min_face, []
    while side >= 12:
        scales.append(scale)
        scale, side = scale * factor, side * factor
    return scales


def normalised(pixels: torch.Tensor) -> torch.Tensor:
    """0..255 -> about -1..1, as MTCNN was trained."""
    return (pixels - 127.5) * 0.0078125


def integral_image(pixels: torch.Tensor) -> torch.Tensor:
    """N x H x W x C uint8 -> N x (H+1) x (W+1) x C running sums, in int32 (exact: at most
    255 x 8k x 8k fits), summed in place along each axis."""
    count, height, width, channels = pixels.shape
    sums = torch.zeros((count, height + 1, width + 1, channels), dtype=torch.int32, device=pixels.device)
    sums[:, 1:, 1:] = pixels
    return sums.cumsum_(1).cumsum_(2)


def cells(low: torch.Tensor, high: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end (exclusive) of each of `size` output cells over [low, high), the bins of
    adaptive average pooling: floor(i * n / size) to ceil((i + 1) * n / size)."""
    i = torch.arange(size, device=low.device)[None, :]
    n = (high - low)[:, None]
    return low[:, None] + (i * n) // size, low[:, None] - ((-(i + 1) * n) // size)


def crop_candidates(integral: torch.Tensor, boxes: torch.Tensor, image_inds: torch.Tensor, size: int):
    """Every candidate box area-resampled to size x size (the part inside its image), all at once
    from the batch's integral image: the same values as facenet-pytorch's per-box area resize.
    Boxes wholly outside their image are dropped. Returns the crops and the mask of kept boxes."""
    count, rows, cols, channels = integral.shape
    y, ey, x, ex = (torch.as_tensor(v, device=integral.device) for v in pad(boxes, cols - 1, rows - 1))
    keep = (ey > y - 1) & (ex > x - 1)
    top, bottom = cells(y[keep] - 1, ey[keep], size)
    left, right = cells(x[keep] - 1, ex[keep], size)
    first_row = (image_inds[keep] * rows)[:, None]
    flat = integral.view(-1, channels)

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # K x size x size x C
        index = ((first_row + r) * cols)[:, :, None] + c[:, None, :]
        return flat.index_select(0, index.flatten()).view(*index.shape, channels)

    total = at(bottom, right) - at(top, right) - at(bottom, left) + at(top, left)
    area = (bottom - top)[:, :, None] * (right - left)[:, None, :]
    crops = (total.float() / area[..., None]).permute(0, 3, 1, 2)
    return normalised(crops).contiguous(memory_format=torch.channels_last), keep


def detect_faces(
    pixels: torch.Tensor,
    pnet: nn.Module,
    rnet: nn.Module,
    onet: nn.Module,
    *,
    min_face: int = 20,
    thresholds: tuple[float, float, float] = THRESHOLDS,
    factor: float = FACTOR,
) -> list[Found]:
    """Faces in N x H x W x 3 uint8 images of one size (on the networks' device)."""
    images = pixels.permute(0, 3, 1, 2).float().contiguous()
    count, (height, width) = len(images), images.shape[2:]
    empty = Found(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))

    # Stage 1: the proposal net slides over the image pyramid.
    found, found_inds = [], []
    for scale in pyramid(height, width, min_face, factor):
        level = imresample(images, (int(height * scale + 1), int(width * scale + 1)))
        reg, probs = pnet(normalised(level).contiguous(memory_format=torch.channels_last))
        boxes, inds = generateBoundingBox(reg, probs[:, 1], scale, thresholds[0])
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.5)
        found.append(boxes[pick])
        found_inds.append(inds[pick])
    boxes, image_inds = torch.cat(found), torch.cat(found_inds)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    if len(boxes) == 0:
        return [empty for _ in range(count)]
    size_w, size_h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    refined = torch.stack(
        [
            boxes[:, 0] + boxes[:, 5] * size_w,
            boxes[:, 1] + boxes[:, 6] * size_h,
            boxes[:, 2] + boxes[:, 7] * size_w,
            boxes[:, 3] + boxes[:, 8] * size_h,
            boxes[:, 4],
        ],
        dim=1,
    )
    boxes = rerec(refined)

    # Stage 2: the refine net on 24 px crops of every candidate.
    integral = integral_image(pixels)
    crops, keep = crop_candidates(integral, boxes, image_inds, 24)
    boxes, image_inds = boxes[keep], image_inds[keep]
    if len(boxes) == 0:  # every candidate lay wholly outside its image
        return [empty for _ in range(count)]
    reg, probs = fixed_batch_process(crops, rnet)
    passed = probs[:, 1] > thresholds[1]
    boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], dim=1)
    image_inds, reg = image_inds[passed], reg[passed]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes = rerec(bbreg(boxes[pick], reg[pick]))
    image_inds = image_inds[pick]
    if len(boxes) == 0:
        return [empty for _ in range(count)]

    # Stage 3: the output net on 48 px crops: final score, box and five landmarks.
    crops, keep = crop_candidates(integral, boxes, image_inds, 48)
    boxes, image_inds = boxes[keep], image_inds[keep]
    if len(boxes) == 0:
        return [empty for _ in range(count)]
    reg, marks, probs = fixed_batch_process(crops, onet)
    passed = probs[:, 1] > thresholds[2]
    boxes = torch.cat([boxes[passed, :4], probs[passed, 1:2]], dim=1)
    image_inds, reg, marks = image_inds[passed], reg[passed], marks[passed]
    box_w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    box_h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    points = torch.stack(
        [box_w * marks[:, :5] + boxes[:, 0:1] - 1, box_h * marks[:, 5:] + boxes[:, 1:2] - 1], dim=2
    )
    boxes = bbreg(boxes, reg)
    pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
    boxes_np, points_np = boxes[pick].cpu().numpy(), points[pick].cpu().numpy()
    inds_np = image_inds[pick].cpu().numpy()
    return [
        Found(boxes_np[inds_np == i, :4], boxes_np[inds_np == i, 4], points_np[inds_np == i])
        for i in range(count)
    ]
