"""Face detection with MTCNN: every face, with box, probability, landmarks and crops."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from unmask.detector.errors import InvalidImage
from unmask.detector.mtcnn import detect_faces

# Default pixel limit of decode_image (about 8k x 8k); services pass UNMASK_MAX_PIXELS. It is
# checked from the header before decoding; Pillow's own bomb guard stays as a backstop.
MAX_PIXELS = 64_000_000
# MTCNN's first stage scans 12 x 12 windows; a smaller image cannot hold a face it finds.
MTCNN_MIN_SIDE = 12
# MTCNN looks at images shrunk to this longer side: a 1024 px image at half size, so faces of
# 40 px and more (20 px at that size, MTCNN's smallest) are found at a quarter of the cost.
DETECT_MAX_SIDE = 512


@dataclass(frozen=True)
class Working:
    """The shrunk copy of an image that MTCNN looks at, and the factor back to the original:
    a Pillow image, or H x W x 3 uint8 pixels already on the detector's device."""

    scale: float
    image: Image.Image | torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        if isinstance(self.image, torch.Tensor):
            return int(self.image.shape[1]), int(self.image.shape[0])
        return self.image.size


@dataclass
class Face:
    """One detected face in original-image coordinates."""

    box: tuple[float, float, float, float]
    detection_probability: float
    landmarks: list[tuple[float, float]] = field(default_factory=list)
    skipped: str | None = None  # reason the face was not classified

    @property
    def size(self) -> float:
        x1, y1, x2, y2 = self.box
        return min(x2 - x1, y2 - y1)


@contextmanager
def opened(data: bytes, max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """The image behind the bytes, opened but not decoded, with its pixel count checked against
    the header's dimensions; Pillow's errors here and in the caller's block become InvalidImage."""
    if not data:
        raise InvalidImage("the file is empty", code="empty_file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                raise InvalidImage(
                    f"image has {img.width}x{img.height} pixels, more than the limit of {max_pixels}",
                    code="image_too_large",
                )
            yield img
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"image has too many pixels (limit {max_pixels})", code="image_too_large") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage("the file is not a readable image", code="not_an_image") from exc


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode bytes to an upright RGB image or raise InvalidImage. The pixel limit is checked
    against the header's dimensions, before any pixel is decoded."""
    with opened(data, max_pixels) as img:
        img.load()
        upright = ImageOps.exif_transpose(img)
        if upright.mode.startswith("I"):  # 16/32-bit grey: scale to 8 bits instead of clipping
            upright = upright.convert("I").point(lambda v: v / 256).convert("L")
        return upright.convert("RGB")


# EXIF orientation tag; 1 (or none) means the pixels are stored upright.
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Header:
    """What an image's header says, read without decoding a pixel."""

    format: str | None
    mode: str
    width: int
    height: int
    orientation: int


def read_header(data: bytes, max_pixels: int = MAX_PIXELS) -> Header:
    """The header of an image, or InvalidImage for the same reasons decode_image gives (empty,
    not an image, more pixels than the limit); the pixels are not checked."""
    with opened(data, max_pixels) as img:
        orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
        return Header(img.format, img.mode, img.width, img.height, orientation)


def device_decodable(header: Header) -> bool:
    """Whether decode_jpegs gives the same upright RGB pixels decode_image does: a baseline or
    progressive JPEG in colour or grey, stored upright (torchvision applies EXIF orientation on
    the CPU only, and CMYK needs Pillow's conversion)."""
    return header.format == "JPEG" and header.mode in ("RGB", "L") and header.orientation == 1


# torchvision 0.29 deprecates its image codecs in favour of TorchCodec's; until that moves,
# the warning would be repeated on every batch.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")


def decode_jpegs(blobs: Sequence[bytes], device: torch.device) -> list[torch.Tensor | InvalidImage]:
    """JPEGs (that device_decodable accepted) to H x W x 3 uint8 pixels on `device`, in one call:
    nvJPEG's batched decoder on a CUDA device, libjpeg-turbo on the CPU (the same pixels Pillow
    gives). A batch with an unreadable file is decoded again one by one, so only that file fails."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not blobs:
        return []
    encoded = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    try:
        return [t.permute(1, 2, 0) for t in decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)]
    except RuntimeError:
        if len(blobs) == 1:
            return [InvalidImage("the file is not a readable image", code="not_an_image")]
    return [decoded for blob in blobs for decoded in decode_jpegs([blob], device)]


def crop_region(
    box: tuple[float, float, float, float], crop_size: int, margin: int, image_size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The pixel rectangle facenet-pytorch's extract_face crops for a box and margin."""
    x1, y1, x2, y2 = box
    # The margin is given in crop pixels; scale it to the box's size.
    mx = margin * (x2 - x1) / (crop_size - margin) if margin else 0.0
    my = margin * (y2 - y1) / (crop_size - margin) if margin else 0.0
    left, top = int(max(x1 - mx / 2, 0)), int(max(y1 - my / 2, 0))
    right = max(int(min(x2 + mx / 2, image_size[0])), left + 1)
    bottom = max(int(min(y2 + my / 2, image_size[1])), top + 1)
    return left, top, right, bottom


def crop_face(
    image: Image.Image, box: tuple[float, float, float, float], crop_size: int, margin: int = 0
) -> Image.Image:
    """Crop the box plus margin and resize it to a square, bilinear."""
    region = crop_region(box, crop_size, margin, image.size)
    return image.crop(region).resize((crop_size, crop_size), Image.Resampling.BILINEAR)


