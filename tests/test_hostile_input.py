"""Every file of the hostile corpus gets its expected answer at the step that should give it:
the API's intake check, or the worker's analysis. Never `internal_error`."""

from __future__ import annotations

import pytest

from tests.hostile import CASES, Case
from unmask.core.exceptions import JobFailed, UnmaskError
from unmask.core.intake import sniff_image
from unmask.worker.detection import PredictorDetector

MAX_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 40_000_000


def outcome(case: Case, detector: PredictorDetector) -> tuple[str, str]:
    data = case.make()
    try:
        sniff_image(data, MAX_BYTES, MAX_PIXELS)
    except UnmaskError as exc:
        return "submit", exc.code
    try:
        result = detector.analyse(data).result
    except JobFailed as exc:
        return "job", exc.code
    return "job", "no_face" if result.verdict == "no_face" else "face"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("decode", ["pillow", "device"])
def test_hostile_file_gets_its_expected_answer(case, decode, predictor):
    """Both decoders: Pillow in the job's thread, and the GPU worker's batched torchvision
    decode (run here on the CPU) for the JPEGs it accepts."""
    detector = PredictorDetector(predictor, max_pixels=MAX_PIXELS, explain=False, decode=decode)
    assert outcome(case, detector) == (case.stage, case.outcome)
