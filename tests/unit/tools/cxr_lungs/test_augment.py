"""Augmentation keeps the labels' sides (a flip swaps them) and the boxes on the film."""

from __future__ import annotations

import numpy as np

from tests.unit.tools.cxr_standins import chest
from tools.cxr_lungs.augment import augment


def test_right_lung_stays_on_the_image_left_and_boxes_stay_inside() -> None:
    rng = np.random.default_rng(1)
    gray, boxes = chest(rng, 240, 260)
    both = 0
    for _ in range(200):
        img, b, present = augment(gray, boxes, rng)
        h, w = img.shape
        assert img.dtype == np.uint8 and present.shape == (2,)
        assert (b[:, [0, 2]] >= 0).all() and (b[:, [0, 2]] <= w).all()
        assert (b[:, [1, 3]] >= 0).all() and (b[:, [1, 3]] <= h).all()
        if present.all():
            both += 1
            assert (b[0, 0] + b[0, 2]) / 2 < (b[1, 0] + b[1, 2]) / 2
    assert both > 100, "most samples keep both fields"


def test_a_flip_moves_the_pixels_and_swaps_the_rows() -> None:
    gray = np.zeros((100, 200), np.uint8)
    gray[:, :100] = 200  # the image's left half bright
    boxes = np.array([[10, 10, 90, 90], [110, 10, 190, 90]], np.float32)
    for seed in range(50):  # find a sample that flipped and did little else
        rng = np.random.default_rng(seed)
        img, b, present = augment(gray, boxes, rng)
        if present.all() and img.shape == gray.shape and img[:, 150:].mean() > img[:, :50].mean() + 50:
            assert (b[0, 0] + b[0, 2]) / 2 < 100 < (b[1, 0] + b[1, 2]) / 2
            return
    raise AssertionError("no flipped sample in 50 seeds")
