"""The worker's detector adapter: the detector's output as the one result shape, and the
detector's errors as job error codes."""

from __future__ import annotations

import pytest

from unmask.core.exceptions import JobFailed
from unmask.worker.detection import PredictorDetector


def test_analysis_is_the_result_shape_with_encoded_overlays(predictor, face_bytes):
    analysis = PredictorDetector(predictor, max_pixels=1_000_000).analyse(face_bytes)
    result = analysis.result
    assert result.image.width == 288 and len(result.faces) == 1
    assert result.model.name == "reference-irv1" and len(result.model.weights_sha256) == 64
    assert analysis.overlays.image is not None and analysis.overlays.image[:2] == b"\xff\xd8"
    assert len(analysis.overlays.faces) == 1 and analysis.overlays.faces[0][:2] == b"\xff\xd8"


def test_an_image_over_the_pixel_limit_fails_before_it_is_decoded(predictor, face_bytes):
    with pytest.raises(JobFailed) as info:
        PredictorDetector(predictor, max_pixels=288 * 288 - 1).analyse(face_bytes)
    assert info.value.code == "image_too_large" and "288x288" in info.value.message


@pytest.mark.parametrize(("data", "code"), [(b"", "empty_file"), (b"not an image", "not_an_image")])
def test_unreadable_input_fails_with_its_code(predictor, data, code):
    with pytest.raises(JobFailed) as info:
        PredictorDetector(predictor, max_pixels=1_000_000).analyse(data)
    assert info.value.code == code
