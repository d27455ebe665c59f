"""Augmentation moves the boxes with the pixels."""

from __future__ import annotations

import numpy as np

from tools.lung_detector.augment import augment


def test_boxes_follow_a_bright_bar_through_zoom_shift_and_flip() -> None:
    img = np.zeros((256, 256), np.uint8)
    img[60:200, 40:52] = 255  # a tall bright bar, like a B-line
    box = np.array([[40, 60, 52, 200]], np.float32)
    flips = 0
    for seed in range(30):
        out, boxes, keep = augment(img, box, np.random.default_rng(seed))
        assert keep.tolist() == [0]
        x0, y0, x1, y1 = boxes[0]
        bright = np.argwhere(out > 0.5 * out.max())  # the half-maximum edge, whatever the gain and blur
        assert abs(bright[:, 1].min() - x0) <= 2 and abs(bright[:, 1].max() + 1 - x1) <= 2
        assert abs(bright[:, 0].min() - y0) <= 2 and abs(bright[:, 0].max() + 1 - y1) <= 2
        flips += x0 > 128
    assert 5 <= flips <= 25, "about half the draws flip left-right"


def test_a_box_pushed_out_of_the_image_is_dropped() -> None:
    img = np.zeros((256, 256), np.uint8)
    edge = np.array([[0, 100, 3, 140]], np.float32)  # a sliver at the left edge
    dropped = sum(len(augment(img, edge, np.random.default_rng(s))[2]) == 0 for s in range(40))
    assert dropped > 0
