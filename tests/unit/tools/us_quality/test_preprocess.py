"""The us-quality input scaling, and the input the runtime builds for it (no data set needed)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.inference.preprocess import Preprocessor
from edge.inference.sector import find_sector
from tests.unit.tools.us_quality.test_degrade import convex_frame
from tools.us_quality.preprocess import MEAN, SCALE, SIZE, STD, normalize
from tools.us_quality.view import input_spec, to_input


def test_normalize_maps_0_and_255_to_minus_2_and_2() -> None:
    x = normalize(np.array([[0, 255]], np.uint8))
    assert x.dtype == np.float32
    assert x[0, 0] == np.float32((0 * SCALE - MEAN) / STD) == -2.0
    assert x[0, 1] == np.float32((255 * SCALE - MEAN) / STD) == 2.0


def test_training_inputs_are_what_the_runtime_feeds_the_model() -> None:
    """A BGR frame with a fan and screen text: the runtime's tensor equals the training input built
    with the sector the runtime finds."""
    img, _ = convex_frame()
    frame = cv2.cvtColor(
        cv2.copyMakeBorder(img, 30, 10, 80, 80, cv2.BORDER_CONSTANT, value=0), cv2.COLOR_GRAY2BGR
    )
    cv2.putText(frame, "MI 0.9 TIS 0.1", (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    pre = Preprocessor(input_spec())
    tensor, _ = pre(frame)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    expected = normalize(to_input(gray, find_sector([frame]).mask > 0))
    assert tensor.shape == (1, 1, SIZE, SIZE)
    np.testing.assert_allclose(tensor[0, 0], expected, rtol=0, atol=1e-6)
