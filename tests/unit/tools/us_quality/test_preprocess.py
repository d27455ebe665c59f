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
    """A BGR frame with a fan and screen text: the runtime's tensor is the training input's build on
    the sector the runtime finds, bit for bit; training itself fits the fan to the sample's mask
    (``view.fan_of``: a sample's geometry moves it), which puts the arcs a few pixels from where the
    runtime's fit on the live image puts them: a difference of a few gray levels on average, well
    inside the geometry the training samples are drawn with (``looks.augment_geometry``)."""
    img, _ = convex_frame()
    frame = cv2.cvtColor(
        cv2.copyMakeBorder(img, 30, 10, 80, 80, cv2.BORDER_CONSTANT, value=0), cv2.COLOR_GRAY2BGR
    )
    cv2.putText(frame, "MI 0.9 TIS 0.1", (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    pre = Preprocessor(input_spec())
    tensor, _ = pre(frame)
    assert tensor.shape == (1, 1, SIZE, SIZE)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    found = find_sector([frame])
    built, _ = Preprocessor(input_spec()).fit(gray, found)
    np.testing.assert_allclose(tensor[0, 0], normalize(built.copy()), rtol=0, atol=1e-6)
    trained = normalize(to_input(gray, found.mask > 0))
    gray_levels = np.abs(tensor[0, 0] - trained).mean() * STD / SCALE
    assert gray_levels < 10, gray_levels
