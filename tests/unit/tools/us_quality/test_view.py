"""What the model sees: the cropped, normalised sector or its scan lines (no data set, no torch)."""

from __future__ import annotations

import numpy as np

from edge.inference.preprocess import Preprocessor
from tests.unit.tools.us_quality.test_degrade import convex_frame, linear_frame
from tools.us_quality.preprocess import SIZE
from tools.us_quality.sources import darker
from tools.us_quality.view import (
    current_view,
    fan_of,
    input_spec,
    sector_box,
    sector_of,
    set_view,
    to_input,
)


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


def test_a_fan_is_fitted_to_its_mask_as_the_runtime_holds_it() -> None:
    _, mask = convex_frame()  # apex (180, -80), sides +-35 degrees, radii 90 .. 375
    fan = fan_of(mask)
    assert fan is not None
    (ax, ay), (a0, a1), (near, far) = fan
    # the runtime's fit of a fan cut by the frame's sides, on a 320-pixel working copy
    assert abs(ax - 180) < 2 and abs(ay + 80) < 10
    assert abs(np.rad2deg(a0) + 35) < 2 and abs(np.rad2deg(a1) - 35) < 2
    assert abs(near - 90) < 10 and abs(far - 375) < 10
    s = sector_of(mask, "scanlines")
    assert s.kind == "convex" and np.array_equal(s.mask > 0, mask)


def test_a_rectangle_has_no_fan_and_is_cropped_in_the_scanline_view() -> None:
    img, mask = linear_frame()
    assert fan_of(mask) is None
    assert sector_of(mask, "scanlines").kind == "linear"
    x = to_input(img, mask, "scanlines")
    assert x.shape == (SIZE, SIZE) and x.dtype == np.uint8 and x.min() > 0, "no border inside the crop"


def test_the_scanline_view_is_the_runtimes_and_unrolls_the_fan() -> None:
    img, mask = convex_frame()
    x = to_input(img, mask, "scanlines")
    pre = Preprocessor(input_spec("scanlines"))
    ref, _ = pre.fit(img, sector_of(mask, "scanlines"))
    assert np.array_equal(x, ref), "the tools build exactly the runtime's input"
    # Unrolled: the fan fills the image (no black corners as in the sector view), apart from the
    # outer beams near the bottom, which this fan's frame cuts off, and a rim where the fitted
    # arcs meet the mask's edge.
    assert (x[4:-4, 32:-32] > 0).mean() > 0.99
    assert (to_input(img, mask, "sector") == 0).mean() > 0.1


def test_set_view_picks_the_default_view_of_later_inputs() -> None:
    img, mask = convex_frame()
    before = current_view()
    try:
        set_view("scanlines")
        assert np.array_equal(to_input(img, mask), to_input(img, mask, "scanlines"))
        set_view("sector")
        assert np.array_equal(to_input(img, mask), to_input(img, mask, "sector"))
    finally:
        set_view(before)