class FaceDetector:
    """MTCNN over the whole image; large images are shrunk first, boxes mapped back."""

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        min_face_size: int = 20,
        min_probability: float = 0.90,
        max_side: int = DETECT_MAX_SIDE,
        pyramid_min_size: int | None = None,
        max_batch: int = 32,
    ) -> None:
        from facenet_pytorch import MTCNN

        self.min_face_size = min_face_size
        self.min_probability = min_probability
        self.max_side = max_side
        self.max_batch = max_batch
        # Every face is reported, not only the first. The image pyramid reaches down to 20 px
        # so faces under min_face_size are reported as skipped rather than never seen;
        # pyramid_min_size trades that for speed on large-face data.
        self.pyramid_min_size = pyramid_min_size or min(min_face_size, 20)
        self.device = torch.device(device)
        # facenet-pytorch's three networks and their weights, run channels-last by detect_faces.
        mtcnn = MTCNN(device=self.device)
        self.nets = tuple(
            net.eval().to(memory_format=torch.channels_last) for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet)
        )

    def working_size(self, width: int, height: int) -> tuple[float, tuple[int, int]] | None:
        """The factor an image of this size is shrunk by for MTCNN (its longer side to at most
        max_side) and the size it is shrunk to; None when that is too small to hold a face."""
        scale = max(width, height) / self.max_side if max(width, height) > self.max_side else 1.0
        size = (round(width / scale), round(height / scale))
        return None if min(size) < MTCNN_MIN_SIDE else (scale, size)

    def working_image(self, image: Image.Image) -> Working | None:
        """The image MTCNN looks at (shrunk so its longer side is at most max_side) and the
        factor that maps its boxes back; None when it is too small to hold a face. Callers with
        threads to spare may make it themselves and hand it to detect_many."""
        geometry = self.working_size(image.width, image.height)
        if geometry is None:
            return None
        scale, size = geometry
        if scale == 1.0:
            return Working(1.0, image)
        work = image.reduce(int(scale)) if scale >= 2 else image  # a fast box filter first
        return Working(scale, work if work.size == size else work.resize(size, Image.Resampling.BILINEAR))

    def working_pixels(self, pixels: torch.Tensor) -> Working | None:
        """working_image for H x W x 3 uint8 pixels on any device, computed there: the same box
        filter (average pooling, partial boxes at the edges averaged over what they cover) and
        then the same antialiased bilinear resize Pillow uses."""
        geometry = self.working_size(int(pixels.shape[1]), int(pixels.shape[0]))
        if geometry is None:
            return None
        scale, size = geometry
        if scale == 1.0:
            return Working(1.0, pixels)
        work = pixels.permute(2, 0, 1)[None].float()
        if scale >= 2:
            factor = int(scale)
            work = F.avg_pool2d(work, factor, ceil_mode=True).round()
        if (work.shape[-1], work.shape[-2]) != size:
            work = F.interpolate(work, size=size[::-1], mode="bilinear", antialias=True, align_corners=False)
            work = work.round().clamp(0, 255)
        return Working(scale, work[0].permute(1, 2, 0).to(torch.uint8).contiguous())

    def detect(self, image: Image.Image) -> list[Face]:
        """All faces, largest probability first; small or unsure ones are marked skipped."""
        return self.detect_many([image])[0]

    def detect_many(
        self, images: Sequence[Image.Image], working: Sequence[Working | None] | None = None
    ) -> list[list[Face]]:
        """detect() for many images: those whose working images share a size go through MTCNN
        as one batch (its stages then run once per pyramid scale for all of them). Working
        images already on the device (working_pixels) are not copied again."""
        if working is None:
            working = [self.working_image(image) for image in images]
        found: list[list[Face]] = [[] for _ in images]
        groups: dict[tuple[int, int], list[tuple[int, Working]]] = {}
        for index, prepared in enumerate(working):
            if prepared is not None:
                groups.setdefault(prepared.size, []).append((index, prepared))
        for members in groups.values():
            for start in range(0, len(members), self.max_batch):
                chunk = members[start : start + self.max_batch]
                pixels = self._stacked([w.image for _, w in chunk])
                with torch.inference_mode():
                    results = detect_faces(pixels, *self.nets, min_face=self.pyramid_min_size)
                for (index, w), got in zip(chunk, results):
                    faces = [
                        self._face(bb * w.scale, pp, pt * w.scale)
                        for bb, pp, pt in zip(got.boxes, got.probs, got.points)
                    ]
                    found[index] = sorted(faces, key=lambda f: -f.detection_probability)
        return found

    def _stacked(self, images: list[Image.Image | torch.Tensor]) -> torch.Tensor:
        """N x H x W x 3 uint8 on the detector's device."""
        if all(isinstance(i, torch.Tensor) for i in images):
            return torch.stack(images).to(self.device)  # type: ignore[arg-type]
        arrays = [i.cpu().numpy() if isinstance(i, torch.Tensor) else np.asarray(i) for i in images]
        return torch.as_tensor(np.stack(arrays), device=self.device)

    def _face(self, box: np.ndarray, prob: float, points: np.ndarray) -> Face:
        face = Face(
            box=tuple(round(float(v), 1) for v in box),  # type: ignore[arg-type]
            detection_probability=round(float(prob), 5),
            landmarks=[(round(float(x), 1), round(float(y), 1)) for x, y in points],
        )
        if face.size < self.min_face_size:
            face.skipped = f"face smaller than {self.min_face_size} px"
        elif face.detection_probability < self.min_probability:
            face.skipped = f"detection probability below {self.min_probability}"
        return face
