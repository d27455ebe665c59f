"""Layout primitives: sizes scale with the image, inputs are checked, the backdrop blends in place."""

from __future__ import annotations

import numpy as np
import pytest

from edge.render.style import DEFAULT_STYLE, OverlayStyle, backdrop, check, metrics


def test_sizes_grow_with_the_image_and_are_cached() -> None:
    small, big = metrics(DEFAULT_STYLE, 200, 200), metrics(DEFAULT_STYLE, 1080, 1920)
    assert small.text_h < big.text_h and small.line <= big.line and small.meter_w < big.meter_w
    assert metrics(DEFAULT_STYLE, 200, 200) is small  # one computation per (style, size)
    assert small.meter_w <= 200 - 2 * small.margin  # the meter always fits


def test_check_refuses_what_the_overlay_cannot_draw_on() -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        check(np.zeros((10, 10), np.uint8), DEFAULT_STYLE)
    with pytest.raises(ValueError, match="BGR uint8"):
        check(np.zeros((10, 10, 3), np.uint16), DEFAULT_STYLE)


def test_backdrop_darkens_only_its_rectangle_clipped_to_the_image() -> None:
    img = np.full((20, 30, 3), 200, np.uint8)
    backdrop(img, 25, 10, 40, 30, OverlayStyle(backdrop_alpha=0.5, backdrop_level=0))
    assert (img[10:, 25:] == 100).all()
    assert (img[:10] == 200).all() and (img[:, :25] == 200).all()
