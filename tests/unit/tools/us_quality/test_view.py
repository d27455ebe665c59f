"""What the model sees: the cropped, normalised sector (no data set, no torch)."""

from __future__ import annotations

import numpy as np

from tests.unit.tools.us_quality.test_degrade import convex_frame
from tools.us_quality.preprocess import SIZE
from tools.us_quality.sources import darker
from tools.us_quality.view import sector_box, to_input


def test_a_darker_scanner_reaches_the_model_close_to_the_original() -> None:
    img, mask = convex_frame()
    ref = to_input(img, mask, "sector").astype(float)
    for gain, gamma in ((0.5, 1.0), (0.6, 1.4)):
        dark = to_input(darker(img, gain, gamma), mask, "sector").astype(float)
        raw = to_input(darker(img, gain, gamma), mask, "frame").astype(float)
        inside = ref > 0
        assert abs(dark[inside].mean() - ref[inside].mean()) < 0.5 * abs(
            raw[inside].mean() - ref[inside].mean()
        )


def test_the_view_crops_to_the_sector_and_blanks_the_layout() -> None:
    img, mask = convex_frame()
    framed = np.zeros((img.shape[0] + 40, img.shape[1] + 120), np.uint8)
    framed[20:-20, 60:-60] = img
    big = np.zeros(framed.shape, bool)
    big[20:-20, 60:-60] = mask
    framed[5:15, 5:100] = 255  # burned-in text outside the sector
    x = to_input(framed, big, "sector")
    assert x.shape == (SIZE, SIZE) and x.dtype == np.uint8
    assert np.array_equal(x, to_input(img, mask, "sector")), "the layout around the sector changes nothing"


def test_sector_box_is_exclusive() -> None:
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert sector_box(m) == (3, 2, 9, 5)
