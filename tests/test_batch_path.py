"""The batch path: many images through detection and the classifier at once give what one
image at a time gives, and many task threads share one model through the batcher."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from unmask.detector.faces import FaceDetector, decode_image
from unmask.detector.predictor import Predictor
from unmask.worker.batching import Batcher
from unmask.worker.detection import PredictorDetector


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
