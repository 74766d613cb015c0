"""The batch path: many images through detection and the classifier at once give what one
image at a time gives, and many task threads share one model through the batcher."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from unmask.core.exceptions import JobFailed
from unmask.detector.faces import FaceDetector, decode_image, decode_jpegs, device_decodable, read_header
from unmask.detector.predictor import Predictor
from unmask.worker.batching import Batcher
from unmask.worker.detection import PredictorDetector, pick_decode

# Decoding on the device changes MTCNN's input by a level or two (torch's resampling for
# Pillow's): boxes may move by a pixel or two (IoU with the Pillow path's box at least this)
# and scores by this much.
MIN_IOU = 0.95
SCORE = 0.01


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


def jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def mixed_images(face_bytes, group_bytes, no_face_bytes) -> list[Image.Image]:
    face = decode_image(face_bytes)
    # Two images share a size (one MTCNN batch), the others do not.
    return [
        face,
        decode_image(group_bytes),
        decode_image(no_face_bytes),
        face.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        face.resize((face.width * 3 // 2, face.height * 3 // 2)),
    ]


def assert_same(one, many) -> None:
    assert many.verdict == one.verdict
    assert len(many.faces) == len(one.faces)
    for a, b in zip(one.faces, many.faces):
        assert b.face.box == pytest.approx(a.face.box, abs=0.2)
        assert b.face.skipped == a.face.skipped
        assert b.verdict == a.verdict
        if a.fake_probability is None:
            assert b.fake_probability is None
        else:
            assert b.fake_probability == pytest.approx(a.fake_probability, abs=1e-4)
            if a.reencoded_probability is None:
                assert b.reencoded_probability is None
            else:
                assert b.reencoded_probability == pytest.approx(a.reencoded_probability, abs=1e-4)


def test_batch_gives_the_faces_and_scores_of_one_at_a_time(predictor: Predictor, mixed_images):
    singles = [predictor.predict(image) for image in mixed_images]
    batched = predictor.predict_many(mixed_images)
    scored = [[f for f in p.faces if f.fake_probability is not None] for p in batched]
    assert [len(faces) for faces in scored] == [1, 3, 0, 1, 1]
    for one, many in zip(singles, batched):
        assert_same(one, many)
        assert (many.overlay is None) == (one.overlay is None)


def test_scoring_batch_size_does_not_change_scores(predictor: Predictor, mixed_images):
    small = Predictor(predictor.model, predictor.detector, batch_size=1)
    for one, many in zip(small.predict_many(mixed_images), predictor.predict_many(mixed_images)):
        assert_same(one, many)


def test_batcher_groups_items_from_many_threads_and_keeps_their_order():
    calls: list[list[int]] = []
    batcher: Batcher[int, int] = Batcher(
        lambda items: calls.append(items) or [i * 10 for i in items], max_size=8, max_wait=0.2
    )
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(batcher.submit, range(8)))
    assert results == [i * 10 for i in range(8)]
    assert sum(len(c) for c in calls) == 8
    assert len(calls) < 8  # at least some items shared a call
    assert max(len(c) for c in calls) <= 8


def test_batcher_hands_a_failure_to_every_item_of_the_group_and_keeps_serving():
    def run(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky batch")
        return items

    batcher: Batcher[int, int] = Batcher(run, max_size=4, max_wait=0.2)
    barrier = threading.Barrier(2)

    def submit(item: int) -> str:
        barrier.wait()
        try:
            return str(batcher.submit(item))
        except ValueError as exc:
            return str(exc)

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(submit, [13, 14]))
    assert "unlucky batch" in outcomes
    assert batcher.submit(5) == 5  # the batcher thread survived


def test_threads_sharing_the_batcher_get_their_own_results(predictor: Predictor, mixed_images):
    datas = [jpeg(image) for image in mixed_images]
    one_at_a_time = PredictorDetector(predictor, max_pixels=10**8)
    batched = PredictorDetector(predictor, max_pixels=10**8, batch_size=len(datas), batch_wait_seconds=0.5)
    expected = [one_at_a_time.analyse(d) for d in datas]
    with ThreadPoolExecutor(len(datas)) as pool:
        got = list(pool.map(batched.analyse, datas))
    for a, b in zip(expected, got):
        assert b.result.verdict == a.result.verdict
        assert [f.fake_probability for f in b.result.faces] == pytest.approx(
            [f.fake_probability for f in a.result.faces], abs=1e-4
        )
        assert (b.overlays.image is None) == (a.overlays.image is None)
        assert [x is None for x in b.overlays.faces] == [x is None for x in a.overlays.faces]


def test_batched_mtcnn_finds_what_facenet_pytorch_finds(mixed_images):
    """One integral image for all candidates of a batch gives the boxes, probabilities and
    landmarks of facenet-pytorch's own per-box loop, for every image of a mixed batch."""
    from facenet_pytorch import MTCNN

    reference = MTCNN(keep_all=True, select_largest=False, post_process=False, min_face_size=20)
    detector = FaceDetector(min_face_size=20)
    same_size = [mixed_images[0], mixed_images[3]]  # one MTCNN batch of two
    for image, faces in zip(mixed_images + same_size, detector.detect_many(mixed_images + same_size)):
        boxes, probs, points = reference.detect(detector.working_image(image).image, landmarks=True)
        scale = detector.working_image(image).scale
        if boxes is None:
            assert faces == []
            continue
        assert len(faces) == len(boxes) > 0
        order = np.argsort(-np.asarray(probs, dtype=float))
        for face, i in zip(faces, order):
            assert face.box == pytest.approx(tuple(boxes[i] * scale), abs=0.2)
            assert face.detection_probability == pytest.approx(float(probs[i]), abs=1e-4)
            assert np.asarray(face.landmarks) == pytest.approx(points[i] * scale, abs=0.2)


def test_decode_setting_puts_jpegs_on_the_gpu_only_where_asked():
    assert pick_decode("auto", torch.device("cuda")) and not pick_decode("auto", torch.device("cpu"))
    assert pick_decode("device", torch.device("cpu")) and not pick_decode("pillow", torch.device("cuda"))
    with pytest.raises(ValueError, match="decode must be one of"):
        pick_decode("nvjpeg", torch.device("cpu"))


def test_device_decoding_gives_pillows_pixels_and_working_images(face_bytes, group_bytes):
    grey = io.BytesIO()
    decode_image(face_bytes).convert("L").save(grey, format="JPEG", quality=90)
    datas = [face_bytes, jpeg(decode_image(group_bytes)), grey.getvalue()]
    assert all(device_decodable(read_header(d)) for d in datas)
    detector = FaceDetector()
    for data, pixels in zip(datas, decode_jpegs(datas, torch.device("cpu"))):
        image = decode_image(data)
        assert np.array_equal(pixels.numpy(), np.asarray(image))  # libjpeg-turbo either way
        for side in (1024, 1500, 700):  # shrunk 2x by the box filter, then bilinear, or bilinear only
            big = image.resize((side, side * image.height // image.width))
            on_host = detector.working_image(big)
            on_device = detector.working_pixels(torch.from_numpy(np.array(big)))
            assert on_device.scale == on_host.scale and on_device.size == on_host.size
            assert np.abs(on_device.image.numpy().astype(int) - np.asarray(on_host.image)).max() <= 2


def test_headers_that_the_device_cannot_decode_go_to_pillow(face_bytes):
    image = decode_image(face_bytes)
    rotated, cmyk, png = io.BytesIO(), io.BytesIO(), io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: torchvision applies EXIF orientation on the CPU only
    image.save(rotated, format="JPEG", exif=exif)
    image.convert("CMYK").save(cmyk, format="JPEG")
    image.save(png, format="PNG")
    for data in (rotated.getvalue(), cmyk.getvalue(), png.getvalue()):
        assert not device_decodable(read_header(data))


def test_decoding_on_the_device_gives_the_faces_and_scores_of_pillow(predictor: Predictor, mixed_images):
    """The GPU worker's path (JPEGs decoded by torchvision in the batcher's thread and shrunk
    for MTCNN as tensors), run on the CPU, against the Pillow path."""
    datas = [jpeg(image) for image in mixed_images]
    pillow = PredictorDetector(predictor, max_pixels=10**8, decode="pillow")
    device = PredictorDetector(
        predictor, max_pixels=10**8, decode="device", batch_size=len(datas), batch_wait_seconds=0.5
    )
    assert device.decode(datas[0]).image is None  # the task thread read only the header
    expected = [pillow.analyse(d) for d in datas]
    with ThreadPoolExecutor(len(datas)) as pool:
        got = list(pool.map(device.analyse, datas))
    for a, b in zip(expected, got):
        assert b.result.image == a.result.image
        assert b.result.verdict == a.result.verdict
        # Every face that was scored is found and scored again; candidates that MTCNN's last
        # stage passes at about its threshold (reported as skipped, probability < 0.9) may not.
        scored_a = [f for f in a.result.faces if f.fake_probability is not None]
        scored_b = [f for f in b.result.faces if f.fake_probability is not None]
        assert len(scored_b) == len(scored_a)
        for fa, fb in zip(scored_a, scored_b):
            assert iou(fa.box, fb.box) >= MIN_IOU
            assert fb.fake_probability == pytest.approx(fa.fake_probability, abs=SCORE)
            assert fb.verdict == fa.verdict
        assert all(f.detection_probability < 0.9 for f in a.result.faces + b.result.faces if f.skip_reason)


def test_an_unreadable_jpeg_fails_alone_in_a_device_batch(predictor: Predictor, face_bytes):
    device = PredictorDetector(
        predictor, max_pixels=10**8, decode="device", batch_size=3, batch_wait_seconds=0.5
    )
    truncated = face_bytes[: len(face_bytes) // 2]  # a readable header, half the scan
    assert device.decode(truncated).image is None

    def analyse(data: bytes) -> str:
        try:
            return device.analyse(data).result.verdict
        except JobFailed as exc:
            return exc.code

    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(analyse, [face_bytes, truncated, face_bytes]))
    assert outcomes[1] == "not_an_image"
    assert outcomes[0] == outcomes[2] != "not_an_image"


def test_mtcnn_answers_no_face_when_every_candidate_leaves_the_image(face_bytes):
    """A refine stage that moves every candidate off the image leaves the last stage nothing
    to crop: the answer is no face, not an error."""
    from unmask.detector.mtcnn import detect_faces

    detector = FaceDetector()
    pnet, rnet, onet = detector.nets

    def off_the_image(crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(crops)
        shift = torch.full((n, 4), 50.0)  # fifty box widths right and down
        return shift, torch.tensor([[0.0, 1.0]]).expand(n, 2)

    pixels = torch.from_numpy(np.array(decode_image(face_bytes)))[None]
    with torch.inference_mode():
        assert len(detect_faces(pixels, pnet, rnet, onet)[0].boxes) == 1
        assert len(detect_faces(pixels, pnet, off_the_image, onet)[0].boxes) == 0
